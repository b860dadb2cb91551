// Builds against the installed package and scores through the public API.
#include <keel/keel.hpp>

#include <cstdio>
#include <string>
#include <vector>

int main() {
  keel::TreeEnsembleSpec spec;
  spec.info.num_features = 1;
  spec.info.features.resize(1);
  spec.base_margin = {0.5};
  keel::Tree t;
  keel::TreeNode root;
  root.kind = keel::SplitKind::kNumericLess;
  root.feature = 0;
  root.threshold = 1.0;
  root.left = 1;
  root.right = 2;
  keel::TreeNode l, r;
  l.leaf_value = -1.0;
  r.leaf_value = 1.0;
  t.nodes = {root, l, r};
  spec.trees.push_back(t);
  auto model = keel::make_reference_model(spec);
  if (!model.ok()) return 1;
  std::vector<float> rows = {0.0f, 2.0f}, out(2);
  if (!(*model)->predict(rows, 2, out).is_ok()) return 2;
  if (out[0] != -0.5f || out[1] != 1.5f) return 3;
  std::printf("consumer: keel %s from an installed package scored %g %g\n",
              std::string(keel::version()).c_str(), out[0], out[1]);
  return 0;
}
