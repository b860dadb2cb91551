// JSON text and UBJSON parsing for the model loaders (see json_doc.hpp).

#include "model/loaders/json_doc.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

namespace keel::detail {

void throw_model_error(std::string message) { throw Error(model_error(std::move(message))); }

// ---------------------------------------------------------------------------
// JSON text

namespace {

struct NonFinite {
  std::string_view token;
  std::string_view replacement;  // a JSON string that as_double() reads back
};
constexpr NonFinite kNonFinite[] = {
    {"-Infinity", "\"-Infinity\""}, {"+Infinity", "\"Infinity\""}, {"Infinity", "\"Infinity\""},
    {"-NaN", "\"NaN\""},            {"NaN", "\"NaN\""},             {"-inf", "\"-Infinity\""},
    {"inf", "\"Infinity\""},        {"-nan", "\"NaN\""},            {"nan", "\"NaN\""},
};

bool is_ident(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
}

// A rewrite of the text: where each replacement happened, so that a parse
// error's offset can be reported in the caller's bytes.
struct Rewritten {
  std::string text;
  std::vector<std::pair<std::size_t, std::ptrdiff_t>> shifts;  // (position in text, cumulative growth after it)

  [[nodiscard]] std::size_t original_offset(std::size_t pos) const noexcept {
    std::ptrdiff_t growth = 0;
    for (const auto& [at, g] : shifts) {
      if (at > pos) break;
      growth = g;
    }
    return static_cast<std::size_t>(std::max<std::ptrdiff_t>(0, static_cast<std::ptrdiff_t>(pos) - growth));
  }
};

Rewritten rewrite_non_finite(std::string_view in) {
  Rewritten r;
  r.text.reserve(in.size() + 64);
  bool in_string = false;
  bool escape = false;
  std::size_t depth = 0;
  char prev = '\0';  // previous significant character outside strings
  std::ptrdiff_t growth = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (in_string) {
      r.text.push_back(c);
      if (escape) {
        escape = false;
      } else if (c == '\\') {
        escape = true;
      } else if (c == '"') {
        in_string = false;
        prev = c;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        throw_model_error(fmt::format("JSON nests deeper than {} levels at byte {}", kMaxJsonDepth, i));
      }
    } else if (c == ']' || c == '}') {
      if (depth > 0) --depth;
    } else if ((c == 'N' || c == 'I' || c == 'n' || c == 'i' || c == '-' || c == '+') &&
               (prev == '\0' || prev == '[' || prev == ',' || prev == ':')) {
      bool replaced = false;
      for (const NonFinite& nf : kNonFinite) {
        if (in.substr(i, nf.token.size()) != nf.token) continue;
        const std::size_t end = i + nf.token.size();
        if (end < in.size() && is_ident(in[end])) continue;
        r.text.append(nf.replacement);
        growth += static_cast<std::ptrdiff_t>(nf.replacement.size()) - static_cast<std::ptrdiff_t>(nf.token.size());
        r.shifts.emplace_back(r.text.size(), growth);
        i = end - 1;
        prev = '"';
        replaced = true;
        break;
      }
      if (replaced) continue;
    }
    r.text.push_back(c);
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') prev = c;
  }
  return r;
}

}  // namespace

Json parse_json_text(std::string_view text) {
  Rewritten r = rewrite_non_finite(text);
  try {
    return Json::parse(r.text);
  } catch (const Json::parse_error& e) {
    // e.byte counts from 1 in the rewritten text.
    const std::size_t at = r.original_offset(e.byte > 0 ? e.byte - 1 : 0);
    std::string what = e.what();
    // Keep nlohmann's description but drop its own (rewritten) position.
    if (const auto p = what.find("syntax error"); p != std::string::npos) what = what.substr(p);
    throw_model_error(fmt::format("invalid JSON at byte {}: {}", at, what));
  } catch (const Json::exception& e) {
    throw_model_error(fmt::format("invalid JSON: {}", e.what()));
  }
}

// ---------------------------------------------------------------------------
// UBJSON

namespace {

class UbjReader {
 public:
  explicit UbjReader(std::span<const std::uint8_t> b) : b_(b) {}

  Json document() {
    Json v = value(take("a value"), 0);
    if (pos_ != b_.size()) {
      throw_model_error(fmt::format("UBJSON: {} trailing bytes after the document at byte {}", b_.size() - pos_, pos_));
    }
    return v;
  }

 private:
  [[noreturn]] void fail(std::string_view what) const {
    throw_model_error(fmt::format("UBJSON: {} at byte {}", what, pos_));
  }
  std::size_t left() const noexcept { return b_.size() - pos_; }

  std::uint8_t take(std::string_view what) {
    if (pos_ >= b_.size()) fail(fmt::format("input ends where {} was expected", what));
    return b_[pos_++];
  }
  // Reads n big-endian bytes as an unsigned integer.
  std::uint64_t big_endian(std::size_t n, std::string_view what) {
    if (left() < n) fail(fmt::format("input ends inside {}", what));
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | b_[pos_ + i];
    pos_ += n;
    return v;
  }

