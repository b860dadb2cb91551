// Keel linear JSON (format documented in <keel/model/linear_model.hpp>).

#include "model/loaders/json_doc.hpp"
#include "model/loaders/loader_util.hpp"

#include <keel/model/linear_model.hpp>
#include <keel/model/loaders.hpp>

#include <fmt/format.h>

#include <cmath>
#include <string>
#include <utility>

namespace keel {
namespace {

using detail::Json;
using detail::throw_model_error;

struct Link {
  std::string_view name;
  Transform transform;
};
constexpr Link kLinks[] = {{"identity", Transform::kIdentity},
                           {"logistic", Transform::kSigmoid},
                           {"softmax", Transform::kSoftmax},
                           {"exp", Transform::kExp}};

constexpr std::string_view kFields[] = {"keel_linear", "num_features", "feature_names", "outputs",
                                        "weights",     "intercept",    "link"};

float finite_float(const Json& v, const std::string& path) {
  if (!v.is_number()) throw_model_error(fmt::format("{}: expected a number", path));
  const auto f = static_cast<float>(v.get<double>());
  if (!std::isfinite(f)) throw_model_error(fmt::format("{}: {} is not a finite float", path, v.get<double>()));
  return f;
}

}  // namespace

Result<ModelPtr> detail::keel_linear_from_document(const Json& root, std::size_t input_bytes, const LoadOptions& opts) {
  if (!root.is_object()) throw_model_error("document: expected an object");
  if (opts.num_iterations != 0 || opts.use_best_iteration) {
    throw_model_error("an iteration limit cannot apply: a linear model has no boosting rounds");
  }
  for (const auto& [key, value] : root.items()) {
    bool known = false;
    for (std::string_view k : kFields) known = known || key == k;
    if (!known) throw_model_error(fmt::format("unknown field '{}'", key));
  }
  const std::int64_t version = as_int(field(root, "keel_linear", ""), "keel_linear", 0, 1 << 30);
  if (version != 1) throw_model_error(fmt::format("keel_linear: format version {} is not supported (expected 1)", version));

  // Weights are listed in the file, so F * K is bounded by its size.
  const auto cap = static_cast<std::int64_t>(std::max<std::size_t>(input_bytes, 1));
  const std::int64_t f = as_int(field(root, "num_features", ""), "num_features", 1, cap);
  std::int64_t k = 1;
  if (const Json* o = find_field(root, "outputs")) k = as_int(*o, "outputs", 1, cap);

  LinearSpec spec;
  ModelInfo& mi = spec.info;
  mi.format = ModelFormat::kKeelLinearJson;
  mi.booster = "linear";
  mi.id = opts.id.empty() ? "model" : opts.id;
  mi.num_features = static_cast<std::size_t>(f);
  mi.num_margin_outputs = static_cast<std::size_t>(k);
  mi.features.resize(mi.num_features);

  std::string link = "identity";
  if (const Json* l = find_field(root, "link")) link = as_string(*l, "link");
  const Link* chosen = nullptr;
  for (const Link& c : kLinks) {
    if (c.name == link) chosen = &c;
  }
  if (chosen == nullptr) {
    throw_model_error(fmt::format("link: unknown link '{}' (expected identity, logistic, softmax or exp)", link));
  }
  if (chosen->transform == Transform::kSoftmax && k < 2) throw_model_error("link: softmax needs outputs >= 2");
  spec.transform = chosen->transform;
  mi.objective = link;
  mi.num_outputs = mi.num_margin_outputs;
  mi.num_classes = chosen->transform == Transform::kSoftmax ? mi.num_margin_outputs : 0;

  if (const Json* names = find_field(root, "feature_names")) {
    const auto& a = as_array(*names, "feature_names");
    if (a.size() != mi.num_features) {
      throw_model_error(fmt::format("feature_names: {} names for {} features", a.size(), mi.num_features));
    }
    for (std::size_t j = 0; j < a.size(); ++j) mi.features[j].name = as_string(a[j], index_path("feature_names", j));
    mi.has_feature_names = true;
  }

  const auto& w = as_array(field(root, "weights", ""), "weights");
  if (w.size() != mi.num_features) {
    throw_model_error(fmt::format("weights: {} rows for {} features", w.size(), mi.num_features));
  }
  const auto ku = static_cast<std::size_t>(k);
  spec.weights.reserve(mi.num_features * ku);
  for (std::size_t j = 0; j < w.size(); ++j) {
    const std::string p = index_path("weights", j);
    if (w[j].is_number() && ku == 1) {
      spec.weights.push_back(finite_float(w[j], p));
      continue;
    }
    const auto& row = as_array(w[j], p);
    if (row.size() != ku) throw_model_error(fmt::format("{}: {} values for {} outputs", p, row.size(), ku));
    for (std::size_t o = 0; o < ku; ++o) spec.weights.push_back(finite_float(row[o], index_path(p, o)));
  }

  spec.intercept.assign(ku, 0.0f);
  if (const Json* b = find_field(root, "intercept")) {
    if (b->is_number() && ku == 1) {
      spec.intercept[0] = finite_float(*b, "intercept");
    } else {
      const auto& a = as_array(*b, "intercept");
      if (a.size() != ku) throw_model_error(fmt::format("intercept: {} values for {} outputs", a.size(), ku));
      for (std::size_t o = 0; o < ku; ++o) spec.intercept[o] = finite_float(a[o], index_path("intercept", o));
    }
  }
  auto m = make_linear_model(std::move(spec));
  if (!m.ok()) return m.status();
  return ModelPtr(std::move(m).value());
}

Result<ModelPtr> load_keel_linear_json(std::string_view text, const LoadOptions& opts) {
  return detail::guarded_load("Keel linear JSON", text.size(), opts, [&] {
    const Json root = detail::parse_json_text(text);
    return detail::keel_linear_from_document(root, text.size(), opts);
  });
}

}  // namespace keel
