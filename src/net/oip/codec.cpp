#include <keel/net/oip/codec.hpp>

#include "net/oip/convert.hpp"

#include <simdjson.h>

#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace keel::net::oip {

static_assert(kJsonPadding >= simdjson::SIMDJSON_PADDING, "kJsonPadding must cover simdjson's padding");
static_assert(std::endian::native == std::endian::little, "binary tensors are read as little-endian");

namespace {

struct TypeName {
  DataType type;
  std::string_view name;
  std::size_t size;
};
constexpr std::array<TypeName, 13> kTypes{{
    {DataType::kBool, "BOOL", 1},    {DataType::kInt8, "INT8", 1},     {DataType::kInt16, "INT16", 2},
    {DataType::kInt32, "INT32", 4},  {DataType::kInt64, "INT64", 8},   {DataType::kUint8, "UINT8", 1},
    {DataType::kUint16, "UINT16", 2}, {DataType::kUint32, "UINT32", 4}, {DataType::kUint64, "UINT64", 8},
    {DataType::kFp16, "FP16", 2},    {DataType::kFp32, "FP32", 4},     {DataType::kFp64, "FP64", 8},
    {DataType::kBytes, "BYTES", 0},
}};

using simdjson::dom::element;
using simdjson::dom::element_type;

std::string type_name(element_type t) {
  switch (t) {
    case element_type::ARRAY: return "array";
    case element_type::OBJECT: return "object";
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE: return "number";
    case element_type::STRING: return "string";
    case element_type::BOOL: return "boolean";
    case element_type::NULL_VALUE: return "null";
  }
  return "value";
}

Status wrong_type(std::string_view field, std::string_view want, element e) {
  return invalid_input(std::string(field) + ": expected " + std::string(want) + ", got " + type_name(e.type()));
}

std::size_t offset_of(simdjson::ondemand::document& doc, const char* base) {
  const char* at = nullptr;
  if (doc.current_location().get(at) != simdjson::SUCCESS || at == nullptr) return std::string_view::npos;
  return static_cast<std::size_t>(at - base);
}

// Walks a document with simdjson's on-demand parser until it stops being
// valid JSON (only on the error path, to name the byte offset).
bool walk(simdjson::ondemand::value v, int depth) {
  if (depth > 64) return false;
  simdjson::ondemand::json_type t;
  if (v.type().get(t)) return false;
  switch (t) {
    case simdjson::ondemand::json_type::array: {
      simdjson::ondemand::array a;
      if (v.get_array().get(a)) return false;
      for (auto item : a) {
        simdjson::ondemand::value iv;
        if (item.get(iv) || !walk(iv, depth + 1)) return false;
      }
      return true;
    }
    case simdjson::ondemand::json_type::object: {
      simdjson::ondemand::object o;
      if (v.get_object().get(o)) return false;
      for (auto field : o) {
        simdjson::ondemand::value fv;
        if (field.value().get(fv) || !walk(fv, depth + 1)) return false;
      }
      return true;
    }
    case simdjson::ondemand::json_type::number: {
      double d;
      return v.get_double().get(d) == simdjson::SUCCESS;
    }
    case simdjson::ondemand::json_type::string: {
      std::string_view s;
      return v.get_string().get(s) == simdjson::SUCCESS;
    }
    case simdjson::ondemand::json_type::boolean: {
      bool b;
      return v.get_bool().get(b) == simdjson::SUCCESS;
    }
    case simdjson::ondemand::json_type::null: {
      // is_null() converted to bool would throw on a malformed literal.
      bool n = false;
      return v.is_null().get(n) == simdjson::SUCCESS && n;
    }
  }
  return false;
}

// Where brackets stop matching outside strings (json.size() when left
// open), or npos when they balance. The on-demand walk below is only safe
// on a balanced document (fuzz_oip_rest found it reading out of bounds).
std::size_t unbalanced_at(std::string_view json) {
  std::vector<char> open;
  bool in_string = false, escaped = false;
  for (std::size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (open.size() >= 1024) return i;
      open.push_back(c);
    } else if (c == ']' || c == '}') {
      if (open.empty() || open.back() != (c == ']' ? '[' : '{')) return i;
      open.pop_back();
    }
  }
  return in_string || !open.empty() ? json.size() : std::string_view::npos;
}

