// The hot path allocates nothing once its report is warm: this executable
// replaces the global operator new with a counting one and checks
// SchemaValidator::validate, AnomalyDetector::score and DriftMonitor::observe.
#include <keel/validate/anomaly_detector.hpp>
#include <keel/validate/drift_monitor.hpp>
#include <keel/validate/profile_builder.hpp>
#include <keel/validate/schema_validator.hpp>

#include <catch2/catch.hpp>

// GCC 12 at -O2/-O3 inlines std::allocator into the replaced operator delete
// below and reports malloc/free as a mismatched pair (they match).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <atomic>
#include <cstdlib>
#include <limits>
#include <new>
#include <vector>

namespace {
std::atomic<long> g_allocations{0};
}

// Every non-aligned form is replaced, so that no allocation reaches a
// sanitizer's own operator new and comes back to this free().
void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return ::operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

using namespace keel;

TEST_CASE("validate hot path: no allocation once warm", "[validate][alloc]") {
  std::vector<FeatureInfo> feats{{"a", FeatureType::kNumeric}, {"b", FeatureType::kInteger}, {"c", FeatureType::kCategorical}};
  ProfileBuilder b(feats);
  std::vector<float> train;
  for (int i = 0; i < 300; ++i) {
    train.push_back(static_cast<float>(i % 17));
    train.push_back(static_cast<float>(i % 5));
    train.push_back(static_cast<float>(i % 3));
  }
  REQUIRE(b.add(train, 300).is_ok());
  const Profile p = b.build();
  ModelInfo info;
  info.num_features = 3;
  info.features = feats;
  Schema s = Schema::from_model(info);
  s.features[0].max = 10;
  s.features[0].set_action(Rule::kAboveMax, Action::kClamp);
  s.features[2].categories = {0, 1, 2};
  s.features[2].set_action(Rule::kUnknownCategory, Action::kFlag);
  const SchemaValidator v(s);
  const AnomalyDetector d(p);
  DriftMonitor m(p);

  // Clean and dirty rows (clamp, type flag, unknown category, NaN).
  const std::vector<float> rows{1, 2, 0,  16, 2.5f, 7,  std::numeric_limits<float>::quiet_NaN(), 1, 1};
  std::vector<float> out(rows.size());
  ValidationReport vrep;
  AnomalyReport arep;
  // Warm up: the reports grow to this batch's size.
  v.validate(rows, 3, out, vrep);
  d.score(out, 3, arep);
  m.observe(rows, 3, {});

  const long before = g_allocations.load();
  for (int i = 0; i < 100; ++i) {
    v.validate(rows, 3, out, vrep);
    d.score(out, 3, arep);
    m.observe(std::span<const float>(rows).subspan(3, 3), 0.5f);
    v.validate(std::span<const float>(rows).subspan(0, 3), 1, out, vrep);
  }
  const long after = g_allocations.load();
  CHECK(after - before == 0);
  CHECK(vrep.ok(0));
  v.validate(rows, 3, out, vrep);
  CHECK(vrep.fixed(1));
  CHECK(vrep.flagged(1));
  CHECK(arep.anomalous(1));
}
