#include "net/remote/oip_wire.hpp"

#include <keel/net/oip/codec.hpp>

#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <limits>

namespace keel::net::remote {
namespace dom = simdjson::dom;

namespace {

dom::parser& parser() {
  thread_local dom::parser p;
  return p;
}

Status bad(std::string_view what, std::string_view body) {
  return unavailable("OIP peer answered an unreadable " + std::string(what) + " (" +
                     std::string(body.substr(0, 120)) + ")");
}

// The last dimension of a shape array, or 0.
std::size_t last_dim(dom::element shape) {
  dom::array a;
  if (shape.get_array().get(a) != simdjson::SUCCESS || a.size() == 0) return 0;
  std::int64_t v = 0;
  if (a.at(a.size() - 1).get_int64().get(v) != simdjson::SUCCESS || v <= 0) return 0;
  return static_cast<std::size_t>(v);
}

}  // namespace

namespace {

template <class T>
Status encode_rows(std::string& body, std::string_view id, std::span<const T> rows, std::size_t n_rows,
                   std::size_t cols) {
  body.clear();
  body.reserve(96 + rows.size() * (sizeof(T) == 4 ? 12 : 20));
  body += "{";
  if (!id.empty()) {
    body += "\"id\":";
    oip::append_json_string(body, id);
    body.push_back(',');
  }
  body += sizeof(T) == 4 ? "\"inputs\":[{\"name\":\"input-0\",\"datatype\":\"FP32\",\"shape\":["
                         : "\"inputs\":[{\"name\":\"input-0\",\"datatype\":\"FP64\",\"shape\":[";
  body += std::to_string(n_rows);
  body.push_back(',');
  body += std::to_string(cols);
  body += "],\"data\":[";
  char buf[32];
  for (std::size_t i = 0; i < n_rows * cols; ++i) {
    if (i) body.push_back(',');
    const T v = rows[i];
    if (std::isnan(v)) {
      body += "null";  // missing
    } else if (std::isinf(v)) {
      body.clear();
      return invalid_input("row " + std::to_string(i / cols) + ", feature " + std::to_string(i % cols) +
                           ": an infinity cannot be sent to a remote model (JSON has none)");
    } else {
      body.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
    }
  }
  body += "]}]}";
  return {};
}

}  // namespace

Status encode_infer_request(std::string& body, std::string_view id, std::span<const float> rows, std::size_t n_rows,
                            std::size_t cols) {
  return encode_rows(body, id, rows, n_rows, cols);
}

Status encode_infer_request(std::string& body, std::string_view id, std::span<const double> rows,
                            std::size_t n_rows, std::size_t cols) {
  return encode_rows(body, id, rows, n_rows, cols);
}

Status decode_infer_response(std::string_view body, std::size_t n_rows, std::size_t width, std::span<float> out,
                             bool& degraded, std::string& reason) {
  dom::element doc;
  if (parser().parse(body.data(), body.size()).get(doc) != simdjson::SUCCESS) return bad("infer response", body);
  degraded = false;
  reason.clear();
  dom::object params;
  if (doc["parameters"].get_object().get(params) == simdjson::SUCCESS) {
    bool d = false;
    if (params["degraded"].get_bool().get(d) == simdjson::SUCCESS) degraded = d;
    std::string_view r;
    if (params["degraded_reason"].get_string().get(r) == simdjson::SUCCESS) reason = std::string(r);
    dom::array errors;
    if (params["row_errors"].get_array().get(errors) == simdjson::SUCCESS && errors.size() > 0) {
      dom::element first = errors.at(0);
      std::int64_t row = -1;
      std::string_view msg;
      if (first["row"].get_int64().get(row) != simdjson::SUCCESS) row = -1;
      if (first["error"].get_string().get(msg) != simdjson::SUCCESS) msg = "no message";
      return invalid_input("row " + std::to_string(row) + ": " + std::string(msg) + " (" +
                           std::to_string(errors.size()) + " of " + std::to_string(n_rows) +
                           " rows failed on the remote model)");
    }
  }
  dom::array outputs;
  if (doc["outputs"].get_array().get(outputs) != simdjson::SUCCESS || outputs.size() == 0)
    return bad("infer response: no outputs", body);
  dom::element o = outputs.at(0);
  dom::array data;
  if (o["data"].get_array().get(data) != simdjson::SUCCESS) return bad("infer response: outputs[0].data", body);
  if (data.size() != n_rows * width)
    return unavailable("OIP peer answered " + std::to_string(data.size()) + " values, expected " +
                       std::to_string(n_rows) + " rows x " + std::to_string(width));
  std::size_t k = 0;
  for (dom::element v : data) {
    double d = 0;
    if (v.is_null()) {
      out[k++] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    if (v.get_double().get(d) != simdjson::SUCCESS)
      return bad("infer response: outputs[0].data[" + std::to_string(k) + "]", body);
    // Written shortest round-trip from a float: the nearest float is it.
    out[k++] = static_cast<float>(d);
  }
  return {};
}

Result<ModelShape> decode_metadata(std::string_view body) {
  dom::element doc;
  if (parser().parse(body.data(), body.size()).get(doc) != simdjson::SUCCESS) return bad("model metadata", body);
  ModelShape m;
  std::string_view s;
  if (doc["name"].get_string().get(s) == simdjson::SUCCESS) m.name = std::string(s);
  if (doc["platform"].get_string().get(s) == simdjson::SUCCESS) m.platform = std::string(s);
  dom::array inputs, outputs;
  if (doc["inputs"].get_array().get(inputs) != simdjson::SUCCESS || inputs.size() != 1)
    return bad("model metadata: expected one input", body);
  if (doc["outputs"].get_array().get(outputs) != simdjson::SUCCESS || outputs.size() == 0)
    return bad("model metadata: no outputs", body);
  m.features = last_dim(inputs.at(0)["shape"]);
  m.outputs = last_dim(outputs.at(0)["shape"]);
  if (m.features == 0 || m.outputs == 0) return bad("model metadata: input or output shape", body);
  return m;
}

std::string error_message(std::string_view body) {
  dom::element doc;
  std::string_view msg;
  if (parser().parse(body.data(), body.size()).get(doc) == simdjson::SUCCESS &&
      doc["error"].get_string().get(msg) == simdjson::SUCCESS)
    return std::string(msg.substr(0, 500));
  return std::string(body.substr(0, 200));
}

}  // namespace keel::net::remote
