// Profile: histogram binning, equality, JSON save/load.
#include <keel/validate/detail/sketch_key.hpp>
#include <keel/validate/profile.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>

namespace keel {

namespace {

using nlohmann::json;

[[noreturn]] void profile_error(std::string msg) { throw Error(invalid_input("profile: " + std::move(msg))); }

bool same(double a, double b) noexcept { return a == b || (std::isnan(a) && std::isnan(b)); }

// NaN is written as null (JSON has no NaN) and read back as NaN.
json num(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

double read_num(const json& obj, const char* key, const std::string& where) {
  if (!obj.contains(key)) profile_error(fmt::format("{}: missing key '{}'", where, key));
  const json& v = obj[key];
  if (v.is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (!v.is_number()) profile_error(fmt::format("{}: key '{}' must be a number", where, key));
  return v.get<double>();
}

template <class T>
T read(const json& obj, const char* key, const std::string& where) {
  if (!obj.contains(key)) profile_error(fmt::format("{}: missing key '{}'", where, key));
  try {
    return obj[key].get<T>();
  } catch (const json::exception&) {
    profile_error(fmt::format("{}: key '{}' has the wrong type", where, key));
  }
}

json feature_json(const FeatureProfile& f) {
  json q = json::array();
  for (std::size_t i = 0; i < f.quantiles.size(); ++i) q.push_back({kProfileQuantileLevels[i], num(f.quantiles[i])});
  json cats = json::array();
  for (const auto& [id, c] : f.categories) cats.push_back({id, c});
  return json{{"name", f.name},
              {"type", to_string(f.type)},
              {"count", f.count},
              {"missing", f.missing},
              {"missing_rate", f.missing_rate()},
              {"infinite", f.infinite},
              {"min", num(f.min)},
              {"max", num(f.max)},
              {"mean", num(f.mean)},
              {"std", num(f.std)},
              {"quantiles", q},
              {"histogram",
               {{"edges", f.histogram.edges}, {"edge_keys", f.histogram.edge_keys}, {"counts", f.histogram.counts}}},
              {"categories", cats},
              {"other_categories", f.other_categories}};
}

FeatureProfile feature_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) profile_error(where + ": must be an object");
  FeatureProfile f;
  f.name = read<std::string>(j, "name", where);
  const auto type = read<std::string>(j, "type", where);
  bool known = false;
  for (FeatureType t : {FeatureType::kNumeric, FeatureType::kInteger, FeatureType::kIndicator, FeatureType::kCategorical}) {
    if (type == to_string(t)) {
      f.type = t;
      known = true;
    }
  }
  if (!known) profile_error(fmt::format("{}: unknown type '{}'", where, type));
  f.count = read<std::uint64_t>(j, "count", where);
  f.missing = read<std::uint64_t>(j, "missing", where);
  f.infinite = read<std::uint64_t>(j, "infinite", where);
  if (f.missing + f.infinite > f.count) profile_error(where + ": missing + infinite exceed count");
  f.min = read_num(j, "min", where);
  f.max = read_num(j, "max", where);
  f.mean = read_num(j, "mean", where);
  f.std = read_num(j, "std", where);
  const auto q = read<json>(j, "quantiles", where);
  if (!q.is_array() || q.size() != f.quantiles.size()) {
    profile_error(fmt::format("{}: 'quantiles' must hold {} [level, value] pairs", where, f.quantiles.size()));
  }
  for (std::size_t i = 0; i < q.size(); ++i) {
    if (!q[i].is_array() || q[i].size() != 2) profile_error(fmt::format("{}: quantiles[{}] is not a pair", where, i));
    f.quantiles[i] = q[i][1].is_null() ? std::numeric_limits<double>::quiet_NaN() : q[i][1].get<double>();
  }
  const auto h = read<json>(j, "histogram", where);
  const std::string hw = where + ".histogram";
  f.histogram.edges = read<std::vector<float>>(h, "edges", hw);
  f.histogram.edge_keys = read<std::vector<std::uint32_t>>(h, "edge_keys", hw);
  f.histogram.counts = read<std::vector<std::uint64_t>>(h, "counts", hw);
  const auto& keys = f.histogram.edge_keys;
  if (f.histogram.counts.size() != keys.size() + 1 || f.histogram.edges.size() != keys.size()) {
    profile_error(hw + ": needs one more count than edges, and one key per edge");
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] >= detail::kSketchKeys || (i > 0 && keys[i] <= keys[i - 1])) {
      profile_error(fmt::format("{}: edge_keys[{}] is out of range or not ascending", hw, i));
    }
  }
  for (const auto& c : read<json>(j, "categories", where)) {
    if (!c.is_array() || c.size() != 2 || !c[0].is_number_integer() || !c[1].is_number_unsigned()) {
      profile_error(where + ": categories must be [id, count] pairs");
    }
    f.categories.emplace_back(c[0].get<std::int64_t>(), c[1].get<std::uint64_t>());
  }
  f.other_categories = read<std::uint64_t>(j, "other_categories", where);
  return f;
}

}  // namespace

