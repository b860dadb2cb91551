#pragma once
// Shared by the tree-ensemble tests: random specs that exercise every split
// kind, missing rule and arithmetic, awkward rows, and bit-exact comparison.

#include <keel/model/loaders.hpp>
#include <keel/model/reference_evaluator.hpp>
#include <keel/model/tree_ensemble.hpp>
#include <keel/model/tree_spec.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace keel::testing {

struct SpecShape {
  bool lightgbm = false;
  std::size_t features = 8;
  std::size_t outputs = 1;
  std::size_t trees = 20;
  std::size_t max_depth = 8;
  double leaf_prob = 0.15;      // chance a node above max_depth stops early
  double categorical = 0.0;     // share of categorical splits
  double linear = 0.0;          // share of linear leaves
  bool dart = false;
  std::size_t max_nodes = 3000;  // per tree: deep trees stay unbalanced, not huge
};

inline constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();
inline constexpr float kInff = std::numeric_limits<float>::infinity();

// Thresholds chosen to sit on float/double rounding edges, zero bands and
// infinities; rows are drawn from them and their float neighbours.
inline const std::vector<double>& edge_values() {
  static const std::vector<double> v = {
      0.0, -0.0, 1e-35, -1e-35, static_cast<double>(1e-35f), -static_cast<double>(1e-35f), 1e-36, -1e-36, 0.1, -0.1,
      1.0 / 3.0, 0.5, -0.5, 1.0, -1.0, 2.5, 100.0, -100.0, 16777216.0, 3.4e38, -3.4e38, 1e39, -1e39,
      static_cast<double>(std::numeric_limits<float>::max()), std::numeric_limits<double>::infinity(),
      -std::numeric_limits<double>::infinity(), 7.0, 31.0, 32.0, 64.5};
  return v;
}

inline double pick_threshold(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(-3.0, 3.0);
  if (rng() % 3 == 0) return u(rng);
  const auto& e = edge_values();
  return e[rng() % e.size()];
}

inline float pick_value(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(-3.0, 3.0);
  switch (rng() % 8) {
    case 0: return kNaNf;
    case 1:
    case 2: return static_cast<float>(u(rng));
    case 3: return static_cast<float>(static_cast<int>(rng() % 70) - 3);  // category-like
    default: {
      const auto& e = edge_values();
      float f = static_cast<float>(e[rng() % e.size()]);
      const int nudge = static_cast<int>(rng() % 3) - 1;
      if (nudge != 0) f = std::nextafter(f, nudge > 0 ? kInff : -kInff);
      return f;
    }
  }
}

inline TreeEnsembleSpec random_spec(std::mt19937_64& rng, const SpecShape& s) {
  TreeEnsembleSpec spec;
  spec.info.num_features = s.features;
  spec.info.features.resize(s.features);
  spec.info.num_margin_outputs = s.outputs;
  spec.arithmetic = s.lightgbm ? Arithmetic::kLightGBM : Arithmetic::kXGBoost;
  spec.category_rule = s.lightgbm ? CategoryRule::kLightGBM : CategoryRule::kXGBoost;
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  std::uniform_real_distribution<double> leafv(-1.0, 1.0);
  for (std::size_t o = 0; o < s.outputs; ++o) spec.base_margin.push_back(s.lightgbm ? 0.0 : leafv(rng));
  if (s.outputs == 1) {
    const Transform ts[] = {Transform::kIdentity, Transform::kSigmoid, Transform::kExp, Transform::kHinge,
                            Transform::kLog1pExp, Transform::kSignedSquare};
    spec.transform = ts[rng() % 6];
  } else {
    spec.transform = rng() % 2 ? Transform::kSoftmax : Transform::kSoftmaxArgmax;
  }
  spec.info.num_outputs = spec.transform == Transform::kSoftmaxArgmax ? 1 : s.outputs;
  if (s.lightgbm && rng() % 4 == 0) {
    spec.average_output = true;
    spec.num_iterations = s.trees;
  }
  for (std::size_t ti = 0; ti < s.trees; ++ti) {
    Tree t;
    t.output = static_cast<std::uint32_t>(ti % s.outputs);
    if (s.dart) t.weight = rng() % 2 ? 1.0 : u01(rng);
    struct Item {
      std::int32_t id;
      std::size_t depth;
    };
    t.nodes.emplace_back();
    std::vector<Item> stack{{0, 0}};
    while (!stack.empty()) {
      const Item it = stack.back();
      stack.pop_back();
      TreeNode n;
      const bool leaf = it.depth >= s.max_depth || t.nodes.size() >= s.max_nodes ||
                        (it.depth > 0 && u01(rng) < s.leaf_prob);
      if (leaf) {
        n.leaf_value = leafv(rng);
        if (u01(rng) < s.linear) {
          n.linear = true;
          n.linear_const = leafv(rng);
          n.linear_offset = static_cast<std::uint32_t>(t.linear_terms.size());
          n.linear_count = 1 + static_cast<std::uint32_t>(rng() % 3);
          for (std::uint32_t k = 0; k < n.linear_count; ++k) {
            t.linear_terms.push_back({static_cast<std::int32_t>(rng() % s.features), leafv(rng)});
          }
        }
      } else {
        n.feature = static_cast<std::int32_t>(rng() % s.features);
        n.default_left = rng() % 2;
        if (u01(rng) < s.categorical) {
          n.kind = SplitKind::kCategorical;
          n.cat_offset = static_cast<std::uint32_t>(t.category_bits.size());
          n.cat_words = 1 + static_cast<std::uint32_t>(rng() % 2);
          for (std::uint32_t w = 0; w < n.cat_words; ++w) t.category_bits.push_back(static_cast<std::uint32_t>(rng()));
        } else {
          n.kind = s.lightgbm ? SplitKind::kNumericLessEqual : SplitKind::kNumericLess;
          n.threshold = pick_threshold(rng);
          if (s.lightgbm) n.missing = static_cast<MissingType>(rng() % 3);
        }
        n.left = static_cast<std::int32_t>(t.nodes.size());
        n.right = n.left + 1;
        t.nodes.emplace_back();
        t.nodes.emplace_back();
        stack.push_back({n.left, it.depth + 1});
        stack.push_back({n.right, it.depth + 1});
      }
      t.nodes[static_cast<std::size_t>(it.id)] = n;
    }
    spec.trees.push_back(std::move(t));
  }
  compute_shape(spec);
  return spec;
}