std::string malformed(const simdjson::padded_string_view& json, simdjson::error_code parse_error) {
  std::string msg = "malformed JSON";
  simdjson::ondemand::parser od;
  simdjson::ondemand::document doc;
  std::size_t at = unbalanced_at(std::string_view(json.data(), json.size()));
  if (at == std::string_view::npos && od.iterate(json).get(doc) == simdjson::SUCCESS) {
    simdjson::ondemand::value root;
    bool ok = doc.get_value().get(root) == simdjson::SUCCESS && walk(root, 0);
    if (!ok) at = offset_of(doc, json.data());
  }
  if (at != std::string_view::npos && at <= json.size()) msg += " at byte " + std::to_string(at);
  msg += ": ";
  msg += simdjson::error_message(parse_error);
  return msg;
}

// Converts one JSON element of `type` into a float, or says why not.
Status convert_json(element e, DataType type, float& out, std::size_t input, std::size_t k, std::size_t cols) {
  const auto bad = [&](std::string why) { return invalid_input(element_field(input, k, cols) + ": " + why); };
  if (e.is_null() && (type == DataType::kFp32 || type == DataType::kFp64)) {
    out = std::numeric_limits<float>::quiet_NaN();
    return {};
  }
  switch (type) {
    case DataType::kFp32:
    case DataType::kFp64: {
      double d = 0;
      if (e.get_double().get(d)) return bad("expected a number, got " + type_name(e.type()));
      return convert_double(d, out, input, k, cols);
    }
    case DataType::kBool: {
      bool b = false;
      if (e.get_bool().get(b)) return bad("expected true or false, got " + type_name(e.type()));
      out = b ? 1.0f : 0.0f;
      return {};
    }
    case DataType::kUint8:
    case DataType::kUint16:
    case DataType::kUint32:
    case DataType::kUint64: {
      std::uint64_t u = 0;
      if (e.get_uint64().get(u)) return bad("expected an unsigned integer, got " + type_name(e.type()));
      return convert_unsigned(u, type, out, input, k, cols);
    }
    default: {  // signed integers
      std::int64_t i = 0;
      if (e.get_int64().get(i)) return bad("expected an integer, got " + type_name(e.type()));
      return convert_signed(i, type, out, input, k, cols);
    }
  }
}

// An FP64 element kept as a double (null: missing).
Status convert_json(element e, DataType, double& out, std::size_t input, std::size_t k, std::size_t cols) {
  if (e.is_null()) {
    out = std::numeric_limits<double>::quiet_NaN();
    return {};
  }
  if (e.get_double().get(out))
    return invalid_input(element_field(input, k, cols) + ": expected a number, got " + type_name(e.type()));
  return {};
}

Status read_parameter(element v, std::string_view field, Parameter& p) {
  switch (v.type()) {
    case element_type::BOOL: p.kind = Parameter::Kind::kBool; p.b = v.get_bool().value_unsafe(); return {};
    case element_type::INT64: p.kind = Parameter::Kind::kInt; p.i = v.get_int64().value_unsafe(); return {};
    case element_type::UINT64:
    case element_type::DOUBLE: p.kind = Parameter::Kind::kDouble; p.d = v.get_double().value_unsafe(); return {};
    case element_type::STRING:
      p.kind = Parameter::Kind::kString;
      p.s = std::string(v.get_string().value_unsafe());
      return {};
    default: return wrong_type(field, "a boolean, number or string", v);
  }
}

Status read_parameters(element e, std::string_view field, Parameters& out) {
  simdjson::dom::object obj;
  if (e.get_object().get(obj)) return wrong_type(field, "an object", e);
  for (auto [key, value] : obj) {
    Parameter p;
    if (Status s = read_parameter(value, std::string(field) + "." + std::string(key), p); !s) return s;
    out.emplace_back(std::string(key), std::move(p));
  }
  return {};
}

const Parameter* find(const Parameters& ps, std::string_view key) {
  for (const auto& [k, v] : ps)
    if (k == key) return &v;
  return nullptr;
}