  static std::size_t fixed_size(std::uint8_t m) noexcept {
    switch (m) {
      case 'i': case 'U': case 'C': return 1;
      case 'I': return 2;
      case 'l': case 'd': return 4;
      case 'L': case 'D': return 8;
      default: return 0;
    }
  }

  std::int64_t integer(std::uint8_t m) {
    switch (m) {
      case 'i': return static_cast<std::int8_t>(big_endian(1, "an int8"));
      case 'U': return static_cast<std::int64_t>(big_endian(1, "a uint8"));
      case 'I': return static_cast<std::int16_t>(big_endian(2, "an int16"));
      case 'l': return static_cast<std::int32_t>(big_endian(4, "an int32"));
      case 'L': return static_cast<std::int64_t>(big_endian(8, "an int64"));
      default: fail(fmt::format("expected an integer type marker, found 0x{:02x}", m));
    }
  }

  // A length or count: an integer marker then a non-negative value that
  // cannot exceed the bytes left times `per_byte` (each element needs at
  // least 1/per_byte... i.e. min_bytes bytes).
  std::size_t count(std::size_t min_bytes_each, std::string_view what) {
    const std::size_t at = pos_;
    const std::int64_t n = integer(take(what));
    if (n < 0) {
      pos_ = at;
      fail(fmt::format("negative {} {}", what, n));
    }
    const auto un = static_cast<std::uint64_t>(n);
    if (min_bytes_each > 0 && un > left() / min_bytes_each) {
      pos_ = at;
      fail(fmt::format("{} {} exceeds the {} bytes left", what, un, left()));
    }
    return static_cast<std::size_t>(un);
  }

  std::string string_body() {
    const std::size_t n = count(1, "string length");
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return s;
  }

  Json value(std::uint8_t m, std::size_t depth) {
    switch (m) {
      case 'Z': return Json(nullptr);
      case 'T': return Json(true);
      case 'F': return Json(false);
      case 'i': case 'I': case 'l': case 'L': return Json(integer(m));
      case 'U': return Json(static_cast<std::uint64_t>(integer(m)));
      case 'd': {
        const auto u = static_cast<std::uint32_t>(big_endian(4, "a float32"));
        return Json(static_cast<double>(std::bit_cast<float>(u)));
      }
      case 'D': return Json(std::bit_cast<double>(big_endian(8, "a float64")));
      case 'C': return Json(std::string(1, static_cast<char>(take("a char"))));
      case 'S': return Json(string_body());
      case 'H': {
        const std::size_t at = pos_;
        std::string s = string_body();
        double d = 0;
        if (!parse_double(s, d)) {
          pos_ = at;
          fail("high-precision number is not a number");
        }
        return Json(d);
      }
      case '[': return container(false, depth + 1);
      case '{': return container(true, depth + 1);
      default:
        --pos_;
        fail(fmt::format("unknown type marker 0x{:02x}", m));
    }
  }

  Json container(bool object, std::size_t depth) {
    if (depth > kMaxJsonDepth) fail(fmt::format("nesting deeper than {} levels", kMaxJsonDepth));
    std::uint8_t type = 0;
    bool counted = false;
    std::size_t n = 0;
    if (pos_ < b_.size() && b_[pos_] == '$') {
      ++pos_;
      type = take("a container element type");
      if (type == 'Z' || type == 'N' || type == 'T' || type == 'F') {
        --pos_;
        fail(fmt::format("typed container of zero-byte elements ('{}')", static_cast<char>(type)));
      }
      if (pos_ >= b_.size() || b_[pos_] != '#') fail("typed container without a count");
    }
    if (pos_ < b_.size() && b_[pos_] == '#') {
      ++pos_;
      counted = true;
      // Each element takes at least its fixed size (typed) or one byte; an
      // object entry at least a 1-byte key length and a value.
      std::size_t min_each = type != 0 && fixed_size(type) ? fixed_size(type) : 1;
      if (object) min_each += 1;
      n = count(min_each, object ? "object size" : "array size");
    }
    Json out = object ? Json::object() : Json::array();
    if (!object) out.get_ref<Json::array_t&>().reserve(n);
    for (std::size_t i = 0; counted ? i < n : true; ++i) {
      if (!counted) {
        const std::uint8_t m = take(object ? "'}' or a key" : "']' or a value");
        if (m == (object ? '}' : ']')) break;
        if (m == 'N') continue;
        --pos_;
      }
      std::string key;
      if (object) key = string_body();
      const std::uint8_t m = type != 0 ? type : take("a value");
      Json v = value(m, depth);
      if (object) {
        out[std::move(key)] = std::move(v);
      } else {
        out.push_back(std::move(v));
      }
    }
    return out;
  }

