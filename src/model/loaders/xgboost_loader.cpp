// XGBoost model files (JSON and UBJSON, schema of 1.x through 3.x) into a
// TreeEnsembleSpec (gbtree, dart) or a LinearSpec (gblinear). Semantics
// follow /work/shared/fixtures/SEMANTICS.md: base_score is stored in output
// space and turned into a margin once, in float, as XGBoost's objective
// does; leaves add in float32 in tree order to output tree_info[i].
//
// The rules, and where XGBoost defines them:
//  - Outputs (learner.cc, LearnerModelParam): num_class > 1 gives one output
//    per class, num_target > 1 one per target (multi-output regression,
//    multi-label, reg:quantileerror with several quantile_alpha); both > 1 is
//    refused. base_score holds one value, or ("[a,b]", 2.x+) one per output.
//  - Trees (gbtree_model.cc, GBTreeModel::LoadModel): trees[i] adds to
//    output tree_info[i]; its "id" is its position (checked).
//    iteration_indptr (2.0+) gives the trees of each boosting round:
//    round r is trees [indptr[r], indptr[r+1]). Older files: a round is
//    num_parallel_tree * outputs trees.
//  - Vector leaves (multi_strategy=multi_output_tree, 2.0+;
//    tree_model.cc RegTree::LoadModel, multi_target_tree_model.cc): a tree
//    with tree_param.size_leaf_vector T > 1 holds T values per leaf, one per
//    output; tree_info is 0. Up to 3.x the leaf of node n is
//    base_weights[n*T, n*T+T); later files add leaf_weights, where leaf n's
//    values are leaf_weights[j*T, j*T+T) with j = right_children[n] (the
//    right child of a leaf is reused as its leaf index).
//  - DART (gbtree.cc, Dart::PredictBatchImpl): tree i's leaf is multiplied
//    by weight_drop[i] (float) before it is added. Up to 3.1 the booster is
//    "dart" with gradient_booster.weight_drop beside gradient_booster.gbtree;
//    3.4 writes "gbtree" with gradient_booster.model.weight_drop.
//  - Iteration limits (gbtree.cc, GBTree::Slice / PredictBatch with
//    iteration_range (0, N)): the trees of the first N rounds, DART weights
//    kept. gblinear has no rounds to limit (GBLinear refuses a range).
//  - best_iteration (learner.attributes, written by early stopping): 0-based
//    round; the sklearn wrapper predicts with best_iteration + 1 rounds.
//  - Categories (3.1+, gbtree_model.cc + data/cat_container.cc): model.cats
//    .enc[f] is feature f's vocabulary, strings as UTF-8 bytes `values` cut
//    by `offsets`, or numbers `values` (with a `type` code); a split's
//    category c is the c-th entry. Recoding a DataFrame with a category not
//    in the vocabulary is an error in XGBoost (encoder/ordinal.h).
//  - Objectives and their transforms (objective/*.cc, PredTransform and
//    ProbToMargin): see kObjectives.

#include "model/loaders/json_doc.hpp"
#include "model/loaders/loader_util.hpp"

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
    {"reg:quantileerror", Transform::kIdentity, BaseLink::kIdentity, false},  // one target per quantile_alpha
    {"reg:expectileerror", Transform::kIdentity, BaseLink::kIdentity, false},  // 3.x; one target per expectile_alpha
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