// Flattens `data` (nested arrays allowed) into out, converting each element.
template <class T>
Status flatten(element e, DataType type, std::vector<T>& out, std::size_t expected, std::size_t input,
               std::size_t cols, int depth) {
  simdjson::dom::array arr;
  if (e.get_array().get(arr)) {
    if (depth == 0) return wrong_type("inputs[" + std::to_string(input) + "].data", "an array", e);
    const std::size_t k = out.size();
    if (k >= expected)
      return invalid_input("inputs[" + std::to_string(input) + "].data: more than the " + std::to_string(expected) +
                           " elements its shape holds");
    T f = 0;
    if (Status s = convert_json(e, type, f, input, k, cols); !s) return s;
    out.push_back(f);
    return {};
  }
  if (depth > 8) return invalid_input("inputs[" + std::to_string(input) + "].data: nested deeper than 8 levels");
  for (element item : arr)
    if (Status s = flatten(item, type, out, expected, input, cols, depth + 1); !s) return s;
  return {};
}

}  // namespace

std::string_view to_string(DataType t) noexcept {
  for (const auto& n : kTypes)
    if (n.type == t) return n.name;
  return "?";
}

std::optional<DataType> parse_datatype(std::string_view s) noexcept {
  for (const auto& n : kTypes)
    if (n.name == s) return n.type;
  return std::nullopt;
}

std::size_t element_size(DataType t) noexcept {
  for (const auto& n : kTypes)
    if (n.type == t) return n.size;
  return 0;
}

struct RequestDecoder::Impl {
  simdjson::dom::parser parser;
  std::string copy;  // a padded copy, for bodies without spare bytes
  // The JSON part's length: JSON data of n elements takes at least 2n - 1
  // bytes, so a shape claiming more than that is never reserved for (a
  // 6-element body with shape [882888883] asked for 3.5 GB; found by
  // fuzz_oip_rest). The element count is checked after flattening.
  std::size_t json_bytes = 0;

  Status decode_input(element in, std::size_t index, InferRequest& out, std::string_view binary,
                      std::size_t& binary_used, bool has_binary);
  Status decode(std::string_view body, std::size_t capacity, std::optional<std::size_t> json_length,
                InferRequest& out);
};