inline std::vector<float> random_rows(std::mt19937_64& rng, std::size_t n, std::size_t features) {
  std::vector<float> rows(n * features);
  for (float& x : rows) x = pick_value(rng);
  return rows;
}

// Bit-exact equality (NaN equals NaN with the same bits).
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

inline std::vector<TreeKernel> available_kernels() {
  std::vector<TreeKernel> ks;
  for (TreeKernel k : {TreeKernel::kScalar, TreeKernel::kAvx2, TreeKernel::kAvx512}) {
    if (tree_kernel_supported(k)) ks.push_back(k);
  }
  return ks;
}

// Loads a model file with kernel k as the process default.
inline Result<ModelPtr> load_with(const std::string& path, TreeKernel k) {
  REQUIRE(set_default_tree_kernel(k).is_ok());
  auto m = load_model(path);
  REQUIRE(set_default_tree_kernel(TreeKernel::kAuto).is_ok());
  return m;
}

// Fixture inputs (tests/data/*/NAME.input.csv): header skipped, empty field =
// NaN; cols = the header's columns.
// Every fixture model under tests/data/{xgboost,lightgbm} that has an input
// CSV beside it: fn(lib, model file name, model path, input path).
template <class Fn>
void for_each_fixture(Fn&& fn) {
  namespace fs = std::filesystem;
  for (const char* lib : {"xgboost", "lightgbm"}) {
    const fs::path dir = fs::path(KEEL_TEST_DATA_DIR) / lib;
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string file = entry.path().filename().string();
      std::string stem;
      if (file.ends_with(".model.txt")) stem = file.substr(0, file.size() - 10);
      else if (file.ends_with(".json") && file != "cases.json") stem = file.substr(0, file.size() - 5);
      else if (file.ends_with(".ubj")) stem = file.substr(0, file.size() - 4);
      else continue;
      const fs::path input = dir / (stem + ".input.csv");
      if (!fs::exists(input)) continue;
      fn(std::string_view(lib), file, entry.path().string(), input.string());
    }
  }
}

inline std::vector<double> read_fixture_rows(const std::string& path, std::size_t& cols) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::string line;
  std::getline(in, line);
  cols = static_cast<std::size_t>(std::count(line.begin(), line.end(), ',')) + 1;
  std::vector<double> v;
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string field;
    std::size_t n = 0;
    while (std::getline(ss, field, ',')) {
      v.push_back(field.empty() ? std::numeric_limits<double>::quiet_NaN() : std::strtod(field.c_str(), nullptr));
      ++n;
    }
    if (!line.empty() && line.back() == ',') {
      v.push_back(std::numeric_limits<double>::quiet_NaN());
      ++n;
    }
    REQUIRE(n == cols);
  }
  return v;
}

// A CSV of doubles (models-in-the-wild input.csv), empty field = NaN, up to
// max_rows rows into rows ([n][features]), columns reordered to the model's
// feature names when it has them; false when a name is not in the header.
inline bool read_named_csv(const std::string& path, const ModelInfo& mi, std::vector<double>& rows, std::size_t& n,
                           std::size_t max_rows = std::size_t(-1)) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::string line;
  std::getline(in, line);
  std::vector<std::string> header;
  {
    std::stringstream ss(line);
    std::string h;
    while (std::getline(ss, h, ',')) header.push_back(h);
  }
  std::vector<std::size_t> col_of(mi.num_features);
  for (std::size_t f = 0; f < mi.num_features; ++f) {
    col_of[f] = f;
    if (!mi.has_feature_names) continue;
    auto it = std::find(header.begin(), header.end(), mi.features[f].name);
    if (it == header.end()) return false;
    col_of[f] = static_cast<std::size_t>(it - header.begin());
  }
  rows.clear();
  n = 0;
  while (n < max_rows && std::getline(in, line)) {
    std::vector<double> fields;
    std::stringstream ss(line);
    std::string field;
    while (std::getline(ss, field, ',')) {
      fields.push_back(field.empty() ? std::numeric_limits<double>::quiet_NaN() : std::strtod(field.c_str(), nullptr));
    }
    while (fields.size() < header.size()) fields.push_back(std::numeric_limits<double>::quiet_NaN());
    for (std::size_t f = 0; f < mi.num_features; ++f) rows.push_back(col_of[f] < fields.size() ? fields[col_of[f]] : 0.0);
    ++n;
  }
  return true;
}

}  // namespace keel::testing