std::size_t Histogram::bin(float v) const noexcept {
  const std::uint32_t k = detail::sketch_key(v);
  return static_cast<std::size_t>(std::upper_bound(edge_keys.begin(), edge_keys.end(), k) - edge_keys.begin());
}

std::uint64_t Histogram::total() const noexcept { return std::accumulate(counts.begin(), counts.end(), std::uint64_t{0}); }

bool operator==(const Histogram& a, const Histogram& b) noexcept {
  return a.edge_keys == b.edge_keys && a.counts == b.counts && a.edges == b.edges;
}

bool operator==(const FeatureProfile& a, const FeatureProfile& b) noexcept {
  bool eq = a.name == b.name && a.type == b.type && a.count == b.count && a.missing == b.missing &&
            a.infinite == b.infinite && same(a.min, b.min) && same(a.max, b.max) && same(a.mean, b.mean) &&
            same(a.std, b.std) && a.histogram == b.histogram && a.categories == b.categories &&
            a.other_categories == b.other_categories;
  for (std::size_t i = 0; eq && i < a.quantiles.size(); ++i) eq = same(a.quantiles[i], b.quantiles[i]);
  return eq;
}

std::string Profile::to_json() const {
  json doc{{"format", "keel-profile"}, {"version", 1}, {"rows", rows}};
  json feats = json::array();
  for (const FeatureProfile& f : features) feats.push_back(feature_json(f));
  doc["features"] = std::move(feats);
  if (score) doc["score"] = feature_json(*score);
  return doc.dump(1);
}

Profile Profile::from_json(std::string_view text) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    profile_error(fmt::format("not JSON at byte {}", e.byte));
  } catch (const json::exception& e) {  // e.g. out_of_range: a number beyond double (1e400)
    profile_error(fmt::format("not JSON: {}", e.what()));
  }
  // Fields read by type first: json::value() throws type_error when a field
  // has another type ({"format": {...}} came from the profile fuzzer).
  const auto format = doc.is_object() ? doc.find("format") : doc.end();
  if (format == doc.end() || !format->is_string() || format->get_ref<const std::string&>() != "keel-profile") {
    profile_error("not a keel-profile document");
  }
  const auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer() || version->get<std::int64_t>() != 1) {
    profile_error("unsupported version (expected 1)");
  }
  Profile p;
  p.rows = read<std::uint64_t>(doc, "rows", "document");
  const auto feats = read<json>(doc, "features", "document");
  if (!feats.is_array()) profile_error("'features' must be an array");
  for (std::size_t j = 0; j < feats.size(); ++j) p.features.push_back(feature_from_json(feats[j], fmt::format("features[{}]", j)));
  if (doc.contains("score")) p.score = feature_from_json(doc["score"], "score");
  return p;
}

void Profile::save(const std::filesystem::path& path) const {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << to_json() << '\n';
  out.close();
  if (!out) throw Error(invalid_input(fmt::format("profile: cannot write '{}'", path.string())));
}

Profile Profile::load(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(not_found(fmt::format("profile: cannot open '{}'", path.string())));
  std::ostringstream ss;
  ss << in.rdbuf();
  return from_json(ss.str());
}

}  // namespace keel