Status RequestDecoder::Impl::decode_input(element in, std::size_t index, InferRequest& out, std::string_view binary,
                                          std::size_t& binary_used, bool has_binary) {
  const std::string field = "inputs[" + std::to_string(index) + "]";
  simdjson::dom::object obj;
  if (in.get_object().get(obj)) return wrong_type(field, "an object", in);

  element name, shape, datatype, data, params;
  bool has_name = false, has_shape = false, has_type = false, has_data = false, has_params = false;
  for (auto [key, value] : obj) {
    if (key == "name") name = value, has_name = true;
    else if (key == "shape") shape = value, has_shape = true;
    else if (key == "datatype") datatype = value, has_type = true;
    else if (key == "data") data = value, has_data = true;
    else if (key == "parameters") params = value, has_params = true;
  }
  if (!has_name) return invalid_input(field + ".name: missing");
  if (!has_shape) return invalid_input(field + ".shape: missing");
  if (!has_type) return invalid_input(field + ".datatype: missing");

  std::string_view sv;
  if (name.get_string().get(sv)) return wrong_type(field + ".name", "a string", name);
  out.input_name = std::string(sv);
  if (datatype.get_string().get(sv)) return wrong_type(field + ".datatype", "a string", datatype);
  const auto type = parse_datatype(sv);
  if (!type) return invalid_input(field + ".datatype: unknown datatype '" + std::string(sv) + "'");
  if (*type == DataType::kBytes || *type == DataType::kFp16)
    return invalid_input(field + ".datatype: " + std::string(sv) +
                         " is not supported (Keel takes FP32, FP64, BOOL and integer features)");
  out.datatype = *type;

  simdjson::dom::array dims;
  if (shape.get_array().get(dims)) return wrong_type(field + ".shape", "an array", shape);
  std::vector<std::int64_t> d;
  for (element dim : dims) {
    std::int64_t v = 0;
    if (dim.get_int64().get(v)) return wrong_type(field + ".shape[" + std::to_string(d.size()) + "]", "an integer", dim);
    d.push_back(v);
  }
  if (Status s = set_shape(d, field, out); !s) return s;
  const std::size_t expected = out.rows * out.cols;

  std::optional<std::uint64_t> binary_size;
  if (has_params) {
    simdjson::dom::object pobj;
    if (params.get_object().get(pobj)) return wrong_type(field + ".parameters", "an object", params);
    for (auto [key, value] : pobj) {
      if (key != "binary_data_size") continue;
      std::uint64_t v = 0;
      if (value.get_uint64().get(v))
        return wrong_type(field + ".parameters.binary_data_size", "a non-negative integer", value);
      binary_size = v;
    }
  }

  out.values.clear();
  out.values64.clear();
  const bool f64 = out.datatype == DataType::kFp64;  // kept as doubles (values64)
  if (binary_size) {
    if (!has_binary)
      return invalid_input(field + ".parameters.binary_data_size: set, but the request has no "
                           "Inference-Header-Content-Length header");
    if (has_data) return invalid_input(field + ": has both data and parameters.binary_data_size");
    const std::size_t want = expected * element_size(out.datatype);
    if (*binary_size != want)
      return invalid_input(field + ".parameters.binary_data_size: " + std::to_string(*binary_size) + " bytes, but " +
                           std::string(to_string(out.datatype)) + " shape [" + std::to_string(out.rows) + ", " +
                           std::to_string(out.cols) + "] takes " + std::to_string(want));
    if (binary.size() - binary_used < want)
      return invalid_input(field + ": binary data at byte " + std::to_string(binary_used) + " of the binary section: " +
                           std::to_string(want) + " bytes wanted, " + std::to_string(binary.size() - binary_used) +
                           " left");
    const char* p = binary.data() + binary_used;
    if (f64) {
      out.values64.resize(expected);
      std::memcpy(out.values64.data(), p, want);
    } else if (out.datatype == DataType::kFp32) {
      out.values.resize(expected);
      std::memcpy(out.values.data(), p, want);
    } else {
      out.values.resize(expected);
      const std::size_t es = element_size(out.datatype);
      for (std::size_t k = 0; k < expected; ++k)
        if (Status s = convert_binary(p + k * es, out.datatype, out.values[k], index, k, out.cols); !s) return s;
    }
    binary_used += want;
    return {};
  }
  if (!has_data) return invalid_input(field + ".data: missing (and no parameters.binary_data_size)");
  std::size_t got = 0;
  const std::size_t can_hold = json_bytes / 2 + 1;  // elements the JSON text can hold at most
  if (f64) {
    out.values64.reserve(std::min(expected, can_hold));
    if (Status s = flatten(data, out.datatype, out.values64, expected, index, out.cols, 0); !s) return s;
    got = out.values64.size();
  } else {
    out.values.reserve(std::min(expected, can_hold));
    if (Status s = flatten(data, out.datatype, out.values, expected, index, out.cols, 0); !s) return s;
    got = out.values.size();
  }
  if (got != expected)
    return invalid_input(field + ".data: " + std::to_string(got) + " elements, but shape [" +
                         (out.one_dimensional ? std::to_string(out.cols)
                                              : std::to_string(out.rows) + ", " + std::to_string(out.cols)) +
                         "] holds " + std::to_string(expected));
  return {};
}