// learner.attributes.best_iteration: a decimal string (0-based round).
std::int64_t read_best_iteration(const Json& learner) {
  const Json* attrs = detail::find_field(learner, "attributes");
  if (attrs == nullptr || !attrs->is_object()) return -1;
  const Json* best = detail::find_field(*attrs, "best_iteration");
  if (best == nullptr) return -1;
  return detail::as_int(*best, "learner.attributes.best_iteration", 0, std::numeric_limits<std::int32_t>::max());
}

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
  std::int64_t num_target = 1;
  if (const Json* nt = detail::find_field(lmp, "num_target")) num_target = detail::as_int(*nt, lp + ".num_target", 0, 1 << 16);
  if (num_target > 1 && num_class > 1) {
    throw_model_error(fmt::format("{}: num_class {} and num_target {} are both > 1; XGBoost models have one or the other",
                                  lp, num_class, num_target));
  }

  const Json& obj = detail::field(learner, "objective", "learner");
  const std::string& oname = detail::as_string(detail::field(obj, "name", "learner.objective"), "learner.objective.name");
  L.objective = &find_objective(oname, "learner.objective.name");
  if (L.objective->multiclass && num_class < 1) {
    throw_model_error(fmt::format("{}.num_class: objective '{}' needs num_class >= 1, found {}", lp, oname, num_class));
  }
  if (L.objective->multiclass && num_target > 1) {
    throw_model_error(fmt::format("{}.num_target: objective '{}' with {} targets", lp, oname, num_target));
  }
  L.k = static_cast<std::size_t>(std::max<std::int64_t>({num_class, num_target, 1}));
  mi.num_targets = num_target > 1 ? static_cast<std::size_t>(num_target) : 0;
  mi.best_iteration = read_best_iteration(learner);
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
  const auto n = static_cast<std::size_t>(num_nodes);
  // Vector leaves: size_leaf_vector is 0 or 1 for scalar trees (3.x writes 1).
  const std::int64_t width = param_int(tp, "size_leaf_vector", tpp, 0, 1 << 16, 0);
  const bool vector_leaf = width > 1;
  bool leaf_index_in_right = false;  // the leaf_weights layout
  std::vector<double> leaf_values;   // vector leaves: base_weights or leaf_weights
  if (vector_leaf) {
    if (static_cast<std::size_t>(width) != L.k) {
      throw_model_error(fmt::format("{}.size_leaf_vector is {} but the model has {} outputs", tpp, width, L.k));
    }
    // Refuse what this reader does not know rather than score it wrong.
    static constexpr std::string_view kKnown[] = {
        "tree_param", "id", "left_children", "right_children", "parents", "split_indices", "split_conditions",
        "default_left", "base_weights", "leaf_weights", "loss_changes", "sum_hessian", "split_type", "categories",
        "categories_nodes", "categories_segments", "categories_sizes"};
    for (const auto& [key, value] : jt.items()) {
      if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
        throw_model_error(fmt::format("{}.{}: unknown field in a vector-leaf tree", path, key));
      }
    }
    const auto T = static_cast<std::size_t>(width);
    if (const Json* lw = detail::find_field(jt, "leaf_weights")) {
      leaf_index_in_right = true;
      leaf_values = detail::as_double_array(*lw, path + ".leaf_weights");
      if (leaf_values.size() % T != 0 || leaf_values.size() / T > n) {
        throw_model_error(fmt::format("{}.leaf_weights: {} values is not a whole number of {}-value leaves (at most {})",
                                      path, leaf_values.size(), T, n));
      }
    } else {
      leaf_values = detail::as_double_array(detail::field(jt, "base_weights", path), path + ".base_weights");
      if (leaf_values.size() / T != n || leaf_values.size() % T != 0) {
        throw_model_error(fmt::format("{}.base_weights: {} values, expected num_nodes * size_leaf_vector = {} * {}",
                                      path, leaf_values.size(), n, T));
      }
    }
  }

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
      if (leaf_index_in_right) {
        const std::int64_t j = right[i];
        if (j < 0 || static_cast<std::size_t>(j) >= leaf_values.size() / L.k) {
          throw_model_error(fmt::format("tree {} node {}: leaf index {} out of range of {} leaves ({}.right_children[{}])",
                                        ti, i, j, leaf_values.size() / L.k, path, i));
        }
        continue;
      }
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
  if (vector_leaf) t.leaf_width = static_cast<std::uint32_t>(L.k);
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
      if (vector_leaf) {
        const std::size_t T = L.k;
        const std::size_t at = (leaf_index_in_right ? static_cast<std::size_t>(right[i]) : i) * T;
        nd.leaf_vector_offset = static_cast<std::uint32_t>(t.leaf_vectors.size());
        for (std::size_t c = 0; c < T; ++c) {
          const double v = leaf_values[at + c];
          if (!std::isfinite(v)) {
            throw_model_error(fmt::format("tree {} node {}: leaf value {} is not finite ({}[{}])", ti, i, c,
                                          leaf_index_in_right ? path + ".leaf_weights" : path + ".base_weights", at + c));
          }
          t.leaf_vectors.push_back(static_cast<float>(v));
        }
        continue;
      }
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

// The trees of a gbtree model object, their outputs, DART weights (3.4
// layout) and rounds.
struct Forest {
  std::vector<Tree> trees;
  std::vector<std::size_t> indptr;  // round r = trees [indptr[r], indptr[r+1])
  bool weighted = false;            // weight_drop applied
};

