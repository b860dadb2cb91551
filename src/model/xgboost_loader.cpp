// XGBoost model files (JSON and UBJSON, schema of 1.x through 3.x) into a
// TreeEnsembleSpec (gbtree, dart) or a LinearSpec (gblinear). Semantics
// follow /work/shared/fixtures/SEMANTICS.md: base_score is stored in output
// space and turned into a margin once, in float, as XGBoost's objective
// does; leaves add in float32 in tree order to output tree_info[i].

#include "model/json_doc.hpp"
#include "model/loader_util.hpp"

#include <keel/model/explain.hpp>
#include <keel/model/linear_model.hpp>
#include <keel/model/loaders.hpp>
#include <keel/model/tree_ensemble.hpp>
#include <keel/model/tree_spec.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace keel {
namespace {

using detail::Json;
using detail::throw_model_error;

// How an objective maps base_score to a margin and the margin to an output.
enum class BaseLink : std::uint8_t { kIdentity, kLogit, kLog };

struct Objective {
  std::string_view name;
  Transform transform;
  BaseLink base;
  bool multiclass;
};

constexpr Objective kObjectives[] = {
    {"binary:logistic", Transform::kSigmoid, BaseLink::kLogit, false},
    {"reg:logistic", Transform::kSigmoid, BaseLink::kLogit, false},
    {"binary:logitraw", Transform::kIdentity, BaseLink::kIdentity, false},
    {"binary:hinge", Transform::kHinge, BaseLink::kIdentity, false},
    {"reg:squarederror", Transform::kIdentity, BaseLink::kIdentity, false},
    {"reg:linear", Transform::kIdentity, BaseLink::kIdentity, false},
    {"reg:squaredlogerror", Transform::kIdentity, BaseLink::kIdentity, false},
    {"reg:pseudohubererror", Transform::kIdentity, BaseLink::kIdentity, false},
    {"reg:absoluteerror", Transform::kIdentity, BaseLink::kIdentity, false},
    {"reg:quantileerror", Transform::kIdentity, BaseLink::kIdentity, false},
    {"rank:pairwise", Transform::kIdentity, BaseLink::kIdentity, false},
    {"rank:ndcg", Transform::kIdentity, BaseLink::kIdentity, false},
    {"rank:map", Transform::kIdentity, BaseLink::kIdentity, false},
    {"count:poisson", Transform::kExp, BaseLink::kLog, false},
    {"reg:gamma", Transform::kExp, BaseLink::kLog, false},
    {"reg:tweedie", Transform::kExp, BaseLink::kLog, false},
    {"survival:cox", Transform::kExp, BaseLink::kLog, false},
    {"survival:aft", Transform::kExp, BaseLink::kLog, false},
    {"multi:softprob", Transform::kSoftmax, BaseLink::kIdentity, true},
    {"multi:softmax", Transform::kSoftmaxArgmax, BaseLink::kIdentity, true},
};

const Objective& find_objective(const std::string& name, std::string_view path) {
  for (const Objective& o : kObjectives) {
    if (o.name == name) return o;
  }
  throw_model_error(fmt::format("{}: unknown objective '{}'", path, name));
}

// base_score in output space -> margin, in float as XGBoost's
// ObjFunction::ProbToMargin computes it.
float base_to_margin(float b, BaseLink link, std::string_view objective) {
  switch (link) {
    case BaseLink::kIdentity: return b;
    case BaseLink::kLogit:
      if (!(b > 0.0f && b < 1.0f)) {
        throw_model_error(fmt::format("base_score {} must be in (0, 1) for objective '{}'", b, objective));
      }
      return -std::log(1.0f / b - 1.0f);
    case BaseLink::kLog:
      if (!(b > 0.0f)) throw_model_error(fmt::format("base_score {} must be > 0 for objective '{}'", b, objective));
      return std::log(b);
  }
  return b;
}

// "5E-1", a number, or the 2.x+/3.x vector form "[5E-1]" / "[5E-1,2E-1]".
std::vector<float> read_base_score(const Json& v, std::string_view path) {
  std::vector<float> out;
  if (v.is_string()) {
    std::string_view s = v.get_ref<const std::string&>();
    if (!s.empty() && s.front() == '[') {
      if (s.back() != ']') throw_model_error(fmt::format("{}: unterminated vector '{}'", path, s));
      s = s.substr(1, s.size() - 2);
      while (true) {
        const std::size_t comma = s.find(',');
        std::string_view item = s.substr(0, comma);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        float f = 0;
        if (!detail::parse_float(item, f)) {
          throw_model_error(fmt::format("{}: '{}' is not a number", path, item));
        }
        out.push_back(f);
        if (comma == std::string_view::npos) break;
        s.remove_prefix(comma + 1);
      }
      return out;
    }
  }
  if (v.is_array()) {
    const auto& a = detail::as_array(v, path);
    for (std::size_t i = 0; i < a.size(); ++i) out.push_back(detail::as_float(a[i], detail::index_path(path, i)));
    return out;
  }
  out.push_back(detail::as_float(v, path));
  return out;
}

FeatureType feature_type(const std::string& t, std::string_view path) {
  if (t == "q" || t == "float") return FeatureType::kNumeric;
  if (t == "int") return FeatureType::kInteger;
  if (t == "i") return FeatureType::kIndicator;
  if (t == "c") return FeatureType::kCategorical;
  throw_model_error(fmt::format("{}: unknown feature type '{}'", path, t));
}

// Everything the learner section says, before the booster.
struct Learner {
  ModelInfo info;
  const Objective* objective = nullptr;
  std::vector<float> base_margin;  // per output, in margin space (float)
  std::size_t k = 1;               // margin outputs
  std::size_t input_bytes = 0;
};

Learner read_learner(const Json& learner, ModelFormat format, std::size_t input_bytes) {
  Learner L;
  L.input_bytes = input_bytes;
  ModelInfo& mi = L.info;
  mi.format = format;
  const std::string lp = "learner.learner_model_param";
  const Json& lmp = detail::field(learner, "learner_model_param", "learner");

  // A model may declare more features than it uses (hashed inputs), but the
  // declaration must stay in proportion to the file, or a few bytes could
  // make us allocate gigabytes.
  const auto feature_cap = static_cast<std::int64_t>(
      std::min<std::size_t>(std::size_t{1} << 28, std::max<std::size_t>(std::size_t{1} << 20, 16 * input_bytes)));
  const std::int64_t nf = detail::as_int(detail::field(lmp, "num_feature", lp), lp + ".num_feature", 1, feature_cap);
  std::int64_t num_class = 0;
  if (const Json* nc = detail::find_field(lmp, "num_class")) num_class = detail::as_int(*nc, lp + ".num_class", 0, 1 << 16);
  if (const Json* nt = detail::find_field(lmp, "num_target")) {
    const std::int64_t t = detail::as_int(*nt, lp + ".num_target", 0, 1 << 16);
    if (t > 1) throw_model_error(fmt::format("{}.num_target: multi-target models ({} targets) are not supported", lp, t));
  }

  const Json& obj = detail::field(learner, "objective", "learner");
  const std::string& oname = detail::as_string(detail::field(obj, "name", "learner.objective"), "learner.objective.name");
  L.objective = &find_objective(oname, "learner.objective.name");
  if (L.objective->multiclass && num_class < 1) {
    throw_model_error(fmt::format("{}.num_class: objective '{}' needs num_class >= 1, found {}", lp, oname, num_class));
  }
  L.k = static_cast<std::size_t>(std::max<std::int64_t>(num_class, 1));
  mi.objective = oname;
  mi.num_features = static_cast<std::size_t>(nf);
  mi.num_margin_outputs = L.k;
  mi.num_outputs = L.objective->transform == Transform::kSoftmaxArgmax ? 1 : L.k;
  mi.num_classes = static_cast<std::size_t>(num_class);

  std::vector<float> base = read_base_score(detail::field(lmp, "base_score", lp), lp + ".base_score");
  if (base.size() != 1 && base.size() != L.k) {
    throw_model_error(fmt::format("{}.base_score: {} values for {} outputs", lp, base.size(), L.k));
  }
  for (std::size_t o = 0; o < L.k; ++o) {
    const float b = base[base.size() == 1 ? 0 : o];
    if (!std::isfinite(b)) throw_model_error(fmt::format("{}.base_score: value {} is not finite", lp, o));
    mi.base_score.push_back(b);
    L.base_margin.push_back(base_to_margin(b, L.objective->base, oname));
  }

  mi.features.resize(mi.num_features);
  if (const Json* names = detail::find_field(learner, "feature_names")) {
    const auto& a = detail::as_array(*names, "learner.feature_names");
    if (!a.empty()) {
      if (a.size() != mi.num_features) {
        throw_model_error(fmt::format("learner.feature_names: {} names for {} features", a.size(), mi.num_features));
      }
      for (std::size_t j = 0; j < a.size(); ++j) {
        mi.features[j].name = detail::as_string(a[j], detail::index_path("learner.feature_names", j));
      }
      mi.has_feature_names = true;
    }
  }
  if (const Json* types = detail::find_field(learner, "feature_types")) {
    const auto& a = detail::as_array(*types, "learner.feature_types");
    if (!a.empty()) {
      if (a.size() != mi.num_features) {
        throw_model_error(fmt::format("learner.feature_types: {} types for {} features", a.size(), mi.num_features));
      }
      for (std::size_t j = 0; j < a.size(); ++j) {
        const std::string p = detail::index_path("learner.feature_types", j);
        mi.features[j].type = feature_type(detail::as_string(a[j], p), p);
      }
    }
  }
  return L;
}

// A tree's categories: per node, the slice of `categories` it owns.
struct CatSlice {
  std::size_t begin = 0;
  std::size_t size = 0;
};

std::int64_t param_int(const Json& params, std::string_view key, std::string_view path, std::int64_t lo,
                       std::int64_t hi, std::int64_t dflt) {
  const Json* v = detail::find_field(params, key);
  return v == nullptr ? dflt : detail::as_int(*v, detail::child_path(path, key), lo, hi);
}

Tree read_tree(const Json& jt, std::size_t ti, const std::string& path, const Learner& L, std::size_t& cat_words_left) {
  const std::size_t nf = L.info.num_features;
  const Json& tp = detail::field(jt, "tree_param", path);
  const std::string tpp = path + ".tree_param";
  const std::int64_t num_nodes = param_int(tp, "num_nodes", tpp, 1, std::numeric_limits<std::int32_t>::max(), -1);
  if (num_nodes < 0) throw_model_error(fmt::format("missing field '{}.num_nodes'", tpp));
  const std::int64_t num_deleted = param_int(tp, "num_deleted", tpp, 0, num_nodes, 0);
  if (param_int(tp, "size_leaf_vector", tpp, 0, 1 << 16, 0) > 1) {
    throw_model_error(fmt::format("{}.size_leaf_vector: vector-leaf (multi-target) trees are not supported", tpp));
  }
  const auto n = static_cast<std::size_t>(num_nodes);

  constexpr std::int64_t kNodeMax = std::numeric_limits<std::int32_t>::max();
  auto node_array = [&](std::string_view key, std::int64_t lo, std::int64_t hi) {
    const std::string p = detail::child_path(path, key);
    std::vector<std::int64_t> a = detail::as_int_array(detail::field(jt, key, path), p, lo, hi);
    if (a.size() != n) throw_model_error(fmt::format("{}: {} entries but num_nodes is {}", p, a.size(), n));
    return a;
  };
  const std::vector<std::int64_t> left = node_array("left_children", -1, kNodeMax);
  const std::vector<std::int64_t> right = node_array("right_children", -1, kNodeMax);
  // Deleted (pruned) nodes carry split index 2^31 - 1; they are unreachable.
  const std::vector<std::int64_t> split_index = node_array("split_indices", 0, std::numeric_limits<std::uint32_t>::max());
  const std::vector<std::int64_t> default_left = node_array("default_left", 0, 1);
  std::vector<std::int64_t> split_type(n, 0);
  if (detail::find_field(jt, "split_type") != nullptr) split_type = node_array("split_type", 0, 1);
  const std::string cond_path = path + ".split_conditions";
  const std::vector<double> cond = detail::as_double_array(detail::field(jt, "split_conditions", path), cond_path);
  if (cond.size() != n) throw_model_error(fmt::format("{}: {} entries but num_nodes is {}", cond_path, cond.size(), n));

  // Categories: four parallel arrays, present together.
  std::unordered_map<std::size_t, CatSlice> cats;
  std::vector<std::int64_t> categories;
  if (const Json* jc = detail::find_field(jt, "categories_nodes")) {
    const std::string cp = path + ".categories";
    const auto nodes = detail::as_int_array(*jc, path + ".categories_nodes", 0, num_nodes - 1);
    const auto segs = detail::as_int_array(detail::field(jt, "categories_segments", path),
                                           path + ".categories_segments", 0, std::numeric_limits<std::int64_t>::max());
    const auto sizes = detail::as_int_array(detail::field(jt, "categories_sizes", path), path + ".categories_sizes",
                                            0, std::numeric_limits<std::int64_t>::max());
    categories = detail::as_int_array(detail::field(jt, "categories", path), cp, std::numeric_limits<std::int32_t>::min(),
                                      std::numeric_limits<std::int32_t>::max());
    if (segs.size() != nodes.size() || sizes.size() != nodes.size()) {
      throw_model_error(fmt::format("{}: categories_nodes/segments/sizes have {}/{}/{} entries", path, nodes.size(),
                                    segs.size(), sizes.size()));
    }
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const auto begin = static_cast<std::uint64_t>(segs[i]);
      const auto size = static_cast<std::uint64_t>(sizes[i]);
      if (begin > categories.size() || size > categories.size() - begin) {
        throw_model_error(fmt::format("tree {} node {}: category segment [{}, +{}) out of range of {} categories ({}.categories_segments[{}])",
                                      ti, nodes[i], begin, size, categories.size(), path, i));
      }
      const auto node = static_cast<std::size_t>(nodes[i]);
      if (split_type[node] != 1 || left[node] == -1) {
        throw_model_error(fmt::format("tree {} node {}: listed in {}.categories_nodes[{}] but not a categorical split",
                                      ti, node, path, i));
      }
      if (!cats.emplace(node, CatSlice{begin, size}).second) {
        throw_model_error(fmt::format("tree {} node {}: listed twice in {}.categories_nodes", ti, nodes[i], path));
      }
    }
  }