Status RequestDecoder::Impl::decode(std::string_view body, std::size_t capacity,
                                    std::optional<std::size_t> json_length, InferRequest& out) {
  out.id.clear();
  out.input_name.clear();
  out.rows = out.cols = 0;
  out.one_dimensional = false;
  out.values.clear();
  out.values64.clear();
  out.outputs.clear();
  out.binary_output = false;
  out.parameters.clear();
  out.reasons = {};

  std::size_t jlen = body.size();
  if (json_length) {
    if (*json_length > body.size())
      return invalid_input("Inference-Header-Content-Length: " + std::to_string(*json_length) +
                           " is larger than the body (" + std::to_string(body.size()) + " bytes)");
    jlen = *json_length;
  }
  const std::string_view binary = body.substr(jlen);
  json_bytes = jlen;
  const char* json = body.data();
  if (capacity < jlen + kJsonPadding) {
    copy.assign(body.data(), jlen);
    copy.resize(jlen + kJsonPadding, '\0');
    json = copy.data();
  }
  element doc;
  if (auto err = parser.parse(json, jlen, false).get(doc); err)
    return invalid_input(malformed(simdjson::padded_string_view(json, jlen, jlen + kJsonPadding), err));

  simdjson::dom::object root;
  if (doc.get_object().get(root)) return wrong_type("request body", "a JSON object", doc);
  element inputs, outputs;
  bool has_inputs = false, has_outputs = false;
  for (auto [key, value] : root) {
    if (key == "id") {
      std::string_view s;
      if (value.get_string().get(s)) return wrong_type("id", "a string", value);
      out.id = std::string(s);
    } else if (key == "inputs") {
      inputs = value, has_inputs = true;
    } else if (key == "outputs") {
      outputs = value, has_outputs = true;
    } else if (key == "parameters") {
      if (Status s = read_parameters(value, "parameters", out.parameters); !s) return s;
    }
  }
  if (const Parameter* p = find(out.parameters, "binary_data_output")) {
    if (p->kind != Parameter::Kind::kBool) return invalid_input("parameters.binary_data_output: expected a boolean");
    out.binary_output = p->b;
  }
  if (Status s = read_explain_parameters(out); !s) return s;
  if (!has_inputs) return invalid_input("inputs: missing");
  simdjson::dom::array in_arr;
  if (inputs.get_array().get(in_arr)) return wrong_type("inputs", "an array", inputs);
  const std::size_t n_inputs = in_arr.size();
  if (n_inputs != 1)
    return invalid_input("inputs: expected one tensor of shape [rows, features], got " + std::to_string(n_inputs));
  std::size_t binary_used = 0;
  if (Status s = decode_input(in_arr.at(0).value_unsafe(), 0, out, binary, binary_used, json_length.has_value()); !s)
    return s;
  if (binary_used != binary.size())
    return invalid_input("binary data: " + std::to_string(binary.size() - binary_used) + " bytes after byte " +
                         std::to_string(jlen + binary_used) + " belong to no input");

  if (has_outputs) {
    simdjson::dom::array out_arr;
    if (outputs.get_array().get(out_arr)) return wrong_type("outputs", "an array", outputs);
    std::size_t i = 0;
    for (element o : out_arr) {
      const std::string field = "outputs[" + std::to_string(i++) + "]";
      simdjson::dom::object oo;
      if (o.get_object().get(oo)) return wrong_type(field, "an object", o);
      RequestedOutput ro;
      ro.binary = out.binary_output;
      bool named = false;
      for (auto [key, value] : oo) {
        if (key == "name") {
          std::string_view s;
          if (value.get_string().get(s)) return wrong_type(field + ".name", "a string", value);
          ro.name = std::string(s);
          named = true;
        } else if (key == "parameters") {
          Parameters ps;
          if (Status s = read_parameters(value, field + ".parameters", ps); !s) return s;
          if (const Parameter* p = find(ps, "binary_data")) {
            if (p->kind != Parameter::Kind::kBool)
              return invalid_input(field + ".parameters.binary_data: expected a boolean");
            ro.binary = p->b;
          }
        }
      }
      if (!named) return invalid_input(field + ".name: missing");
      if (Status s = add_requested_output(std::move(ro), field, out); !s) return s;
    }
  }
  return {};
}

RequestDecoder::RequestDecoder() : impl_(std::make_unique<Impl>()) {}
RequestDecoder::~RequestDecoder() = default;