std::vector<Tree> read_tree_list(const Json& model, const std::string& path, const Learner& L) {
  const Json& params = detail::field(model, "gbtree_model_param", path);
  const std::string pp = path + ".gbtree_model_param";
  const auto& jtrees = detail::as_array(detail::field(model, "trees", path), path + ".trees");
  const std::int64_t num_trees = param_int(params, "num_trees", pp, 0, std::numeric_limits<std::int32_t>::max(),
                                           static_cast<std::int64_t>(jtrees.size()));
  if (static_cast<std::size_t>(num_trees) != jtrees.size()) {
    throw_model_error(fmt::format("{}.num_trees is {} but {}.trees has {} trees", pp, num_trees, path, jtrees.size()));
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
    const std::string tp = detail::index_path(path + ".trees", i);
    // XGBoost places trees[t] at position id (GBTreeModel::LoadModel); files
    // write id = position. Another order would be a different model.
    if (const Json* id = detail::find_field(jtrees[i], "id")) {
      const std::int64_t v = detail::as_int(*id, tp + ".id", 0, std::numeric_limits<std::int32_t>::max());
      if (static_cast<std::size_t>(v) != i) {
        throw_model_error(fmt::format("{}.id is {}: trees out of order are not supported", tp, v));
      }
    }
    trees.push_back(read_tree(jtrees[i], i, tp, L, cat_words_left));
    if (trees.back().leaf_width > 1 && info[i] != 0) {
      throw_model_error(fmt::format("{}.tree_info[{}] is {}: a vector-leaf tree covers every output from 0", path, i,
                                    info[i]));
    }
    trees.back().output = static_cast<std::uint32_t>(info[i]);
  }
  return trees;
}

void apply_weight_drop(std::vector<Tree>& trees, const Json& jdrop, const std::string& path) {
  const std::vector<double> drop = detail::as_double_array(jdrop, path);
  if (drop.size() != trees.size()) {
    throw_model_error(fmt::format("{} has {} weights for {} trees", path, drop.size(), trees.size()));
  }
  for (std::size_t i = 0; i < trees.size(); ++i) {
    const auto wf = static_cast<float>(drop[i]);
    if (!std::isfinite(wf)) throw_model_error(fmt::format("{}[{}]: tree {} weight is not finite", path, i, i));
    trees[i].weight = wf;
  }
}

Forest read_forest(const Json& model, const std::string& path, const Learner& L) {
  Forest f;
  f.trees = read_tree_list(model, path, L);
  const std::size_t n = f.trees.size();
  if (const Json* jd = detail::find_field(model, "weight_drop")) {
    // 3.4 DART; an empty list is a plain gbtree.
    if (!detail::as_array(*jd, path + ".weight_drop").empty()) {
      apply_weight_drop(f.trees, *jd, path + ".weight_drop");
      f.weighted = true;
    }
  }
  if (const Json* ji = detail::find_field(model, "iteration_indptr")) {
    const std::string ip = path + ".iteration_indptr";
    const auto v = detail::as_int_array(*ji, ip, 0, static_cast<std::int64_t>(n));
    if (v.empty() || v.front() != 0 || static_cast<std::size_t>(v.back()) != n) {
      throw_model_error(fmt::format("{}: must run from 0 to the {} trees", ip, n));
    }
    for (std::size_t r = 1; r < v.size(); ++r) {
      if (v[r] < v[r - 1]) throw_model_error(fmt::format("{}[{}]: {} is below the previous {}", ip, r, v[r], v[r - 1]));
      f.indptr.push_back(static_cast<std::size_t>(v[r - 1]));
    }
    f.indptr.push_back(n);
    return f;
  }
  // Before 2.0: every round has num_parallel_tree trees per output.
  const std::string pp = path + ".gbtree_model_param";
  const auto per_round = static_cast<std::size_t>(
      param_int(detail::field(model, "gbtree_model_param", path), "num_parallel_tree", pp, 1, 1 << 20, 1) *
      static_cast<std::int64_t>(L.k));
  if (n % per_round != 0) {
    throw_model_error(fmt::format("{}: {} trees is not a whole number of rounds of {} (num_parallel_tree * outputs)",
                                  pp, n, per_round));
  }
  for (std::size_t t = 0; t <= n; t += per_round) f.indptr.push_back(t);
  return f;
}

// Keeps the first N rounds (LoadOptions), or errors when that cannot apply.
void limit_rounds(Forest& f, Learner& L, const LoadOptions& opts) {
  const std::size_t rounds = f.indptr.size() - 1;
  L.info.iterations_in_file = rounds;
  std::size_t n = opts.num_iterations;
  if (opts.use_best_iteration) {
    if (opts.num_iterations != 0) throw_model_error("num_iterations and the best iteration are both requested");
    if (L.info.best_iteration < 0) throw_model_error("learner.attributes.best_iteration: the file records none");
    n = static_cast<std::size_t>(L.info.best_iteration) + 1;
  }
  if (n > rounds) {
    throw_model_error(fmt::format("num_iterations {} exceeds the {} boosting rounds in the file", n, rounds));
  }
  if (n > 0) f.trees.resize(f.indptr[n]);
  L.info.num_iterations = n > 0 ? n : rounds;
}