  // Walk from the root: every reachable node once (cycles and shared nodes
  // are errors); unreachable nodes must be the file's deleted ones.
  std::vector<std::int32_t> new_id(n, -1);
  std::vector<std::size_t> stack{0};
  new_id[0] = 0;
  std::size_t reachable = 1;
  while (!stack.empty()) {
    const std::size_t i = stack.back();
    stack.pop_back();
    if (left[i] == -1) {
      if (right[i] != -1) {
        throw_model_error(fmt::format("tree {} node {}: left child is -1 but right child is {} ({}.right_children[{}])",
                                      ti, i, right[i], path, i));
      }
      continue;
    }
    for (const std::int64_t c : {left[i], right[i]}) {
      if (c < 0 || static_cast<std::size_t>(c) >= n) {
        throw_model_error(fmt::format("tree {} node {}: child {} out of range [0, {}) ({}.left_children/right_children[{}])",
                                      ti, i, c, n, path, i));
      }
      if (new_id[static_cast<std::size_t>(c)] != -1) {
        throw_model_error(fmt::format("tree {} node {}: child {} is reached twice (cycle or shared node)", ti, i, c));
      }
      new_id[static_cast<std::size_t>(c)] = 0;
      ++reachable;
      stack.push_back(static_cast<std::size_t>(c));
    }
  }
  if (n - reachable != static_cast<std::size_t>(num_deleted)) {
    throw_model_error(fmt::format("tree {}: {} of {} nodes are unreachable from the root but {}.num_deleted is {}", ti,
                                  n - reachable, n, tpp, num_deleted));
  }
  // Number the reachable nodes in file order, so ids match XGBoost's when
  // nothing was deleted.
  std::int32_t next = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (new_id[i] != -1) new_id[i] = next++;
  }

  Tree t;
  t.nodes.resize(reachable);
  // For explanations (explain.hpp): covers and XGBoost's own node ids.
  if (const Json* jh = detail::find_field(jt, "sum_hessian")) {
    const std::vector<double> hess = detail::as_double_array(*jh, path + ".sum_hessian");
    if (hess.size() != n) throw_model_error(fmt::format("{}.sum_hessian: {} entries but num_nodes is {}", path, hess.size(), n));
    t.cover.resize(reachable);
    for (std::size_t i = 0; i < n; ++i) {
      if (new_id[i] != -1) t.cover[static_cast<std::size_t>(new_id[i])] = hess[i];
    }
  }
  t.source_id.resize(reachable);
  for (std::size_t i = 0; i < n; ++i) {
    if (new_id[i] != -1) t.source_id[static_cast<std::size_t>(new_id[i])] = static_cast<std::int32_t>(i);
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (new_id[i] == -1) continue;
    TreeNode& nd = t.nodes[static_cast<std::size_t>(new_id[i])];
    if (left[i] == -1) {
      if (!std::isfinite(cond[i])) {
        throw_model_error(fmt::format("tree {} node {}: leaf value is not finite ({}[{}])", ti, i, cond_path, i));
      }
      nd.leaf_value = static_cast<float>(cond[i]);
      continue;
    }
    nd.left = new_id[static_cast<std::size_t>(left[i])];
    nd.right = new_id[static_cast<std::size_t>(right[i])];
    nd.default_left = default_left[i] != 0;
    if (split_index[i] < 0 || static_cast<std::size_t>(split_index[i]) >= nf) {
      throw_model_error(fmt::format("tree {} node {}: split feature {} out of range [0, {}) ({}.split_indices[{}])", ti,
                                    i, split_index[i], nf, path, i));
    }
    nd.feature = static_cast<std::int32_t>(split_index[i]);
    const auto cat = cats.find(i);
    if (split_type[i] == 0) {
      if (std::isnan(cond[i])) {
        throw_model_error(fmt::format("tree {} node {}: NaN threshold on a numeric split ({}[{}])", ti, i, cond_path, i));
      }
      nd.kind = SplitKind::kNumericLess;
      nd.threshold = static_cast<float>(cond[i]);
      continue;
    }
    if (cat == cats.end()) {
      throw_model_error(fmt::format("tree {} node {}: categorical split without categories ({}.categories_nodes)", ti, i, path));
    }
    nd.kind = SplitKind::kCategorical;
    std::int64_t max_cat = -1;
    for (std::size_t c = 0; c < cat->second.size; ++c) {
      const std::int64_t v = categories[cat->second.begin + c];
      if (v < 0 || v >= (std::int64_t{1} << 24)) {
        throw_model_error(fmt::format("tree {} node {}: category {} out of range [0, 2^24) ({}.categories[{}])", ti, i, v,
                                      path, cat->second.begin + c));
      }
      max_cat = std::max(max_cat, v);
    }
    const std::size_t words = max_cat < 0 ? 0 : static_cast<std::size_t>(max_cat) / 32 + 1;
    if (words > cat_words_left) {
      throw_model_error(fmt::format("tree {} node {}: category bitsets exceed the size limit for this file", ti, i));
    }
    cat_words_left -= words;
    nd.cat_offset = static_cast<std::uint32_t>(t.category_bits.size());
    nd.cat_words = static_cast<std::uint32_t>(words);
    t.category_bits.resize(t.category_bits.size() + words, 0u);
    for (std::size_t c = 0; c < cat->second.size; ++c) {
      const auto v = static_cast<std::uint32_t>(categories[cat->second.begin + c]);
      t.category_bits[nd.cat_offset + v / 32] |= 1u << (v % 32);
    }
  }
  return t;
}