Status RequestDecoder::decode(std::string_view body, std::size_t capacity, std::optional<std::size_t> json_length,
                              InferRequest& out) {
  return impl_->decode(body, std::max(capacity, body.size()), json_length, out);
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      switch (c) {
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          out += "\\u00";
          out.push_back(kHex[u >> 4]);
          out.push_back(kHex[u & 15]);
      }
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

void append_json_float(std::string& out, float v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

std::string error_json(std::string_view message) {
  std::string out = "{\"error\":";
  append_json_string(out, message);
  out.push_back('}');
  return out;
}

void append_row_errors(std::string& body, const std::vector<RowError>& errors) {
  body.push_back('[');
  bool first = true;
  for (const auto& e : errors) {
    if (!first) body.push_back(',');
    first = false;
    body += "{\"row\":";
    body += std::to_string(e.row);
    body += ",\"code\":";
    append_json_string(body, keel::to_string(e.status.code()));
    body += ",\"error\":";
    append_json_string(body, e.status.message());
    body.push_back('}');
  }
  body.push_back(']');
}

Status read_explain_parameters(InferRequest& request) {
  constexpr std::int64_t kMaxK = std::numeric_limits<std::uint32_t>::max();
  for (const auto& [key, p] : request.parameters) {
    if (key == "reason_codes") {
      if (p.kind != Parameter::Kind::kInt || p.i < 0 || p.i > kMaxK) {
        std::string got = p.kind == Parameter::Kind::kInt      ? std::to_string(p.i)
                          : p.kind == Parameter::Kind::kString ? "a string"
                          : p.kind == Parameter::Kind::kBool   ? "a boolean"
                                                               : "a non-integer or out-of-range number";
        return invalid_input("parameters.reason_codes: expected an integer from 0 to the model's features, got " +
                             got);
      }
      request.reasons.k = static_cast<std::uint32_t>(p.i);
    } else if (key == "reason_mode") {
      if (p.kind == Parameter::Kind::kString && p.s == "magnitude") {
        request.reasons.mode = ReasonMode::kMagnitude;
      } else if (p.kind == Parameter::Kind::kString && p.s == "up") {
        request.reasons.mode = ReasonMode::kIncreasing;
      } else {
        return invalid_input("parameters.reason_mode: expected \"magnitude\" or \"up\"");
      }
    }
  }
  return {};
}

Status add_requested_output(RequestedOutput output, const std::string& field, InferRequest& request) {
  if (output.name == kContributionsOutput) {
    request.reasons.contributions = true;
  } else if (output.name == kLeafOutput) {
    request.reasons.leaves = true;
  } else if (output.name != kScoresOutput) {
    return invalid_input(field + ".name: unknown output '" + output.name.substr(0, 64) + "' (the model answers '" +
                         std::string(kScoresOutput) + "', '" + std::string(kContributionsOutput) + "' and '" +
                         std::string(kLeafOutput) + "')");
  }
  for (const auto& o : request.outputs)
    if (o.name == output.name) return invalid_input(field + ".name: output '" + output.name + "' asked twice");
  request.outputs.push_back(std::move(output));
  return {};
}

void append_explanations(std::string& body, const InferResult& result) {
  body.push_back('[');
  for (std::size_t r = 0; r < result.rows; ++r) {
    if (r) body.push_back(',');
    const std::string& by = result.explained_by[r];
    const std::string& why = result.explain_unavailable[r];
    if (by.empty() && why.empty()) {  // the row failed: row_errors says why
      body += "null";
      continue;
    }
    body += "{\"explained_by\":";
    append_json_string(body, by);
    if (result.reasons_asked) {
      body += ",\"reasons\":[";
      for (std::uint32_t c = result.reason_begin[r]; c < result.reason_begin[r + 1]; ++c) {
        const Reason& x = result.reasons[c];
        if (c != result.reason_begin[r]) body.push_back(',');
        body += "{\"feature\":";
        append_json_string(body, x.feature);
        body += ",\"index\":" + std::to_string(x.index) + ",\"output\":" + std::to_string(x.output) + ",\"value\":";
        if (std::isfinite(x.value)) {
          char buf[32];
          const auto end = std::to_chars(buf, buf + sizeof buf, x.value);
          body.append(buf, end.ptr);
        } else {
          body += "null";
        }
        body += ",\"contribution\":";
        append_json_float(body, x.contribution);
        body.push_back('}');
      }
      body.push_back(']');
    }
    if (!why.empty()) {
      body += ",\"reasons_unavailable\":";
      append_json_string(body, why);
    }
    body.push_back('}');
  }
  body.push_back(']');
}

namespace {

// One output tensor of a response: where its values are, and how sent.
struct OutputTensor {
  std::string_view name;
  std::string_view datatype;
  std::size_t width = 0;
  const void* data = nullptr;
  std::size_t element_size = 0;
  bool is_int = false;
  bool binary = false;
};

// The tensors `request` asks for, in its order (the scores alone by default).
std::vector<OutputTensor> output_tensors(const InferResult& result, const InferRequest& request) {
  std::vector<OutputTensor> out;
  const auto add = [&](std::string_view name, bool binary) {
    if (name == kContributionsOutput)
      out.push_back({name, "FP32", result.contrib_width, result.contributions.data(), sizeof(float), false, binary});
    else if (name == kLeafOutput)
      out.push_back({name, "INT32", result.leaf_width, result.leaves.data(), sizeof(std::int32_t), true, binary});
    else
      out.push_back({kScoresOutput, "FP32", result.width, result.scores.data(), sizeof(float), false, binary});
  };
  if (request.outputs.empty()) add(kScoresOutput, request.binary_output);
  for (const auto& o : request.outputs) add(o.name, o.binary);
  return out;
}

}  // namespace

std::size_t encode_infer_response(const InferResult& result, const InferRequest& request, std::string& body) {
  body.clear();
  const std::vector<OutputTensor> tensors = output_tensors(result, request);
  std::size_t text = 0;
  for (const auto& t : tensors) text += t.binary ? 0 : result.rows * t.width * 12;
  body.reserve(160 + text + result.row_errors.size() * 64);
  body += "{\"id\":";
  append_json_string(body, result.id);
  body += ",\"model_name\":";
  append_json_string(body, result.model_name);
  body += ",\"model_version\":";
  append_json_string(body, result.model_version);
  body += ",\"parameters\":{\"degraded\":";
  body += result.degraded ? "true" : "false";
  body += ",\"stage\":";
  append_json_string(body, result.stage);
  if (result.degraded) {
    body += ",\"degraded_reason\":";
    append_json_string(body, result.degraded_reason);
  }
  body += result.cache_hit ? ",\"cache_hit\":true" : ",\"cache_hit\":false";
  body += result.anomaly ? ",\"anomaly\":true" : ",\"anomaly\":false";
  if (!result.row_errors.empty()) {
    body += ",\"rows_failed\":";
    body += std::to_string(result.row_errors.size());
    body += ",\"row_errors\":";
    append_row_errors(body, result.row_errors);
  }
  if (result.explained) {
    body += ",\"explanations\":";
    append_explanations(body, result);
  }
  body += "},\"outputs\":[";
  bool first = true;
  for (const auto& t : tensors) {
    if (!first) body.push_back(',');
    first = false;
    const std::size_t n = result.rows * t.width;
    body += "{\"name\":";
    append_json_string(body, t.name);
    body += ",\"datatype\":\"";
    body += t.datatype;
    body += "\",\"shape\":[";
    if (!result.one_dimensional) {
      body += std::to_string(result.rows);
      body.push_back(',');
    }
    body += std::to_string(t.width);
    body.push_back(']');
    if (t.binary) {
      body += ",\"parameters\":{\"binary_data_size\":";
      body += std::to_string(n * t.element_size);
      body += "}}";
      continue;
    }
    body += ",\"data\":[";
    for (std::size_t k = 0; k < n; ++k) {
      if (k) body.push_back(',');
      if (t.is_int)
        body += std::to_string(static_cast<const std::int32_t*>(t.data)[k]);
      else
        append_json_float(body, static_cast<const float*>(t.data)[k]);
    }
    body += "]}";
  }
  body += "]}";
  const std::size_t json_length = body.size();
  for (const auto& t : tensors) {
    const std::size_t bytes = result.rows * t.width * t.element_size;
    if (!t.binary || bytes == 0) continue;
    const std::size_t at = body.size();
    body.resize(at + bytes);
    std::memcpy(body.data() + at, t.data, bytes);
  }
  return json_length;
}

}  // namespace keel::net::oip
