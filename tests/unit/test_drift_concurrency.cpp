#include "drift_fixture.hpp"

#include <keel/validate/drift_monitor.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

using namespace keel;
using drift_fixture::kFeatures;

TEST_CASE("DriftMonitor: concurrent observe counts every row once", "[validate][drift][concurrency]") {
  const Profile ref = drift_fixture::reference(5000);
  constexpr int kThreads = 4;
  constexpr std::size_t kRows = 2000;
  std::vector<std::vector<float>> data;
  for (int t = 0; t < kThreads; ++t) data.push_back(drift_fixture::rows(kRows, 10 + t, t % 2 == 0));

  DriftOptions unbounded;
  unbounded.window_rows = 0;
  unbounded.shards = 3;
  DriftMonitor concurrent(ref, unbounded);
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done.load()) {
      const DriftSnapshot s = concurrent.snapshot();
      CHECK(s.rows <= kThreads * kRows);
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      const auto& r = data[static_cast<std::size_t>(t)];
      for (std::size_t i = 0; i < kRows; ++i) {
        if (i % 2 == 0) {
          concurrent.observe(std::span<const float>(r).subspan(i * kFeatures, kFeatures), static_cast<float>(i));
        } else {
          concurrent.observe(std::span<const float>(r).subspan(i * kFeatures, kFeatures), 1, {});
        }
      }
    });
  }
  for (auto& w : writers) w.join();
  done = true;
  reader.join();

  // The same rows observed by one thread give the same counts, so the same PSI.
  DriftMonitor serial(ref, unbounded);
  for (const auto& r : data) serial.observe(r, kRows, {});
  const DriftSnapshot a = concurrent.snapshot();
  const DriftSnapshot b = serial.snapshot();
  CHECK(a.rows == kThreads * kRows);
  CHECK(a.observed == kThreads * kRows);
  for (std::size_t j = 0; j < kFeatures; ++j) {
    CHECK(a.features[j].psi == Approx(b.features[j].psi).margin(1e-12));
    CHECK(a.features[j].missing_rate == b.features[j].missing_rate);
  }
}

TEST_CASE("DriftMonitor: concurrent observe with a sliding window stays bounded", "[validate][drift][concurrency]") {
  const Profile ref = drift_fixture::reference(5000);
  DriftOptions o;
  o.window_rows = 1000;
  o.shards = 2;
  DriftMonitor m(ref, o);
  const auto r = drift_fixture::rows(3000, 20, false);
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&] {
      for (std::size_t i = 0; i < 3000; ++i) m.observe(std::span<const float>(r).subspan(i * kFeatures, kFeatures));
    });
  }
  for (auto& w : writers) w.join();
  const DriftSnapshot s = m.snapshot();
  CHECK(s.observed == 9000);
  CHECK(s.rows <= 1000);
  CHECK(s.rows >= 900);
}
