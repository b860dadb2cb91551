// The validate stage over batches: SchemaValidator checks narrow rows a
// block at a time, so a finding in any row of a block, at any place in a
// batch of any size, must come out exactly as it does for that row alone
// (score(), a batch of one, never takes the block path).

#include <catch2/catch.hpp>

#include "unit/engine_test_util.hpp"

#include <keel/engine/scoring_engine.hpp>
#include <keel/validate/schema_validator.hpp>

#include <fmt/format.h>

#include <cmath>
#include <limits>

using keel::test::linear;

namespace {

constexpr std::size_t kF = 4;

// f0 numeric [0, 10] (reject), f1 integer [0, 100] (above max: clamp;
// not whole: flag), f2 categorical {1, 2, 5} (unknown: reject), f3 numeric,
// missing rejected.
keel::Schema schema() {
  keel::Schema s = keel::Schema::from_names({"f0", "f1", "f2", "f3"});
  s.features[0].min = 0.f;
  s.features[0].max = 10.f;
  s.features[1].type = keel::FeatureType::kInteger;
  s.features[1].min = 0.f;
  s.features[1].max = 100.f;
  s.features[1].set_action(keel::Rule::kAboveMax, keel::Action::kClamp);
  s.features[1].set_action(keel::Rule::kType, keel::Action::kFlag);
  s.features[2].type = keel::FeatureType::kCategorical;
  s.features[2].categories = {1, 2, 5};
  s.features[3].allow_missing = false;
  return s;
}

enum class Fault { kNone, kOutOfRange, kUnknownCategory, kNotWhole, kClamped, kMissing };

std::array<float, kF> clean_row(std::size_t r) {
  return {static_cast<float>(r % 11), static_cast<float>(r % 50), r % 2 ? 2.f : 5.f, 0.25f * static_cast<float>(r)};
}

std::array<float, kF> faulty_row(std::size_t r, Fault f) {
  auto v = clean_row(r);
  switch (f) {
    case Fault::kNone: break;
    case Fault::kOutOfRange: v[0] = 10.5f; break;
    case Fault::kUnknownCategory: v[2] = 3.f; break;
    case Fault::kNotWhole: v[1] = 7.5f; break;
    case Fault::kClamped: v[1] = 250.f; break;
    case Fault::kMissing: v[3] = std::numeric_limits<float>::quiet_NaN(); break;
  }
  return v;
}

}  // namespace

TEST_CASE("request path: a batch's validation findings land on their own rows, wherever they are",
          "[engine][validate][batch]") {
  auto e = keel::EngineBuilder()
               .model("primary", linear({1.f, 10.f, 100.f, 1000.f}, 0.5f))
               .stage("primary")
               .validator(std::make_shared<keel::SchemaValidator>(schema()))
               .build();
  const Fault faults[] = {Fault::kOutOfRange, Fault::kUnknownCategory, Fault::kNotWhole, Fault::kClamped,
                          Fault::kMissing};
  std::size_t checked = 0;
  keel::BatchResult out;
  for (std::size_t n : {1u, 7u, 8u, 9u, 16u, 17u, 24u, 31u}) {
    for (Fault fault : faults) {
      for (std::size_t p = 0; p < n; ++p) {
        std::vector<float> rows;
        for (std::size_t r = 0; r < n; ++r) {
          const auto v = faulty_row(r, r == p ? fault : Fault::kNone);
          rows.insert(rows.end(), v.begin(), v.end());
        }
        REQUIRE(e->score_batch({rows, n, kF}, out).is_ok());
        for (std::size_t r = 0; r < n; ++r) {
          INFO(fmt::format("batch of {}, fault {} in row {}; row {}", n, static_cast<int>(fault), p, r));
          keel::Request q;
          q.features = std::span<const float>(&rows[r * kF], kF);
          auto one = e->score(q);
          CHECK(one.ok() == out.status[r].is_ok());
          if (!one.ok()) {
            CHECK(one.code() == out.status[r].code());
            CHECK(std::isnan(out.scores[r]));
            continue;
          }
          CHECK(one->scores[0] == out.scores[r]);
          CHECK(one->anomaly == (out.anomaly[r] != 0));
          CHECK(one->anomaly_reason == out.anomaly_reason[r]);
          ++checked;
        }
        // The faulty row itself, against what the fault must do.
        INFO(fmt::format("batch of {}, fault {} in row {}", n, static_cast<int>(fault), p));
        switch (fault) {
          case Fault::kOutOfRange:
          case Fault::kUnknownCategory:
          case Fault::kMissing:
            CHECK(out.status[p].code() == keel::StatusCode::kInvalidInput);
            CHECK(out.failed == 1);
            break;
          case Fault::kNotWhole:
            CHECK(out.status[p].is_ok());
            CHECK(out.anomaly[p] == 1);
            CHECK(out.failed == 0);
            break;
          case Fault::kClamped: {
            CHECK(out.status[p].is_ok());
            const auto v = clean_row(p);
            CHECK(out.scores[p] == 0.5f + v[0] + 10.f * 100.f + 100.f * v[2] + 1000.f * v[3]);
            break;
          }
          case Fault::kNone: break;
        }
        for (std::size_t r = 0; r < n; ++r) {
          if (r == p) continue;
          INFO(fmt::format("batch of {}, fault {} in row {}; clean row {}", n, static_cast<int>(fault), p, r));
          CHECK(out.status[r].is_ok());
          CHECK(out.anomaly[r] == 0);
        }
      }
    }
  }
  CHECK(checked > 500);
}