  std::span<const std::uint8_t> b_;
  std::size_t pos_ = 0;
};

}  // namespace

Json parse_ubjson(std::span<const std::uint8_t> bytes) { return UbjReader(bytes).document(); }

// ---------------------------------------------------------------------------
// Accessors

namespace {

std::string_view type_name(const Json& v) noexcept {
  switch (v.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: return "a string";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float: return "a number";
    default: return "an unsupported value";
  }
}

[[noreturn]] void wrong_type(const Json& v, std::string_view path, std::string_view want) {
  throw_model_error(fmt::format("{}: expected {}, found {}", path.empty() ? "document" : path, want, type_name(v)));
}

}  // namespace

std::string child_path(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
}
std::string index_path(std::string_view path, std::size_t i) { return fmt::format("{}[{}]", path, i); }

const Json* find_field(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

const Json& field(const Json& obj, std::string_view key, std::string_view path) {
  if (!obj.is_object()) wrong_type(obj, path, "an object");
  const Json* f = find_field(obj, key);
  if (f == nullptr) throw_model_error(fmt::format("missing field '{}'", child_path(path, key)));
  return *f;
}

const std::string& as_string(const Json& v, std::string_view path) {
  if (!v.is_string()) wrong_type(v, path, "a string");
  return v.get_ref<const std::string&>();
}

const Json::array_t& as_array(const Json& v, std::string_view path) {
  if (!v.is_array()) wrong_type(v, path, "an array");
  return v.get_ref<const Json::array_t&>();
}

bool parse_double(std::string_view s, double& out) noexcept {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  if (s == "NaN" || s == "-NaN" || s == "nan" || s == "-nan") {
    out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (s == "Infinity" || s == "inf") {
    out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (s == "-Infinity" || s == "-inf") {
    out = -std::numeric_limits<double>::infinity();
    return true;
  }
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_float(std::string_view s, float& out) noexcept {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double d = 0;
  if (s.empty()) return false;
  if (!std::isdigit(static_cast<unsigned char>(s.back())) && s.back() != '.') {
    if (!parse_double(s, d)) return false;  // non-finite spellings
    out = static_cast<float>(d);
    return true;
  }
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

double as_double(const Json& v, std::string_view path) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    double d = 0;
    if (parse_double(v.get_ref<const std::string&>(), d)) return d;
    throw_model_error(fmt::format("{}: '{}' is not a number", path, v.get_ref<const std::string&>()));
  }
  wrong_type(v, path, "a number");
}

float as_float(const Json& v, std::string_view path) {
  if (v.is_string()) {
    float f = 0;
    if (parse_float(v.get_ref<const std::string&>(), f)) return f;
    throw_model_error(fmt::format("{}: '{}' is not a number", path, v.get_ref<const std::string&>()));
  }
  return static_cast<float>(as_double(v, path));
}

std::int64_t as_int(const Json& v, std::string_view path, std::int64_t lo, std::int64_t hi) {
  std::int64_t x = 0;
  bool ok = true;
  if (v.is_number_integer() && !v.is_number_unsigned()) {
    x = v.get<std::int64_t>();
  } else if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    ok = u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    x = static_cast<std::int64_t>(u);
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    ok = std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9.0e18;
    if (ok) x = static_cast<std::int64_t>(d);
  } else if (v.is_boolean()) {
    x = v.get<bool>() ? 1 : 0;
  } else if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
    ok = ec == std::errc() && p == s.data() + s.size() && !s.empty();
    if (!ok) throw_model_error(fmt::format("{}: '{}' is not an integer", path, s));
  } else {
    wrong_type(v, path, "an integer");
  }
  if (!ok) throw_model_error(fmt::format("{}: not an integer", path));
  if (x < lo || x > hi) throw_model_error(fmt::format("{}: {} out of range [{}, {}]", path, x, lo, hi));
  return x;
}

std::vector<double> as_double_array(const Json& v, std::string_view path) {
  const Json::array_t& a = as_array(v, path);
  std::vector<double> out;
  out.reserve(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].is_number()) {
      out.push_back(a[i].get<double>());
    } else {
      out.push_back(as_double(a[i], index_path(path, i)));
    }
  }
  return out;
}

std::vector<std::int64_t> as_int_array(const Json& v, std::string_view path, std::int64_t lo, std::int64_t hi) {
  const Json::array_t& a = as_array(v, path);
  std::vector<std::int64_t> out;
  out.reserve(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const Json& e = a[i];
    if (e.is_number_integer() && !e.is_number_unsigned()) {
      const auto x = e.get<std::int64_t>();
      if (x >= lo && x <= hi) {
        out.push_back(x);
        continue;
      }
    }
    out.push_back(as_int(e, index_path(path, i), lo, hi));
  }
  return out;
}

}  // namespace keel::detail