std::vector<Tree> read_trees(const Json& model, const std::string& path, const Learner& L) {
  const Json& params = detail::field(model, "gbtree_model_param", path);
  const std::string pp = path + ".gbtree_model_param";
  const auto& jtrees = detail::as_array(detail::field(model, "trees", path), path + ".trees");
  const std::int64_t num_trees = param_int(params, "num_trees", pp, 0, std::numeric_limits<std::int32_t>::max(),
                                           static_cast<std::int64_t>(jtrees.size()));
  if (static_cast<std::size_t>(num_trees) != jtrees.size()) {
    throw_model_error(fmt::format("{}.num_trees is {} but {}.trees has {} trees", pp, num_trees, path, jtrees.size()));
  }
  if (param_int(params, "size_leaf_vector", pp, 0, 1 << 16, 0) > 1) {
    throw_model_error(fmt::format("{}.size_leaf_vector: vector-leaf (multi-target) trees are not supported", pp));
  }
  const auto info = detail::as_int_array(detail::field(model, "tree_info", path), path + ".tree_info", 0,
                                         static_cast<std::int64_t>(L.k) - 1);
  if (info.size() != jtrees.size()) {
    throw_model_error(fmt::format("{}.tree_info has {} entries for {} trees", path, info.size(), jtrees.size()));
  }
  // Category bitsets are the one allocation not bounded by an array in the
  // file; keep their total in proportion to it.
  std::size_t cat_words_left = std::max<std::size_t>(std::size_t{1} << 20, L.input_bytes);
  std::vector<Tree> trees;
  trees.reserve(jtrees.size());
  for (std::size_t i = 0; i < jtrees.size(); ++i) {
    trees.push_back(read_tree(jtrees[i], i, detail::index_path(path + ".trees", i), L, cat_words_left));
    trees.back().output = static_cast<std::uint32_t>(info[i]);
  }
  return trees;
}

