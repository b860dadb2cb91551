#include "net/grpc/grpc_codec.hpp"

#include <keel/net/oip/codec.hpp>

#include "net/oip/convert.hpp"

#include <cstring>

namespace keel::net::grpc_oip {
namespace {

using oip::DataType;

Status read_parameters(const google::protobuf::Map<std::string, inference::InferParameter>& in, oip::Parameters& out) {
  out.clear();
  for (const auto& [key, v] : in) {
    oip::Parameter p;
    switch (v.parameter_choice_case()) {
      case inference::InferParameter::kBoolParam: p.kind = oip::Parameter::Kind::kBool, p.b = v.bool_param(); break;
      case inference::InferParameter::kInt64Param: p.kind = oip::Parameter::Kind::kInt, p.i = v.int64_param(); break;
      case inference::InferParameter::kDoubleParam:
        p.kind = oip::Parameter::Kind::kDouble, p.d = v.double_param();
        break;
      case inference::InferParameter::kUint64Param:
        if (v.uint64_param() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          p.kind = oip::Parameter::Kind::kDouble, p.d = static_cast<double>(v.uint64_param());
        else
          p.kind = oip::Parameter::Kind::kInt, p.i = static_cast<std::int64_t>(v.uint64_param());
        break;
      default: p.kind = oip::Parameter::Kind::kString, p.s = v.string_param(); break;
    }
    out.emplace_back(key, std::move(p));
  }
  return {};
}

// A boolean parameter `key` of `ps`, if present; an error if not boolean.
Status bool_param(const oip::Parameters& ps, std::string_view key, const std::string& field, bool& value) {
  for (const auto& [k, p] : ps) {
    if (k != key) continue;
    if (p.kind != oip::Parameter::Kind::kBool) return invalid_input(field + "." + std::string(key) + ": expected a boolean");
    value = p.b;
  }
  return {};
}

// Typed contents of the field that matches `type` into floats (doubles for FP64).
template <class Repeated, class T, class Convert>
Status typed(const Repeated& values, std::string_view name, std::size_t expected, const std::string& field,
             std::vector<T>& out, Convert convert) {
  if (static_cast<std::size_t>(values.size()) != expected)
    return invalid_input(field + ".contents." + std::string(name) + ": " + std::to_string(values.size()) +
                         " elements, but the shape holds " + std::to_string(expected));
  out.resize(expected);
  for (std::size_t k = 0; k < expected; ++k)
    if (Status s = convert(values[static_cast<int>(k)], out[k], k); !s) return s;
  return {};
}

}  // namespace

Status decode(const inference::ModelInferRequest& in, oip::InferRequest& out) {
  out.id = in.id();
  out.outputs.clear();
  out.binary_output = false;
  out.reasons = {};
  if (Status s = read_parameters(in.parameters(), out.parameters); !s) return s;
  if (Status s = bool_param(out.parameters, "binary_data_output", "parameters", out.binary_output); !s) return s;
  if (Status s = oip::read_explain_parameters(out); !s) return s;
  if (in.inputs_size() != 1)
    return invalid_input("inputs: expected one tensor of shape [rows, features], got " +
                         std::to_string(in.inputs_size()));
  const auto& t = in.inputs(0);
  const std::string field = "inputs[0]";
  if (t.name().empty()) return invalid_input(field + ".name: missing");
  out.input_name = t.name();
  const auto type = oip::parse_datatype(t.datatype());
  if (!type) return invalid_input(field + ".datatype: unknown datatype '" + t.datatype().substr(0, 64) + "'");
  if (*type == DataType::kBytes || *type == DataType::kFp16)
    return invalid_input(field + ".datatype: " + t.datatype() +
                         " is not supported (Keel takes FP32, FP64, BOOL and integer features)");
  out.datatype = *type;
  if (Status s = oip::set_shape({t.shape().data(), static_cast<std::size_t>(t.shape_size())}, field, out); !s)
    return s;
  const std::size_t expected = out.rows * out.cols;
  const std::size_t cols = out.cols;
  out.values.clear();
  out.values64.clear();  // FP64 stays double (the models get the doubles)

  if (in.raw_input_contents_size() > 0) {
    if (in.raw_input_contents_size() != 1)
      return invalid_input("raw_input_contents: " + std::to_string(in.raw_input_contents_size()) +
                           " entries for 1 input");
    if (t.has_contents()) return invalid_input(field + ".contents: set together with raw_input_contents");
    const std::string& raw = in.raw_input_contents(0);
    const std::size_t es = oip::element_size(out.datatype);
    if (raw.size() != expected * es)
      return invalid_input("raw_input_contents[0]: " + std::to_string(raw.size()) + " bytes, but " + t.datatype() +
                           " shape holds " + std::to_string(expected) + " elements of " + std::to_string(es) +
                           " bytes (" + std::to_string(expected * es) + ")");
    if (out.datatype == DataType::kFp64) {
      out.values64.resize(expected);
      std::memcpy(out.values64.data(), raw.data(), raw.size());
    } else if (out.datatype == DataType::kFp32) {
      out.values.resize(expected);
      std::memcpy(out.values.data(), raw.data(), raw.size());
    } else {
      out.values.resize(expected);
      for (std::size_t k = 0; k < expected; ++k)
        if (Status s = oip::convert_binary(raw.data() + k * es, out.datatype, out.values[k], 0, k, cols); !s)
          return s;
    }
  } else {
    if (!t.has_contents()) return invalid_input(field + ".contents: missing (and no raw_input_contents)");
    const auto& c = t.contents();
    const auto type_v = out.datatype;
    const auto sgn = [&](auto v, float& f, std::size_t k) { return oip::convert_signed(v, type_v, f, 0, k, cols); };
    const auto uns = [&](auto v, float& f, std::size_t k) { return oip::convert_unsigned(v, type_v, f, 0, k, cols); };
    switch (type_v) {
      case DataType::kFp32: {
        if (Status s = typed(c.fp32_contents(), "fp32_contents", expected, field, out.values,
                             [](float v, float& f, std::size_t) { return f = v, Status{}; });
            !s)
          return s;
        break;
      }
      case DataType::kFp64: {
        const auto dbl = [](double v, double& d, std::size_t) { return d = v, Status{}; };
        if (Status s = typed(c.fp64_contents(), "fp64_contents", expected, field, out.values64, dbl); !s) return s;
        break;
      }
      case DataType::kBool: {
        const auto b = [](bool v, float& f, std::size_t) { return f = v ? 1.0f : 0.0f, Status{}; };
        if (Status s = typed(c.bool_contents(), "bool_contents", expected, field, out.values, b); !s) return s;
        break;
      }
      case DataType::kInt8:
      case DataType::kInt16:
      case DataType::kInt32:
        if (Status s = typed(c.int_contents(), "int_contents", expected, field, out.values, sgn); !s) return s;
        break;
      case DataType::kInt64:
        if (Status s = typed(c.int64_contents(), "int64_contents", expected, field, out.values, sgn); !s)
          return s;
        break;
      case DataType::kUint8:
      case DataType::kUint16:
      case DataType::kUint32:
        if (Status s = typed(c.uint_contents(), "uint_contents", expected, field, out.values, uns); !s) return s;
        break;
      case DataType::kUint64:
        if (Status s = typed(c.uint64_contents(), "uint64_contents", expected, field, out.values, uns); !s)
          return s;
        break;
      default: return invalid_input(field + ".datatype: not supported");
    }
  }

  for (int i = 0; i < in.outputs_size(); ++i) {
    const auto& o = in.outputs(i);
    const std::string of = "outputs[" + std::to_string(i) + "]";
    oip::RequestedOutput ro;
    ro.name = o.name();
    ro.binary = out.binary_output;
    if (ro.name.empty()) return invalid_input(of + ".name: missing");
    oip::Parameters ps;
    if (Status s = read_parameters(o.parameters(), ps); !s) return s;
    if (Status s = bool_param(ps, "binary_data", of + ".parameters", ro.binary); !s) return s;
    if (Status s = oip::add_requested_output(std::move(ro), of, out); !s) return s;
  }
  return {};
}

bool wants_raw(const inference::ModelInferRequest& in, const oip::InferRequest& request) {
  if (in.raw_input_contents_size() > 0 || request.binary_output) return true;
  for (const auto& o : request.outputs)
    if (o.binary) return true;
  return false;
}

void encode(const oip::InferResult& result, const oip::InferRequest& request, bool raw,
            inference::ModelInferResponse& out) {
  out.Clear();
  out.set_model_name(result.model_name);
  out.set_model_version(result.model_version);
  out.set_id(result.id);
  auto& ps = *out.mutable_parameters();
  ps["degraded"].set_bool_param(result.degraded);
  ps["stage"].set_string_param(result.stage);
  if (result.degraded) ps["degraded_reason"].set_string_param(result.degraded_reason);
  ps["cache_hit"].set_bool_param(result.cache_hit);
  ps["anomaly"].set_bool_param(result.anomaly);
  if (!result.row_errors.empty()) {
    ps["rows_failed"].set_int64_param(static_cast<std::int64_t>(result.row_errors.size()));
    std::string json;
    oip::append_row_errors(json, result.row_errors);
    ps["row_errors"].set_string_param(std::move(json));
  }
  if (result.explained) {
    std::string json;
    oip::append_explanations(json, result);
    ps["explanations"].set_string_param(std::move(json));
  }
  // The scores alone unless `outputs` names others; in the order asked.
  const auto add = [&](std::string_view name) {
    auto* t = out.add_outputs();
    t->set_name(std::string(name));
    const bool leaf = name == oip::kLeafOutput;
    const std::size_t width = name == oip::kContributionsOutput ? result.contrib_width
                              : leaf                             ? result.leaf_width
                                                                 : result.width;
    const float* f = name == oip::kContributionsOutput ? result.contributions.data() : result.scores.data();
    t->set_datatype(leaf ? "INT32" : "FP32");
    if (!result.one_dimensional) t->add_shape(static_cast<std::int64_t>(result.rows));
    t->add_shape(static_cast<std::int64_t>(width));
    const std::size_t n = result.rows * width;
    if (raw) {
      const void* data = leaf ? static_cast<const void*>(result.leaves.data()) : f;
      out.add_raw_output_contents()->assign(static_cast<const char*>(data), n * 4);
    } else if (leaf) {
      auto* c = t->mutable_contents()->mutable_int_contents();
      c->Reserve(static_cast<int>(n));
      for (std::size_t k = 0; k < n; ++k) c->AddAlreadyReserved(result.leaves[k]);
    } else {
      auto* c = t->mutable_contents()->mutable_fp32_contents();
      c->Reserve(static_cast<int>(n));
      for (std::size_t k = 0; k < n; ++k) c->AddAlreadyReserved(f[k]);
    }
  };
  if (request.outputs.empty()) add(oip::kScoresOutput);
  for (const auto& o : request.outputs) add(o.name);
}

}  // namespace keel::net::grpc_oip
