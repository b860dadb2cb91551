// LightGBM text-model loader (format v2-v4). The input is untrusted: every
// count and index is checked before use, arrays are sized by the tokens
// actually present (never by a declared count), so allocation is bounded by
// the input's size, and every error names the tree and the line.

#include "model/loaders/lightgbm_text.hpp"

#include "model/loaders/json_doc.hpp"

#include <keel/model/explain.hpp>
#include <keel/model/tree_ensemble.hpp>

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace keel {
namespace detail {
namespace {

// Thrown inside the parser only; parse_lightgbm_text turns it into a Status.
struct ParseError {
  std::string message;
};

[[noreturn]] void fail(std::string message) { throw ParseError{std::move(message)}; }

struct Line {
  std::string_view text;
  std::size_t number = 0;  // 1-based
};

// Splits the text into lines ('\n' or "\r\n"), counting them.
class LineReader {
 public:
  explicit LineReader(std::string_view text) : text_(text) {}

  bool next(Line& out) {
    if (pos_ >= text_.size()) return false;
    std::size_t end = text_.find('\n', pos_);
    if (end == std::string_view::npos) end = text_.size();
    std::string_view line = text_.substr(pos_, end - pos_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos_ = end + 1;
    out = {line, ++number_};
    return true;
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t number_ = 0;
};

bool is_blank(std::string_view s) { return s.find_first_not_of(" \t") == std::string_view::npos; }

// One `key=value` line.
struct Field {
  std::string_view key;
  std::string_view value;
  std::size_t line = 0;
};

// The `key=value` lines of the header or of one tree, and where to say they are.
struct Block {
  std::string name;  // "header" or "tree 3"
  std::vector<Field> fields;

  const Field* find(std::string_view key) const {
    for (const Field& f : fields) {
      if (f.key == key) return &f;
    }
    return nullptr;
  }
  const Field& need(std::string_view key, std::size_t block_line) const {
    if (const Field* f = find(key)) return *f;
    fail(fmt::format("{} (line {}): required key '{}' is missing", name, block_line, key));
  }
  void add(const Line& l, std::size_t eq) {
    // LightGBM writes about 25 keys per block; the cap keeps duplicate checks linear.
    if (fields.size() >= 1024) fail(fmt::format("{}, line {}: more than 1024 keys", name, l.number));
    const Field f{l.text.substr(0, eq), l.text.substr(eq + 1), l.number};
    if (find(f.key) != nullptr) fail(fmt::format("{}, line {}: duplicate key '{}'", name, l.number, f.key));
    fields.push_back(f);
  }
};

std::string where(const std::string& block, const Field& f) {
  return fmt::format("{}, line {} ('{}')", block, f.line, f.key);
}

// Whitespace-separated tokens of a value.
template <class Fn>
void for_each_token(std::string_view s, Fn&& fn) {
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    if (i >= s.size()) break;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
    fn(s.substr(i, j - i));
    i = j;
  }
}

std::size_t count_tokens(std::string_view s) {
  std::size_t n = 0;
  for_each_token(s, [&](std::string_view) { ++n; });
  return n;
}

template <class T>
T parse_int(std::string_view tok, const std::string& ctx) {
  long long v = 0;
  const auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
  if (ec != std::errc{} || p != tok.data() + tok.size()) fail(fmt::format("{}: '{}' is not an integer", ctx, tok));
  const bool in_range = std::is_unsigned_v<T>
                            ? v >= 0 && static_cast<unsigned long long>(v) <= std::numeric_limits<T>::max()
                            : v >= static_cast<long long>(std::numeric_limits<T>::min()) &&
                                  v <= static_cast<long long>(std::numeric_limits<T>::max());
  if (!in_range) fail(fmt::format("{}: {} is out of range", ctx, tok));
  return static_cast<T>(v);
}

double parse_double(std::string_view tok, const std::string& ctx) {
  double v = 0;
  const auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
  if (p != tok.data() + tok.size() || (ec != std::errc{} && ec != std::errc::result_out_of_range)) {
    fail(fmt::format("{}: '{}' is not a number", ctx, tok));
  }
  if (ec == std::errc::result_out_of_range) {
    // from_chars leaves v unset; strtod gives what LightGBM's parser would (0 or +-inf).
    char buf[128];
    if (tok.size() >= sizeof buf) fail(fmt::format("{}: '{}...' is not a number", ctx, tok.substr(0, 40)));
    tok.copy(buf, tok.size());
    buf[tok.size()] = '\0';
    v = std::strtod(buf, nullptr);
  }
  return v;
}

// Parses exactly `expected` values, failing (before allocating) on another count.
template <class T>
std::vector<T> parse_array(const Field& f, std::size_t expected, const std::string& block) {
  const std::size_t n = count_tokens(f.value);
  const std::string ctx = where(block, f);
  if (n != expected) fail(fmt::format("{}: has {} values, expected {}", ctx, n, expected));
  std::vector<T> out;
  out.reserve(n);
  for_each_token(f.value, [&](std::string_view tok) {
    if constexpr (std::is_floating_point_v<T>) {
      out.push_back(parse_double(tok, ctx));
    } else {
      out.push_back(parse_int<T>(tok, ctx));
    }
  });
  return out;
}

template <class T>
T parse_scalar(const Field& f, const std::string& block) {
  std::string_view v = f.value;
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return parse_int<T>(v, where(block, f));
}

// Reads `key=value` lines into `b` until a blank line or a line that is not
// `key=value` (returned in `stop`, or false at the end of input).
bool read_block(LineReader& r, Block& b, Line& stop) {
  Line l;
  while (r.next(l)) {
    if (is_blank(l.text)) {
      stop = l;
      return true;
    }
    const std::size_t eq = l.text.find('=');
    if (eq == std::string_view::npos || eq == 0 || l.text.starts_with("Tree=")) {
      stop = l;
      return true;
    }
    b.add(l, eq);
  }
  return false;
}

// Maps the objective line to the transform, LightGBM's ObjectiveFunction::ConvertOutput.
void apply_objective(const Field& f, std::size_t num_class, TreeEnsembleSpec& spec) {
  const std::string ctx = where("header", f);
  std::string_view name;
  bool sqrt = false;
  double sigmoid = 1.0;
  std::size_t declared_classes = 0;
  for_each_token(f.value, [&](std::string_view tok) {
    if (name.empty()) {
      name = tok;
      return;
    }
    if (tok == "sqrt") {
      sqrt = true;
      return;
    }
    const std::size_t colon = tok.find(':');
    if (colon == std::string_view::npos) fail(fmt::format("{}: unknown objective parameter '{}'", ctx, tok));
    const std::string_view key = tok.substr(0, colon);
    const std::string_view val = tok.substr(colon + 1);
    if (key == "sigmoid") {
      sigmoid = parse_double(val, ctx);
      if (!(sigmoid > 0.0) || !std::isfinite(sigmoid)) fail(fmt::format("{}: sigmoid must be positive", ctx));
    } else if (key == "num_class") {
      declared_classes = parse_int<std::uint32_t>(val, ctx);
    }
    // Other parameters (e.g. tweedie's variance power) do not affect prediction.
  });
  if (name.empty()) fail(fmt::format("{}: empty objective", ctx));
  spec.info.objective = std::string(f.value);
  while (!spec.info.objective.empty() && spec.info.objective.back() == ' ') spec.info.objective.pop_back();

  const bool multi = name == "multiclass" || name == "softmax" || name == "multiclassova" ||
                     name == "multiclass_ova" || name == "ova" || name == "ovr";
  if (multi) {
    if (declared_classes != num_class) {
      fail(fmt::format("{}: num_class:{} disagrees with num_class={}", ctx, declared_classes, num_class));
    }
  } else if (num_class != 1) {
    fail(fmt::format("{}: objective '{}' with num_class={} (expected 1)", ctx, name, num_class));
  }
  if (name == "binary" || name == "multiclassova" || name == "multiclass_ova" || name == "ova" || name == "ovr") {
    spec.transform = Transform::kSigmoid;
    spec.sigmoid_scale = sigmoid;
  } else if (name == "cross_entropy" || name == "xentropy") {
    spec.transform = Transform::kSigmoid;
    spec.sigmoid_scale = 1.0;
  } else if (name == "multiclass" || name == "softmax") {
    spec.transform = Transform::kSoftmax;
  } else if (name == "poisson" || name == "gamma" || name == "tweedie") {
    spec.transform = Transform::kExp;
  } else if (name == "cross_entropy_lambda" || name == "xentlambda") {
    spec.transform = Transform::kLog1pExp;
  } else if (name == "regression" || name == "regression_l2" || name == "l2" || name == "mean_squared_error" ||
             name == "mse" || name == "regression_l1" || name == "l1" || name == "huber" || name == "fair" ||
             name == "quantile" || name == "mape") {
    // These share LightGBM's RegressionL2loss::ConvertOutput: sign(m) * m^2 with sqrt.
    spec.transform = sqrt ? Transform::kSignedSquare : Transform::kIdentity;
  } else if (name == "lambdarank" || name == "rank_xendcg" || name == "custom" || name == "none") {
    spec.transform = Transform::kIdentity;
  } else {
    fail(fmt::format("{}: unknown objective '{}'", ctx, name));
  }
}

// Feature names and types from `feature_names=` and `feature_infos=`.
void read_features(const Block& h, std::size_t num_features, std::size_t header_line, ModelInfo& info) {
  const Field& names = h.need("feature_names", header_line);
  const std::size_t n = count_tokens(names.value);
  if (n != num_features) {
    fail(fmt::format("{}: has {} names, expected {} (max_feature_idx + 1)", where(h.name, names), n, num_features));
  }
  info.features.reserve(n);
  bool all_default = true;
  for_each_token(names.value, [&](std::string_view tok) {
    if (tok != fmt::format("Column_{}", info.features.size())) all_default = false;
    info.features.push_back(FeatureInfo{std::string(tok), FeatureType::kNumeric});
  });
  // LightGBM names unnamed columns Column_<i>; those are positions, not names.
  info.has_feature_names = !all_default;
  if (const Field* infos = h.find("feature_infos")) {
    const std::size_t m = count_tokens(infos->value);
    if (m != num_features) {
      fail(fmt::format("{}: has {} entries, expected {}", where(h.name, *infos), m, num_features));
    }
    std::size_t j = 0;
    for_each_token(infos->value, [&](std::string_view tok) {
      // "[min:max]" numeric, "none" unused, else a colon-separated category list.
      if (tok.front() != '[' && tok != "none") info.features[j].type = FeatureType::kCategorical;
      ++j;
    });
  }
}

// Builds one tree from its block; `first_line` is its `Tree=` line.
Tree build_tree(const Block& b, std::size_t first_line, std::size_t num_features) {
  const std::string& name = b.name;
  const auto num_leaves = parse_scalar<std::int32_t>(b.need("num_leaves", first_line), name);
  if (num_leaves < 1) fail(fmt::format("{}: num_leaves={} must be at least 1", where(name, *b.find("num_leaves")), num_leaves));
  const auto num_cat = b.find("num_cat") ? parse_scalar<std::int32_t>(*b.find("num_cat"), name) : 0;
  if (num_cat < 0) fail(fmt::format("{}: num_cat={} is negative", where(name, *b.find("num_cat")), num_cat));
  const auto leaves = static_cast<std::size_t>(num_leaves);
  const std::size_t internal = leaves - 1;

  const Field& leaf_value_f = b.need("leaf_value", first_line);
  const auto leaf_value = parse_array<double>(leaf_value_f, leaves, name);

  Tree t;
  std::vector<std::int32_t> split_feature, decision_type, left, right;
  std::vector<double> threshold;
  // A tree with one leaf may omit the split arrays or leave them empty.
  auto split_array = [&](std::string_view key, auto& out) {
    const Field* f = b.find(key);
    if (f == nullptr) {
      if (internal == 0) return;
      fail(fmt::format("{} (line {}): required key '{}' is missing", name, first_line, key));
    }
    out = parse_array<typename std::decay_t<decltype(out)>::value_type>(*f, internal, name);
  };
  split_array("split_feature", split_feature);
  split_array("threshold", threshold);
  split_array("decision_type", decision_type);
  split_array("left_child", left);
  split_array("right_child", right);

  std::vector<std::int32_t> cat_boundaries;
  std::vector<std::uint32_t> cat_threshold;
  if (num_cat > 0) {
    const Field& cb = b.need("cat_boundaries", first_line);
    const Field& ct = b.need("cat_threshold", first_line);
    cat_boundaries = parse_array<std::int32_t>(cb, static_cast<std::size_t>(num_cat) + 1, name);
    cat_threshold = parse_array<std::uint32_t>(ct, count_tokens(ct.value), name);
    if (cat_boundaries.front() != 0) fail(fmt::format("{}: must start at 0", where(name, cb)));
    for (std::size_t k = 1; k < cat_boundaries.size(); ++k) {
      if (cat_boundaries[k] < cat_boundaries[k - 1]) fail(fmt::format("{}: not increasing at entry {}", where(name, cb), k));
    }
    if (static_cast<std::size_t>(cat_boundaries.back()) != cat_threshold.size()) {
      fail(fmt::format("{}: ends at {} but cat_threshold has {} words", where(name, cb), cat_boundaries.back(),
                       cat_threshold.size()));
    }
    t.category_bits = std::move(cat_threshold);
  }

  t.nodes.resize(internal + leaves);
  auto child = [&](std::int32_t c, const Field& f, std::size_t i) -> std::int32_t {
    if (c >= 0) {
      if (static_cast<std::size_t>(c) >= internal) {
        fail(fmt::format("{}: node {} has child {} but the tree has {} internal nodes", where(name, f), i, c, internal));
      }
      return c;
    }
    const std::int32_t leaf = ~c;
    if (static_cast<std::size_t>(leaf) >= leaves) {
      fail(fmt::format("{}: node {} has child {} (leaf {}) but the tree has {} leaves", where(name, f), i, c, leaf, leaves));
    }
    return static_cast<std::int32_t>(internal) + leaf;
  };
  for (std::size_t i = 0; i < internal; ++i) {
    TreeNode& n = t.nodes[i];
    const Field& sf = *b.find("split_feature");
    if (split_feature[i] < 0 || static_cast<std::size_t>(split_feature[i]) >= num_features) {
      fail(fmt::format("{}: node {} splits on feature {}, beyond max_feature_idx={}", where(name, sf), i,
                       split_feature[i], num_features - 1));
    }
    n.feature = split_feature[i];
    const Field& dtf = *b.find("decision_type");
    const std::int32_t dt = decision_type[i];
    const std::int32_t missing = (dt >> 2) & 3;
    if (dt < 0 || dt > 15 || missing == 3) fail(fmt::format("{}: node {} has invalid decision_type {}", where(name, dtf), i, dt));
    const Field& thf = *b.find("threshold");
    if (std::isnan(threshold[i])) fail(fmt::format("{}: node {} has a NaN threshold", where(name, thf), i));
    if (dt & 1) {
      const double idx = threshold[i];
      if (!(idx >= 0.0 && idx < static_cast<double>(num_cat)) || idx != std::floor(idx)) {
        fail(fmt::format("{}: categorical node {} refers to category set {} but the tree has {} (num_cat)",
                         where(name, thf), i, idx, num_cat));
      }
      const auto k = static_cast<std::size_t>(idx);
      n.kind = SplitKind::kCategorical;
      n.cat_offset = static_cast<std::uint32_t>(cat_boundaries[k]);
      n.cat_words = static_cast<std::uint32_t>(cat_boundaries[k + 1] - cat_boundaries[k]);
    } else {
      n.kind = SplitKind::kNumericLessEqual;
      n.threshold = threshold[i];
      n.missing = missing == 0 ? MissingType::kNone : (missing == 1 ? MissingType::kZero : MissingType::kNaN);
    }
    n.default_left = (dt & 2) != 0;
    n.left = child(left[i], *b.find("left_child"), i);
    n.right = child(right[i], *b.find("right_child"), i);
  }
  for (std::size_t j = 0; j < leaves; ++j) t.nodes[internal + j].leaf_value = leaf_value[j];
  // For explanations (explain.hpp): covers are the data counts LightGBM's
  // TreeSHAP weighs by; ids are split indices, then leaf indices.
  const Field* internal_count = b.find("internal_count");
  const Field* leaf_count = b.find("leaf_count");
  if (leaf_count != nullptr && (internal_count != nullptr || internal == 0)) {
    if (internal > 0) t.cover = parse_array<double>(*internal_count, internal, name);
    const auto lc = parse_array<double>(*leaf_count, leaves, name);
    t.cover.insert(t.cover.end(), lc.begin(), lc.end());
  }
  t.source_id.resize(internal + leaves);
  for (std::size_t i = 0; i < internal; ++i) t.source_id[i] = static_cast<std::int32_t>(i);
  for (std::size_t j = 0; j < leaves; ++j) t.source_id[internal + j] = static_cast<std::int32_t>(j);

  const Field* lin = b.find("is_linear");
  if (lin != nullptr && parse_scalar<std::int32_t>(*lin, name) != 0) {
    if (parse_scalar<std::int32_t>(*lin, name) != 1) fail(fmt::format("{}: must be 0 or 1", where(name, *lin)));
    const auto leaf_const = parse_array<double>(b.need("leaf_const", first_line), leaves, name);
    const Field& nf = b.need("num_features", first_line);
    const auto counts = parse_array<std::uint32_t>(nf, leaves, name);
    std::size_t total = 0;
    for (const std::uint32_t c : counts) total += c;  // each count is bounded by the line's length below
    const Field& lf = b.need("leaf_features", first_line);
    const auto features = parse_array<std::int32_t>(lf, total, name);
    const auto coeff = parse_array<double>(b.need("leaf_coeff", first_line), total, name);
    t.linear_terms.reserve(total);
    std::size_t k = 0;
    for (std::size_t j = 0; j < leaves; ++j) {
      TreeNode& n = t.nodes[internal + j];
      n.linear = true;
      n.linear_const = leaf_const[j];
      n.linear_offset = static_cast<std::uint32_t>(k);
      n.linear_count = counts[j];
      for (std::uint32_t c = 0; c < counts[j]; ++c, ++k) {
        if (features[k] < 0 || static_cast<std::size_t>(features[k]) >= num_features) {
          fail(fmt::format("{}: leaf {} uses feature {}, beyond max_feature_idx={}", where(name, lf), j, features[k],
                           num_features - 1));
        }
        t.linear_terms.push_back(LinearTerm{features[k], coeff[k]});
      }
    }
  }

  // Every node must be reached exactly once from the root: no cycles, no sharing.
  if (internal > 0) {
    std::vector<std::uint8_t> seen(t.nodes.size(), 0);
    std::vector<std::int32_t> stack{0};
    seen[0] = 1;
    std::size_t visited = 0;
    while (!stack.empty()) {
      const std::int32_t i = stack.back();
      stack.pop_back();
      ++visited;
      const TreeNode& n = t.nodes[static_cast<std::size_t>(i)];
      if (n.kind == SplitKind::kLeaf) continue;
      for (const std::int32_t c : {n.left, n.right}) {
        if (seen[static_cast<std::size_t>(c)]) {
          fail(fmt::format("{} (line {}): node {} reaches node {} a second time (cycle or shared child)", name,
                           b.find("left_child")->line, i, c));
        }
        seen[static_cast<std::size_t>(c)] = 1;
        stack.push_back(c);
      }
    }
    if (visited != t.nodes.size()) {
      fail(fmt::format("{} (line {}): {} of {} nodes are not reachable from the root", name, b.find("left_child")->line,
                       t.nodes.size() - visited, t.nodes.size()));
    }
  }
  return t;
}

// The trees end at `end of trees`. LightGBM v2 files written by older
// releases may omit that line and go straight to the importances (LightGBM's
// own GBDT::LoadModelFromString stops at the first line that is not part of
// a tree, so they load). These lines start the trailer either way.
bool starts_trailer(std::string_view s) {
  return s == "end of trees" || s == "feature importances:" || s == "feature_importances:" || s == "parameters:" ||
         s.starts_with("pandas_categorical:");
}

// What the trailer says that matters: the booster, the categorical_feature
// parameter and the pandas_categorical line.
struct Trailer {
  std::string booster;
  std::string categorical_feature;  // "[categorical_feature: 1,2]" value, as written
  bool have_categorical_feature = false;
  Line pandas;  // the pandas_categorical line (number 0 when absent)
};

// After the trees LightGBM writes feature importances, the parameters and
// (from Python) a pandas_categorical line; anything else is garbage. `first`
// is the line that ended the trees.
Trailer read_trailer(LineReader& r, const Line& first) {
  Trailer t;
  enum class Part { kImportances, kParameters, kDone } part = Part::kImportances;
  Line l = first;
  bool have = first.text != "end of trees";
  while (have || r.next(l)) {
    have = false;
    const std::string_view s = l.text;
    if (is_blank(s)) continue;
    if (part == Part::kImportances) {
      if (s == "feature_importances:" || s == "feature importances:") continue;
      if (s == "parameters:") {
        part = Part::kParameters;
        continue;
      }
      if (s.find('=') != std::string_view::npos && s.front() != '=') continue;
    } else if (part == Part::kParameters) {
      if (s == "end of parameters") {
        part = Part::kDone;
        continue;
      }
      if (s.front() == '[' && s.back() == ']') {
        if (s.starts_with("[boosting: ")) t.booster = std::string(s.substr(11, s.size() - 12));
        if (s.starts_with("[categorical_feature: ")) {
          t.categorical_feature = std::string(s.substr(22, s.size() - 23));
          t.have_categorical_feature = true;
        }
        continue;
      }
    }
    if (s.starts_with("pandas_categorical:")) {
      t.pandas = l;
      part = Part::kDone;
      continue;
    }
    fail(fmt::format("line {}: unexpected content after the trees: '{}'", l.number, s.substr(0, 40)));
  }
  return t;
}

// pandas_categorical:[[...], ...] (or null): LightGBM's Python package lists
// the categories of each pandas categorical column in column order
// (basic.py, _data_from_pandas), and when every categorical feature is
// such a column they are the categorical_feature parameter; a feature's code is the index in its list.
void read_pandas_categorical(const Trailer& t, ModelInfo& info) {
  if (t.pandas.number == 0) return;
  const std::string ctx = fmt::format("line {} (pandas_categorical)", t.pandas.number);
  Json doc;
  try {
    doc = parse_json_text(t.pandas.text.substr(std::string_view("pandas_categorical:").size()));
  } catch (const Error& e) {
    fail(fmt::format("{}: {}", ctx, e.status().message()));
  }
  if (doc.is_null()) return;
  if (!doc.is_array()) fail(fmt::format("{}: not a list of lists", ctx));
  // Which features the lists belong to: the categorical_feature parameter,
  // else the features whose feature_infos list categories.
  std::vector<std::size_t> cat_features;
  bool by_param = t.have_categorical_feature && !t.categorical_feature.empty();
  if (by_param) {
    std::string_view v = t.categorical_feature;
    while (!v.empty()) {
      const std::size_t comma = v.find(',');
      std::string_view tok = v.substr(0, comma);
      std::size_t idx = 0;
      const auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), idx);
      if (ec != std::errc{} || p != tok.data() + tok.size() || idx >= info.num_features) {
        by_param = false;  // names or garbage: fall back to feature_infos
        cat_features.clear();
        break;
      }
      cat_features.push_back(idx);
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  if (!by_param) {
    for (std::size_t j = 0; j < info.num_features; ++j) {
      if (info.features[j].type == FeatureType::kCategorical) cat_features.push_back(j);
    }
  }
  // Lists only for pandas columns: none ([]) when the categoricals were
  // integer codes, fewer when some were. Then which list is whose is not
  // recorded, so no vocabulary is attached (codes still score).
  if (cat_features.size() != doc.size()) return;
  for (std::size_t i = 0; i < doc.size(); ++i) {
    if (!doc[i].is_array()) fail(fmt::format("{}: entry {} is not a list", ctx, i));
    FeatureInfo& f = info.features[cat_features[i]];
    f.type = FeatureType::kCategorical;
    f.categories.reserve(doc[i].size());
    for (const Json& c : doc[i]) f.categories.push_back(c.is_string() ? c.get<std::string>() : c.dump());
  }
}

TreeEnsembleSpec parse(std::string_view text, const LoadOptions& opts) {
  if (text.size() > opts.max_bytes) {
    fail(fmt::format("model is {} bytes, above the limit of {}", text.size(), opts.max_bytes));
  }
  LineReader r(text);
  Line l;
  if (!r.next(l) || l.text != "tree") fail("line 1: not a LightGBM text model (expected 'tree')");

  // Header: key=value lines (and the bare `average_output`) up to the first tree.
  Block h{"header", {}};
  bool average_output = false;
  bool have_stop = false;
  Line stop;
  while (r.next(l)) {
    if (is_blank(l.text)) continue;
    if (l.text == "average_output") {
      average_output = true;
      continue;
    }
    if (l.text.starts_with("Tree=") || starts_trailer(l.text)) {
      stop = l;
      have_stop = true;
      break;
    }
    const std::size_t eq = l.text.find('=');
    if (eq == std::string_view::npos || eq == 0) fail(fmt::format("header, line {}: not a key=value line", l.number));
    h.add(l, eq);
  }
  const std::size_t header_line = 1;
  const Field& version = h.need("version", header_line);
  if (version.value != "v2" && version.value != "v3" && version.value != "v4") {
    fail(fmt::format("{}: unsupported version '{}'", where("header", version), version.value));
  }
  const auto num_class = parse_scalar<std::uint32_t>(h.need("num_class", header_line), "header");
  if (num_class < 1) fail(fmt::format("{}: must be at least 1", where("header", *h.find("num_class"))));
  std::uint32_t per_iter = num_class;
  if (const Field* f = h.find("num_tree_per_iteration")) {
    per_iter = parse_scalar<std::uint32_t>(*f, "header");
    if (per_iter < 1) fail(fmt::format("{}: must be at least 1", where("header", *f)));
  }
  const Field& mfi = h.need("max_feature_idx", header_line);
  const auto max_feature_idx = parse_scalar<std::int32_t>(mfi, "header");
  if (max_feature_idx < 0) fail(fmt::format("{}: {} is negative", where("header", mfi), max_feature_idx));
  const auto num_features = static_cast<std::size_t>(max_feature_idx) + 1;

  TreeEnsembleSpec spec;
  spec.arithmetic = Arithmetic::kLightGBM;
  spec.category_rule = CategoryRule::kLightGBM;
  spec.average_output = average_output;
  ModelInfo& info = spec.info;
  info.format = ModelFormat::kLightGBMText;
  info.id = opts.id.empty() ? "model" : opts.id;
  info.num_features = num_features;
  read_features(h, num_features, header_line, info);
  if (const Field* obj = h.find("objective")) {
    apply_objective(*obj, num_class, spec);
  } else {
    info.objective = "none";  // a custom objective: LightGBM returns the raw score
  }
  if (per_iter != num_class) {
    fail(fmt::format("header: num_tree_per_iteration={} disagrees with num_class={}", per_iter, num_class));
  }

  std::size_t declared_trees = 0;
  bool have_sizes = false;
  if (const Field* sizes = h.find("tree_sizes")) {
    have_sizes = true;
    declared_trees = count_tokens(sizes->value);
  }

  // Trees: `Tree=i` blocks until `end of trees`.
  bool ended = false;
  while (have_stop) {
    const Line at = stop;
    have_stop = false;
    if (starts_trailer(at.text)) {
      ended = true;
      break;
    }
    const std::size_t index = spec.trees.size();
    if (at.text != fmt::format("Tree={}", index)) {
      fail(fmt::format("line {}: expected 'Tree={}' or 'end of trees', found '{}'", at.number, index,
                       at.text.substr(0, 40)));
    }
    Block b{fmt::format("tree {}", index), {}};
    Line next;
    bool more = read_block(r, b, next);
    // Skip blank lines to the next tree or the end marker.
    while (more && is_blank(next.text)) more = r.next(next);
    if (more && !next.text.starts_with("Tree=") && !starts_trailer(next.text)) {
      fail(fmt::format("tree {}, line {}: unexpected line '{}'", index, next.number, next.text.substr(0, 40)));
    }
    if (!more) fail(fmt::format("truncated model: the file ends in tree {} (line {}) before 'end of trees'", index, at.number));
    Tree t = build_tree(b, at.number, num_features);
    t.output = static_cast<std::uint32_t>(index % per_iter);
    spec.trees.push_back(std::move(t));
    stop = next;
    have_stop = more;
  }
  if (!ended) {
    fail(fmt::format("truncated model: no 'end of trees' line after {} trees", spec.trees.size()));
  }
  if (have_sizes && declared_trees != spec.trees.size()) {
    fail(fmt::format("header, line {}: tree_sizes lists {} trees but the file holds {}", h.find("tree_sizes")->line,
                     declared_trees, spec.trees.size()));
  }
  if (spec.trees.empty()) fail("the model has no trees");
  // Outputs are sized only now, bounded by the trees actually present.
  if (spec.trees.size() % per_iter != 0) {
    fail(fmt::format("{} trees is not a whole number of iterations of {} trees", spec.trees.size(), per_iter));
  }
  info.num_margin_outputs = per_iter;
  info.num_outputs = per_iter;
  info.num_classes = num_class > 1 ? num_class : 0;
  spec.base_margin.assign(per_iter, 0.0);
  info.base_score.assign(per_iter, 0.0);
  const Trailer trailer = read_trailer(r, stop);
  read_pandas_categorical(trailer, info);
  info.unseen_category = UnseenCategory::kMissing;

  // LightGBM's num_iteration at predict time: the first N iterations
  // (GBDT::InitPredict). The text file records no best iteration (Python
  // saves the best iteration's trees instead), so "best" cannot apply.
  std::size_t iterations = spec.trees.size() / per_iter;
  info.iterations_in_file = iterations;
  if (opts.use_best_iteration) {
    fail("the file records no best iteration (LightGBM saves only the trees up to it); pass a number of iterations");
  }
  if (opts.num_iterations > iterations) {
    fail(fmt::format("num_iterations {} exceeds the {} iterations in the file", opts.num_iterations, iterations));
  }
  if (opts.num_iterations > 0) {
    iterations = opts.num_iterations;
    spec.trees.resize(iterations * per_iter);
  }
  spec.num_iterations = iterations;
  info.num_iterations = iterations;
  const std::string& booster = trailer.booster;
  info.booster = average_output ? "rf" : (booster.empty() ? "gbdt" : booster);
  compute_shape(spec);
  return spec;
}

}  // namespace

Result<TreeEnsembleSpec> parse_lightgbm_text(std::string_view text, const LoadOptions& opts) {
  try {
    TreeEnsembleSpec spec = parse(text, opts);
    if (Status s = validate(spec); !s) return s;
    return spec;
  } catch (const ParseError& e) {
    return model_error("LightGBM text: " + e.message);
  } catch (const std::bad_alloc&) {
    return model_error("LightGBM text: out of memory while loading");
  } catch (const std::length_error&) {
    return model_error("LightGBM text: model too large");
  }
}

}  // namespace detail

Result<ModelPtr> load_lightgbm_text(std::string_view text, const LoadOptions& opts) {
  Result<TreeEnsembleSpec> spec = detail::parse_lightgbm_text(text, opts);
  if (!spec) return spec.status();
  if (Status s = attach_tree_explainer(*spec); !s) return s;
  return make_tree_ensemble(std::move(spec).value(), opts.tree);
}

}  // namespace keel
