// The main demo (./scripts/demo): builds a small tree ensemble in code and
// scores a few rows through keel's reference evaluator, showing the core
// types a host sees: Result, Status, Deadline.

#include <keel/keel.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

int main() {
  std::printf("keel %s demo\n", std::string(keel::version()).c_str());

  // One XGBoost-style tree: x0 < 0.5 ? (x1 < 2 ? -1 : 1) : 3, NaN goes left.
  keel::TreeEnsembleSpec spec;
  spec.info.format = keel::ModelFormat::kCustom;
  spec.info.objective = "binary:logistic";
  spec.info.num_features = 2;
  spec.info.features = {{"x0", keel::FeatureType::kNumeric}, {"x1", keel::FeatureType::kNumeric}};
  spec.info.id = "demo";
  spec.base_margin = {0.0};
  spec.transform = keel::Transform::kSigmoid;
  keel::Tree t;
  auto split = [](int f, double thr, int l, int r) {
    keel::TreeNode n;
    n.kind = keel::SplitKind::kNumericLess;
    n.feature = f;
    n.threshold = thr;
    n.left = l;
    n.right = r;
    n.default_left = true;
    return n;
  };
  auto leaf = [](double v) {
    keel::TreeNode n;
    n.leaf_value = v;
    return n;
  };
  t.nodes = {split(0, 0.5, 1, 2), split(1, 2.0, 3, 4), leaf(3.0), leaf(-1.0), leaf(1.0)};
  spec.trees.push_back(t);

  auto model = keel::make_reference_model(spec);
  if (!model.ok()) {
    std::printf("load failed: %s\n", model.status().to_string().c_str());
    return 1;
  }
  const auto& info = (*model)->info();
  std::printf("model '%s': %zu trees, max depth %zu, %zu features\n", info.id.c_str(), info.num_trees,
              info.max_depth, info.num_features);

  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> rows = {0.1f, 1.0f, 0.1f, 5.0f, 0.9f, 0.0f, nan, nan};
  std::vector<float> out(4);
  if (auto s = (*model)->predict(rows, 4, out); !s) {
    std::printf("predict failed: %s\n", s.to_string().c_str());
    return 1;
  }
  for (int r = 0; r < 4; ++r) {
    std::printf("row %d: x0=%g x1=%g -> p=%.6f\n", r, rows[2 * r], rows[2 * r + 1], out[r]);
  }

  // A wrong-length batch is an error value, not a crash.
  auto bad = (*model)->predict(std::span<const float>(rows).first(3), 2, out);
  std::printf("wrong-length batch -> %s\n", bad.to_string().c_str());

  auto d = keel::Deadline::after(std::chrono::milliseconds(5));
  std::printf("a 5 ms deadline has %lld us left\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(d.remaining()).count()));
  return 0;
}
