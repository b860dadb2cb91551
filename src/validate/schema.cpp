// Schema construction: from a model's metadata and from a JSON schema file.
#include <keel/validate/profile.hpp>
#include <keel/validate/schema.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

namespace keel {

namespace {

using nlohmann::json;

[[noreturn]] void schema_error(std::string msg) { throw Error(invalid_input("schema: " + std::move(msg))); }

FeatureType parse_type(std::string_view s, std::string_view where) {
  for (FeatureType t : {FeatureType::kNumeric, FeatureType::kInteger, FeatureType::kIndicator, FeatureType::kCategorical}) {
    if (s == to_string(t)) return t;
  }
  schema_error(fmt::format("{}: unknown type '{}'", where, s));
}

// Reads `key` of `obj` as T, naming the key when it has the wrong type.
template <class T>
T get(const json& obj, const char* key, std::string_view where) {
  try {
    return obj.at(key).get<T>();
  } catch (const json::exception&) {
    schema_error(fmt::format("{}: key '{}' has the wrong type", where, key));
  }
}

// An integer key within [lo, hi]. Not get<T>(): nlohmann converts a float
// such as 1e30 to an integer type with an out-of-range cast (undefined).
std::int64_t get_int(const json& v, std::int64_t lo, std::int64_t hi, std::string_view where, const char* key) {
  const bool in_range = v.is_number_unsigned()  ? v.get<std::uint64_t>() <= static_cast<std::uint64_t>(hi)
                        : v.is_number_integer() ? v.get<std::int64_t>() >= lo && v.get<std::int64_t>() <= hi
                                                : false;
  if (!v.is_number_integer() || !in_range) {
    schema_error(fmt::format("{}: key '{}' must be an integer in [{}, {}]", where, key, lo, hi));
  }
  return v.get<std::int64_t>();
}

// A float key: a number within float's range (a double beyond it would not
// convert).
float get_float(const json& obj, const char* key, std::string_view where) {
  const auto d = get<double>(obj, key, where);
  if (!(std::abs(d) <= static_cast<double>(std::numeric_limits<float>::max()))) {
    schema_error(fmt::format("{}: key '{}' is outside the range of float", where, key));
  }
  return static_cast<float>(d);
}

void apply_policies(const json& pol, FeatureSchema& f, std::string_view where) {
  if (!pol.is_object()) schema_error(fmt::format("{}: policy must be an object", where));
  for (const auto& [key, value] : pol.items()) {
    if (!value.is_string()) schema_error(fmt::format("{}: policy '{}' must be a string", where, key));
    const Action a = parse_action(value.get<std::string>());
    if (key == "range") {
      f.set_action(Rule::kBelowMin, a);
      f.set_action(Rule::kAboveMax, a);
      continue;
    }
    bool found = false;
    for (std::size_t r = 1; r < kNumRules; ++r) {  // row_length is not configurable
      if (key == to_string(static_cast<Rule>(r))) {
        f.policy[r] = a;
        found = true;
      }
    }
    if (!found) schema_error(fmt::format("{}: unknown policy rule '{}'", where, key));
  }
}

void apply_feature(const json& jf, FeatureSchema& f, std::size_t index, const Profile* profile, std::string_view where) {
  for (const auto& [key, value] : jf.items()) {
    if (key == "name" || key == "index") continue;
    if (key == "type") {
      f.type = parse_type(get<std::string>(jf, "type", where), where);
    } else if (key == "min") {
      f.min = get_float(jf, "min", where);
    } else if (key == "max") {
      f.max = get_float(jf, "max", where);
    } else if (key == "allow_missing") {
      f.allow_missing = get<bool>(jf, "allow_missing", where);
    } else if (key == "required") {
      f.required = get<bool>(jf, "required", where);
    } else if (key == "allow_inf") {
      f.allow_inf = get<bool>(jf, "allow_inf", where);
    } else if (key == "categories") {
      if (!value.is_array()) schema_error(fmt::format("{}: key 'categories' must be an array", where));
      f.categories.clear();
      for (const json& c : value) {
        f.categories.push_back(static_cast<std::int32_t>(get_int(c, std::numeric_limits<std::int32_t>::min(),
                                                                 std::numeric_limits<std::int32_t>::max(), where,
                                                                 "categories")));
      }
    } else if (key == "impute") {
      if (value.is_string() && value.get<std::string>() == "median") {
        if (profile == nullptr || index >= profile->features.size()) {
          schema_error(fmt::format("{}: \"impute\": \"median\" needs a profile with this feature", where));
        }
        const double m = profile->features[index].median();
        if (std::isnan(m)) schema_error(fmt::format("{}: the profile has no median (no finite values)", where));
        f.impute = static_cast<float>(m);
      } else {
        f.impute = get_float(jf, "impute", where);
      }
    } else if (key == "policy") {
      apply_policies(value, f, where);
    } else {
      schema_error(fmt::format("{}: unknown key '{}'", where, key));
    }
  }
}

}  // namespace

Action parse_action(std::string_view s) {
  for (Action a : {Action::kReject, Action::kClamp, Action::kImpute, Action::kFlag}) {
    if (s == to_string(a)) return a;
  }
  schema_error(fmt::format("unknown policy '{}' (reject, clamp, impute, flag)", s));
}

Schema Schema::from_model(const ModelInfo& info) {
  Schema s;
  s.features.resize(info.num_features);
  for (std::size_t j = 0; j < info.num_features; ++j) {
    FeatureSchema& f = s.features[j];
    if (j < info.features.size()) {
      f.name = info.features[j].name;
      f.type = info.features[j].type;
    }
    if (f.name.empty()) f.name = fmt::format("f{}", j);
    if (f.type == FeatureType::kIndicator) {
      f.min = 0.0f;
      f.max = 1.0f;
    }
  }
  return s;
}

Schema Schema::from_names(const std::vector<std::string>& names) {
  Schema s;
  s.features.resize(names.size());
  for (std::size_t j = 0; j < names.size(); ++j) s.features[j].name = names[j];
  return s;
}

void Schema::impute_medians(const Profile& profile) {
  if (profile.features.size() != features.size()) {
    schema_error(fmt::format("profile has {} features, schema {}", profile.features.size(), features.size()));
  }
  for (std::size_t j = 0; j < features.size(); ++j) {
    const double m = profile.features[j].median();
    if (!features[j].impute && !std::isnan(m)) features[j].impute = static_cast<float>(m);
  }
}

Schema parse_schema(std::string_view json_text, Schema base, const Profile* profile) {
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::parse_error& e) {
    schema_error(fmt::format("not JSON at byte {}: {}", e.byte, e.what()));
  } catch (const json::exception& e) {  // e.g. out_of_range: a number beyond double (1e400)
    schema_error(fmt::format("not JSON: {}", e.what()));
  }
  if (!doc.is_object()) schema_error("the document must be an object");
  const bool from_file = base.features.empty();
  FeatureSchema defaults;
  if (doc.contains("defaults")) apply_policies(doc["defaults"], defaults, "defaults");
  if (doc.contains("allow_missing")) defaults.allow_missing = get<bool>(doc, "allow_missing", "document");
  for (FeatureSchema& f : base.features) {
    f.policy = defaults.policy;
    f.allow_missing = defaults.allow_missing;
  }
  if (!doc.contains("features")) return base;
  const json& feats = doc["features"];
  if (!feats.is_array()) schema_error("'features' must be an array");
  for (std::size_t k = 0; k < feats.size(); ++k) {
    const json& jf = feats[k];
    std::string where = fmt::format("features[{}]", k);
    if (!jf.is_object()) schema_error(where + ": must be an object");
    std::size_t index = 0;
    if (from_file) {
      index = base.features.size();
      FeatureSchema f = defaults;
      f.name = jf.contains("name") ? get<std::string>(jf, "name", where) : fmt::format("f{}", index);
      base.features.push_back(std::move(f));
    } else if (jf.contains("name")) {
      const auto name = get<std::string>(jf, "name", where);
      auto it = std::find_if(base.features.begin(), base.features.end(),
                             [&](const FeatureSchema& f) { return f.name == name; });
      if (it == base.features.end()) schema_error(fmt::format("{}: the model has no feature '{}'", where, name));
      index = static_cast<std::size_t>(it - base.features.begin());
    } else if (jf.contains("index")) {
      index = static_cast<std::size_t>(get_int(jf.at("index"), 0, std::numeric_limits<std::int64_t>::max(), where, "index"));
      if (index >= base.features.size()) {
        schema_error(fmt::format("{}: index {} out of range (model has {} features)", where, index, base.features.size()));
      }
    } else {
      schema_error(where + ": needs a 'name' or an 'index'");
    }
    where += fmt::format(" '{}'", base.features[index].name);
    apply_feature(jf, base.features[index], index, profile, where);
  }
  return base;
}

Schema load_schema(const std::filesystem::path& path, Schema base, const Profile* profile) {
  std::ifstream in(path, std::ios::binary);
  if (!in) schema_error(fmt::format("cannot open '{}'", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_schema(ss.str(), std::move(base), profile);
}

}  // namespace keel