Result<ModelPtr> build_trees(Learner L, std::vector<Tree> trees, std::string booster, const LoadOptions& opts) {
  TreeEnsembleSpec spec;
  spec.info = std::move(L.info);
  spec.info.booster = std::move(booster);
  spec.info.id = opts.id.empty() ? "model" : opts.id;
  spec.trees = std::move(trees);
  spec.base_margin.assign(L.base_margin.begin(), L.base_margin.end());
  spec.transform = L.objective->transform;
  spec.arithmetic = Arithmetic::kXGBoost;
  spec.category_rule = CategoryRule::kXGBoost;
  if (Status s = attach_tree_explainer(spec); !s) return s;
  return make_tree_ensemble(std::move(spec), opts.tree);
}

Result<ModelPtr> build_linear(Learner L, const Json& model, const LoadOptions& opts) {
  const std::string path = "learner.gradient_booster.model";
  const std::vector<double> w = detail::as_double_array(detail::field(model, "weights", path), path + ".weights");
  const std::size_t f = L.info.num_features;
  const std::size_t k = L.k;
  if (w.size() / k != f + 1 || w.size() % k != 0) {
    throw_model_error(fmt::format("{}.weights: {} values, expected (num_feature + 1) * outputs = ({} + 1) * {}", path,
                                  w.size(), f, k));
  }
  LinearSpec spec;
  spec.info = std::move(L.info);
  spec.info.booster = "gblinear";
  spec.info.id = opts.id.empty() ? "model" : opts.id;
  spec.weights.resize(f * k);
  for (std::size_t i = 0; i < f * k; ++i) {
    spec.weights[i] = static_cast<float>(w[i]);
    if (!std::isfinite(spec.weights[i])) {
      throw_model_error(fmt::format("{}.weights[{}]: feature {} output {} is not finite", path, i, i / k, i % k));
    }
  }
  for (std::size_t o = 0; o < k; ++o) {
    const auto bias = static_cast<float>(w[f * k + o]);
    if (!std::isfinite(bias)) throw_model_error(fmt::format("{}.weights[{}]: bias {} is not finite", path, f * k + o, o));
    spec.intercept.push_back(bias + L.base_margin[o]);  // XGBoost: psum = bias + base, in float
  }
  spec.transform = L.objective->transform;
  spec.exact_order = true;
  auto m = make_linear_model(std::move(spec));
  if (!m.ok()) return m.status();
  return ModelPtr(std::move(m).value());
}

}  // namespace

