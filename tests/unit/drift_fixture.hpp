#pragma once
// Shared data for the DriftMonitor tests: a reference profile over six
// features and rows drawn from it or from a shifted distribution.
#include <keel/validate/profile_builder.hpp>

#include <catch2/catch.hpp>

#include <limits>
#include <random>
#include <vector>

namespace drift_fixture {

inline constexpr std::size_t kFeatures = 6;

// x0..x3 normal(0, 1); c4 categorical {0, 1, 2}; m5 normal(5, 1), never
// missing. shift moves x1 by +1.5 sd, doubles the spread of x3, and makes
// a third of m5 missing; everything else keeps its distribution.
inline std::vector<float> rows(std::size_t n, unsigned seed, bool shift) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> z(0.0f, 1.0f);
  std::uniform_int_distribution<int> cat(0, 2);
  std::vector<float> out;
  out.reserve(n * kFeatures);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(z(rng));
    out.push_back(z(rng) + (shift ? 1.5f : 0.0f));
    out.push_back(z(rng));
    out.push_back(z(rng) * (shift ? 2.0f : 1.0f));
    out.push_back(static_cast<float>(cat(rng)));
    const float m = 5.0f + z(rng);
    out.push_back(shift && i % 3 == 0 ? std::numeric_limits<float>::quiet_NaN() : m);
  }
  return out;
}

inline std::vector<keel::FeatureInfo> features() {
  return {{"x0", keel::FeatureType::kNumeric}, {"x1", keel::FeatureType::kNumeric},
          {"x2", keel::FeatureType::kNumeric}, {"x3", keel::FeatureType::kNumeric},
          {"c4", keel::FeatureType::kCategorical}, {"m5", keel::FeatureType::kNumeric}};
}

// Scores: the mean of x0 and x1 (so that x1's shift moves the score).
inline std::vector<float> scores(const std::vector<float>& r) {
  std::vector<float> s;
  for (std::size_t i = 0; i < r.size() / kFeatures; ++i) s.push_back((r[i * kFeatures] + r[i * kFeatures + 1]) / 2);
  return s;
}

inline keel::Profile reference(std::size_t n = 20000) {
  keel::ProfileBuilder b(features());
  const auto r = rows(n, 1, false);
  REQUIRE(b.add(r, n).is_ok());
  b.add_scores(scores(r));
  return b.build();
}

}  // namespace drift_fixture