// model.cats (3.1+): each feature's vocabulary.
void read_cats(const Json& model, const std::string& path, ModelInfo& mi) {
  const Json* jc = detail::find_field(model, "cats");
  if (jc == nullptr) return;
  const std::string cp = path + ".cats";
  const auto& enc = detail::as_array(detail::field(*jc, "enc", cp), cp + ".enc");
  if (enc.empty()) return;
  if (enc.size() != mi.num_features) {
    throw_model_error(fmt::format("{}.enc: {} entries for {} features", cp, enc.size(), mi.num_features));
  }
  std::vector<std::size_t> sizes(enc.size());
  for (std::size_t f = 0; f < enc.size(); ++f) {
    const std::string ep = detail::index_path(cp + ".enc", f);
    std::vector<std::string>& out = mi.features[f].categories;
    const Json& values = detail::field(enc[f], "values", ep);
    if (const Json* joff = detail::find_field(enc[f], "offsets")) {
      // Strings: UTF-8 bytes cut by offsets (n + 1 entries, or none when empty).
      const auto off = detail::as_int_array(*joff, ep + ".offsets", 0, std::numeric_limits<std::int64_t>::max());
      const auto bytes = detail::as_int_array(values, ep + ".values", -128, 255);
      if (!off.empty()) {
        if (off.front() != 0 || static_cast<std::size_t>(off.back()) != bytes.size()) {
          throw_model_error(fmt::format("{}.offsets: must run from 0 to the {} bytes of values", ep, bytes.size()));
        }
        for (std::size_t i = 0; i + 1 < off.size(); ++i) {
          if (off[i + 1] < off[i]) throw_model_error(fmt::format("{}.offsets[{}]: decreasing", ep, i + 1));
          std::string str;
          for (auto b = off[i]; b < off[i + 1]; ++b) str.push_back(static_cast<char>(bytes[static_cast<std::size_t>(b)]));
          out.push_back(std::move(str));
        }
      } else if (!bytes.empty()) {
        throw_model_error(fmt::format("{}.values: {} bytes without offsets", ep, bytes.size()));
      }
    } else {
      // Numbers (integer or float categories), shown as numbers.
      for (const double v : detail::as_double_array(values, ep + ".values")) out.push_back(fmt::format("{}", v));
    }
    sizes[f] = out.size();
    if (!out.empty()) mi.features[f].type = FeatureType::kCategorical;
  }
  if (const Json* js = detail::find_field(*jc, "feature_segments")) {
    const auto seg = detail::as_int_array(*js, cp + ".feature_segments", 0, std::numeric_limits<std::int64_t>::max());
    if (seg.size() != enc.size() + 1 || seg.front() != 0) {
      throw_model_error(fmt::format("{}.feature_segments: {} entries, expected {} starting at 0", cp, seg.size(),
                                    enc.size() + 1));
    }
    for (std::size_t f = 0; f < enc.size(); ++f) {
      if (seg[f + 1] - seg[f] != static_cast<std::int64_t>(sizes[f])) {
        throw_model_error(fmt::format("{}.feature_segments: feature {} has {} categories but enc[{}] holds {}", cp, f,
                                      seg[f + 1] - seg[f], f, sizes[f]));
      }
    }
  }
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
  if (booster == "gbtree" || booster == "dart") {
    // dart up to 3.1: the trees in gradient_booster.gbtree.model, the
    // weights in gradient_booster.weight_drop. 3.4: gbtree + model.weight_drop.
    const bool dart = booster == "dart";
    const std::string mp = dart ? gp + ".gbtree.model" : gp + ".model";
    const Json& model = dart ? detail::field(detail::field(gb, "gbtree", gp), "model", gp + ".gbtree") : detail::field(gb, "model", gp);
    Forest f = read_forest(model, mp, L);
    if (dart) {
      if (f.weighted) throw_model_error(fmt::format("{}.weight_drop: DART weights given twice", mp));
      apply_weight_drop(f.trees, detail::field(gb, "weight_drop", gp), gp + ".weight_drop");
      f.weighted = true;
    }
    read_cats(model, mp, L.info);
    limit_rounds(f, L, opts);
    return build_trees(std::move(L), std::move(f.trees), f.weighted ? "dart" : "gbtree", opts);
  }
  if (booster == "gblinear") {
    if (opts.num_iterations != 0 || opts.use_best_iteration) {
      throw_model_error("gblinear: an iteration limit cannot apply (XGBoost's linear booster has no rounds to slice)");
    }
    return build_linear(std::move(L), detail::field(gb, "model", gp), opts);
  }
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