Result<ModelPtr> detail::xgboost_from_document(const Json& root, ModelFormat format, std::size_t input_bytes,
                                               const LoadOptions& opts) {
  const Json& learner = detail::field(root, "learner", "");
  Learner L = read_learner(learner, format, input_bytes);
  const Json& gb = detail::field(learner, "gradient_booster", "learner");
  const std::string gp = "learner.gradient_booster";
  const std::string& booster = detail::as_string(detail::field(gb, "name", gp), gp + ".name");
  if (booster == "gbtree") {
    std::vector<Tree> trees = read_trees(detail::field(gb, "model", gp), gp + ".model", L);
    return build_trees(std::move(L), std::move(trees), booster, opts);
  }
  if (booster == "dart") {
    const std::string mp = gp + ".gbtree.model";
    const Json& inner = detail::field(gb, "gbtree", gp);
    std::vector<Tree> trees = read_trees(detail::field(inner, "model", gp + ".gbtree"), mp, L);
    const std::vector<double> drop = detail::as_double_array(detail::field(gb, "weight_drop", gp), gp + ".weight_drop");
    if (drop.size() != trees.size()) {
      throw_model_error(fmt::format("{}.weight_drop has {} weights for {} trees", gp, drop.size(), trees.size()));
    }
    for (std::size_t i = 0; i < trees.size(); ++i) {
      const auto wf = static_cast<float>(drop[i]);
      if (!std::isfinite(wf)) throw_model_error(fmt::format("{}.weight_drop[{}]: tree {} weight is not finite", gp, i, i));
      trees[i].weight = wf;
    }
    return build_trees(std::move(L), std::move(trees), booster, opts);
  }
  if (booster == "gblinear") return build_linear(std::move(L), detail::field(gb, "model", gp), opts);
  throw_model_error(fmt::format("{}.name: unknown booster '{}'", gp, booster));
}

Result<ModelPtr> load_xgboost_json(std::string_view text, const LoadOptions& opts) {
  return detail::guarded_load("XGBoost JSON", text.size(), opts, [&] {
    const Json root = detail::parse_json_text(text);
    return detail::xgboost_from_document(root, ModelFormat::kXGBoostJson, text.size(), opts);
  });
}

Result<ModelPtr> load_xgboost_ubjson(std::span<const std::uint8_t> bytes, const LoadOptions& opts) {
  return detail::guarded_load("XGBoost UBJSON", bytes.size(), opts, [&] {
    const Json root = detail::parse_ubjson(bytes);
    return detail::xgboost_from_document(root, ModelFormat::kXGBoostUbjson, bytes.size(), opts);
  });
}

}  // namespace keel
