// The OIP codec driven with byte buffers alone: no sockets, no server.
#include <keel/net/oip/codec.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <string>

using namespace keel;
using namespace keel::net::oip;

namespace {

Status decode(const std::string& body, InferRequest& out, std::optional<std::size_t> json_length = std::nullopt) {
  RequestDecoder dec;
  return dec.decode(body, body.size(), json_length, out);
}

std::string one_input(const std::string& tensor, const std::string& extra = "") {
  return R"({"id":"r1",)" + extra + R"("inputs":[)" + tensor + "]}";
}

template <class T>
std::string bytes_of(std::initializer_list<T> vs) {
  std::string s;
  for (T v : vs) s.append(reinterpret_cast<const char*>(&v), sizeof v);
  return s;
}

}  // namespace

TEST_CASE("FP32 flat and nested data decode to the same rows", "[oip][codec]") {
  InferRequest flat, nested;
  REQUIRE(decode(one_input(R"({"name":"x","shape":[2,3],"datatype":"FP32","data":[1,2.5,-3e2,4,0.1,6]})"), flat));
  REQUIRE(decode(one_input(R"({"name":"x","shape":[2,3],"datatype":"FP32","data":[[1,2.5,-3e2],[4,0.1,6]]})"),
                 nested));
  CHECK(flat.id == "r1");
  CHECK(flat.input_name == "x");
  CHECK(flat.rows == 2);
  CHECK(flat.cols == 3);
  CHECK(flat.values == std::vector<float>{1, 2.5f, -300, 4, 0.1f, 6});
  CHECK(nested.values == flat.values);
  CHECK_FALSE(flat.one_dimensional);
}

TEST_CASE("shape [features] is one row, answered one-dimensional", "[oip][codec]") {
  InferRequest r;
  REQUIRE(decode(one_input(R"({"name":"x","shape":[3],"datatype":"FP64","data":[1,2,3]})"), r));
  CHECK(r.values64 == std::vector<double>{1, 2, 3});
  CHECK(r.rows == 1);
  CHECK(r.cols == 3);
  CHECK(r.one_dimensional);
  InferResult res;
  res.rows = 1;
  res.width = 1;
  res.one_dimensional = true;
  res.scores = {0.25f};
  std::string body;
  encode_infer_response(res, r, body);
  auto j = nlohmann::json::parse(body);
  CHECK(j["outputs"][0]["shape"] == nlohmann::json::array({1}));
}

TEST_CASE("integer and boolean inputs convert exactly or fail naming the element", "[oip][codec]") {
  InferRequest r;
  REQUIRE(decode(one_input(R"({"name":"x","shape":[1,3],"datatype":"INT64","data":[-7,16777216,1099511627776]})"), r));
  CHECK(r.values == std::vector<float>{-7, 16777216.0f, 1099511627776.0f});
  REQUIRE(decode(one_input(R"({"name":"x","shape":[1,2],"datatype":"BOOL","data":[true,false]})"), r));
  CHECK(r.values == std::vector<float>{1, 0});

  Status s = decode(one_input(R"({"name":"x","shape":[2,2],"datatype":"INT64","data":[1,2,3,16777217]})"), r);
  CHECK(s.code() == StatusCode::kInvalidInput);
  CHECK(s.message() == "inputs[0].data: row 1, feature 1: 16777217 has no exact FP32 value");
  s = decode(one_input(R"({"name":"x","shape":[1,1],"datatype":"INT32","data":[2147483648]})"), r);
  CHECK(s.message() == "inputs[0].data: row 0, feature 0: 2147483648 out of range for INT32");
  s = decode(one_input(R"({"name":"x","shape":[1,2],"datatype":"INT32","data":[1,1.5]})"), r);
  CHECK(s.message() == "inputs[0].data: row 0, feature 1: expected an integer, got number");
  s = decode(one_input(R"({"name":"x","shape":[1,2],"datatype":"BOOL","data":[true,1]})"), r);
  CHECK(s.message() == "inputs[0].data: row 0, feature 1: expected true or false, got number");
  s = decode(one_input(R"({"name":"x","shape":[1,1],"datatype":"FP32","data":[1e39]})"), r);
  CHECK(s.message().find("overflows FP32") != std::string::npos);
}

TEST_CASE("FP64 inputs stay double, bit for bit; null is missing", "[oip][codec][fp64]") {
  InferRequest r;
  // 0.30000000000000004 and 1e39 have no float; 1.0000000000000002 rounds to 1.0f.
  REQUIRE(decode(one_input(R"({"name":"x","shape":[2,2],"datatype":"FP64",)"
                           R"("data":[[0.30000000000000004,1e39],[null,1.0000000000000002]]})"),
                 r));
  CHECK(r.values.empty());
  REQUIRE(r.values64.size() == 4);
  CHECK(r.values64[0] == 0.30000000000000004);
  CHECK(r.values64[1] == 1e39);
  CHECK(std::isnan(r.values64[2]));
  CHECK(r.values64[3] == 1.0000000000000002);
  Status s = decode(one_input(R"({"name":"x","shape":[1,2],"datatype":"FP64","data":[1,"2"]})"), r);
  CHECK(s.message() == "inputs[0].data: row 0, feature 1: expected a number, got string");
  s = decode(one_input(R"({"name":"x","shape":[1,2],"datatype":"FP64","data":[1,2,3]})"), r);
  CHECK(s.code() == StatusCode::kInvalidInput);
  // An FP32 request after an FP64 one leaves no doubles behind.
  REQUIRE(decode(one_input(R"({"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]})"), r));
  CHECK(r.values64.empty());
  CHECK(r.values == std::vector<float>{1, 2});
}

TEST_CASE("null is a missing value (NaN) for floating inputs only", "[oip][codec]") {
  InferRequest r;
  REQUIRE(decode(one_input(R"({"name":"x","shape":[1,2],"datatype":"FP32","data":[null,1]})"), r));
  CHECK(std::isnan(r.values[0]));
  Status s = decode(one_input(R"({"name":"x","shape":[1,2],"datatype":"INT32","data":[null,1]})"), r);
  CHECK(s.message() == "inputs[0].data: row 0, feature 0: expected an integer, got null");
}

TEST_CASE("structural errors name the field", "[oip][codec]") {
  InferRequest r;
  struct Case {
    std::string body;
    std::string message;
  };
  const Case cases[] = {
      {R"([1,2])", "request body: expected a JSON object, got array"},
      {R"({"id":1,"inputs":[]})", "id: expected a string, got number"},
      {R"({"id":"a"})", "inputs: missing"},
      {R"({"inputs":{}})", "inputs: expected an array, got object"},
      {R"({"inputs":[]})", "inputs: expected one tensor of shape [rows, features], got 0"},
      {one_input(R"({"shape":[1],"datatype":"FP32","data":[1]})"), "inputs[0].name: missing"},
      {one_input(R"({"name":"x","datatype":"FP32","data":[1]})"), "inputs[0].shape: missing"},
      {one_input(R"({"name":"x","shape":[1],"data":[1]})"), "inputs[0].datatype: missing"},
      {one_input(R"({"name":"x","shape":[1],"datatype":"FP99","data":[1]})"),
       "inputs[0].datatype: unknown datatype 'FP99'"},
      {one_input(R"({"name":"x","shape":[1],"datatype":"BYTES","data":["a"]})"),
       "inputs[0].datatype: BYTES is not supported (Keel takes FP32, FP64, BOOL and integer features)"},
      {one_input(R"({"name":"x","shape":[1,-2],"datatype":"FP32","data":[1]})"), "inputs[0].shape[1]: negative (-2)"},
      {one_input(R"({"name":"x","shape":[1,2,3],"datatype":"FP32","data":[1]})"),
       "inputs[0].shape: expected [rows, features] or [features], got 3 dimensions"},
      {one_input(R"({"name":"x","shape":[0,3],"datatype":"FP32","data":[]})"), "inputs[0].shape: has a zero dimension"},
      {one_input(R"({"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3]})"),
       "inputs[0].data: 3 elements, but shape [2, 2] holds 4"},
      {one_input(R"({"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2,3]})"),
       "inputs[0].data: more than the 2 elements its shape holds"},
      {one_input(R"({"name":"x","shape":[1,2],"datatype":"FP32","data":[1,"a"]})"),
       "inputs[0].data: row 0, feature 1: expected a number, got string"},
      {one_input(R"({"name":"x","shape":[1],"datatype":"FP32"})"),
       "inputs[0].data: missing (and no parameters.binary_data_size)"},
      {one_input(R"({"name":"x","shape":[1],"datatype":"FP32","data":[1]})") .substr(0, 0) +
           R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"label"}]})",
       "outputs[0].name: unknown output 'label' (the model answers 'output-0', 'contributions' and 'leaf')"},
      {R"({"parameters":{"binary_data_output":1},"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]})",
       "parameters.binary_data_output: expected a boolean"},
      {one_input(R"({"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}})"),
       "inputs[0].parameters.binary_data_size: set, but the request has no Inference-Header-Content-Length header"},
  };
  for (const auto& c : cases) {
    INFO(c.body);
    Status s = decode(c.body, r);
    CHECK(s.code() == StatusCode::kInvalidInput);
    CHECK(s.message() == c.message);
  }
}

TEST_CASE("a malformed null literal is an error, not an exception (found by fuzz_oip_rest)", "[oip][codec]") {
  InferRequest r;
  const Status s = decode(R"({"inputs" :n"[{"name": "x"}]})", r);
  CHECK(s.code() == StatusCode::kInvalidInput);
  CHECK(s.message().rfind("malformed JSON", 0) == 0);
}

TEST_CASE("a shape larger than its data reserves no memory for it (found by fuzz_oip_rest: 3.5 GB)", "[oip][codec]") {
  for (const char* type : {"FP32", "FP64"}) {
    InferRequest r;
    const Status s = decode(std::string(R"({"inputs":[{"name":"x","shape":[882888883],"datatype":")") + type +
                                R"(","data":[1,2,3,4.5,null,6]}]})",
                            r);
    INFO(type << ": " << s.message());
    CHECK(s.code() == StatusCode::kInvalidInput);
    CHECK(s.message() == "inputs[0].data: 6 elements, but shape [882888883] holds 882888883");
    // At most what the JSON text could hold, not the shape's 882,888,883.
    CHECK(r.values.capacity() < 1000);
    CHECK(r.values64.capacity() < 1000);
  }
}

TEST_CASE("malformed JSON names the byte offset", "[oip][codec]") {
  InferRequest r;
  const std::string body = R"({"inputs": [{"name": "x", "shape": [1], oops}]})";
  Status s = decode(body, r);
  CHECK(s.code() == StatusCode::kInvalidInput);
  INFO(s.message());
  CHECK(s.message().rfind("malformed JSON at byte ", 0) == 0);
  const auto at = std::stoul(s.message().substr(std::strlen("malformed JSON at byte ")));
  CHECK(at >= body.find("oops") - 2);
  CHECK(at <= body.find("oops") + 4);
  s = decode("", r);
  CHECK(s.message().rfind("malformed JSON", 0) == 0);
  s = decode(R"({"id": "a")", r);
  CHECK(s.message().rfind("malformed JSON", 0) == 0);
}

TEST_CASE("binary tensors: FP32 in place, INT32 and FP64 converted, sizes checked", "[oip][codec][binary]") {
  const std::string header =
      R"({"id":"b","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","parameters":{"binary_data_size":16}}],)"
      R"("outputs":[{"name":"output-0","parameters":{"binary_data":true}}]})";
  const std::string body = header + bytes_of<float>({1.5f, -2, NAN, 4});
  InferRequest r;
  REQUIRE(decode(body, r, header.size()));
  CHECK(r.rows == 2);
  CHECK(r.values[0] == 1.5f);
  CHECK(std::isnan(r.values[2]));
  CHECK(r.outputs.size() == 1);
  CHECK(r.outputs[0].binary);

  const std::string h32 =
      R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"INT32","parameters":{"binary_data_size":8}}]})";
  REQUIRE(decode(h32 + bytes_of<std::int32_t>({-3, 70000}), r, h32.size()));
  CHECK(r.values == std::vector<float>{-3, 70000});
  const std::string h64 =
      R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"FP64","parameters":{"binary_data_size":16}}]})";
  REQUIRE(decode(h64 + bytes_of<double>({0.1, 2}), r, h64.size()));
  CHECK(r.values.empty());
  CHECK(r.values64 == std::vector<double>{0.1, 2});  // the doubles as sent, for the models

  Status s = decode(h32 + bytes_of<std::int32_t>({1}), r, h32.size());
  CHECK(s.message() == "inputs[0]: binary data at byte 0 of the binary section: 8 bytes wanted, 4 left");
  s = decode(h32 + bytes_of<std::int32_t>({1, 2, 3}), r, h32.size());
  CHECK(s.message() == "binary data: 4 bytes after byte " + std::to_string(h32.size() + 8) + " belong to no input");
  const std::string wrong =
      R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"INT32","parameters":{"binary_data_size":12}}]})";
  s = decode(wrong + bytes_of<std::int32_t>({1, 2, 3}), r, wrong.size());
  CHECK(s.message() == "inputs[0].parameters.binary_data_size: 12 bytes, but INT32 shape [1, 2] takes 8");
  s = decode(h32, r, h32.size() + 1);
  CHECK(s.message().find("is larger than the body") != std::string::npos);
  const std::string hb =
      R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"BOOL","parameters":{"binary_data_size":2}}]})";
  s = decode(hb + std::string("\x01\x02", 2), r, hb.size());
  CHECK(s.message() == "inputs[0].data: row 0, feature 1: BOOL value 2 is neither 0 nor 1");
}

TEST_CASE("a decoder is reused across requests and bodies without padding are copied", "[oip][codec]") {
  RequestDecoder dec;
  InferRequest r;
  std::string a = one_input(R"({"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]})");
  std::string b = one_input(R"({"name":"y","shape":[3],"datatype":"FP32","data":[7,8,9]})", R"("parameters":{"k":"v","n":3},)");
  REQUIRE(dec.decode(a, a.size(), std::nullopt, r));
  a.reserve(a.size() + kJsonPadding);
  REQUIRE(dec.decode(a, a.capacity(), std::nullopt, r));
  CHECK(r.values == std::vector<float>{1, 2});
  REQUIRE(dec.decode(b, b.size(), std::nullopt, r));
  CHECK(r.values == std::vector<float>{7, 8, 9});
  REQUIRE(r.parameters.size() == 2);
  CHECK(r.parameters[0].first == "k");
  CHECK(r.parameters[0].second.s == "v");
  CHECK(r.parameters[1].second.i == 3);
}

TEST_CASE("responses: JSON shortest floats, Keel's parameters, per-row errors, binary", "[oip][codec]") {
  InferRequest req;
  InferResult res;
  res.id = "q\"1";
  res.model_name = "m";
  res.model_version = "2";
  res.rows = 3;
  res.width = 1;
  res.scores = {0.1f, NAN, 1.0f / 3.0f};
  res.row_errors.push_back({1, invalid_input("row 1: feature 'f0' is NaN")});
  res.stage = "primary";
  std::string body;
  const std::size_t json_len = encode_infer_response(res, req, body);
  CHECK(json_len == body.size());
  auto j = nlohmann::json::parse(body);
  CHECK(j["id"] == "q\"1");
  CHECK(j["model_name"] == "m");
  CHECK(j["model_version"] == "2");
  CHECK(j["parameters"]["degraded"] == false);
  CHECK(j["parameters"]["stage"] == "primary");
  CHECK_FALSE(j["parameters"].contains("degraded_reason"));
  CHECK(j["parameters"]["rows_failed"] == 1);
  CHECK(j["parameters"]["row_errors"][0]["row"] == 1);
  CHECK(j["parameters"]["row_errors"][0]["code"] == "invalid_input");
  CHECK(j["outputs"][0]["shape"] == nlohmann::json::array({3, 1}));
  CHECK(j["outputs"][0]["datatype"] == "FP32");
  CHECK(j["outputs"][0]["data"][1].is_null());
  CHECK(body.find("0.1,") != std::string::npos);  // shortest: not 0.100000001
  CHECK(j["outputs"][0]["data"][2].get<float>() == 1.0f / 3.0f);

  res.degraded = true;
  res.degraded_reason = "primary: unavailable: circuit open";
  req.binary_output = true;
  const std::size_t hl = encode_infer_response(res, req, body);
  REQUIRE(hl < body.size());
  auto jb = nlohmann::json::parse(body.substr(0, hl));
  CHECK(jb["parameters"]["degraded_reason"] == "primary: unavailable: circuit open");
  CHECK(jb["outputs"][0]["parameters"]["binary_data_size"] == 12);
  CHECK_FALSE(jb["outputs"][0].contains("data"));
  REQUIRE(body.size() - hl == 12);
  float back[3];
  std::memcpy(back, body.data() + hl, 12);
  CHECK(back[0] == 0.1f);
  CHECK(std::isnan(back[1]));

  req.binary_output = false;
  req.outputs.push_back({std::string(kScoresOutput), false});
  const std::size_t all_json = encode_infer_response(res, req, body);
  CHECK(all_json == body.size());
}

TEST_CASE("explanations: reason_codes, reason_mode and the explanation outputs decode or fail by name",
          "[oip][codec][explain]") {
  const std::string input = R"("inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}])";
  InferRequest r;
  REQUIRE(decode(R"({"parameters":{"reason_codes":2,"reason_mode":"up"},)" + input +
                     R"(,"outputs":[{"name":"leaf"},{"name":"contributions"}]})",
                 r));
  CHECK(r.reasons.k == 2u);
  CHECK(r.reasons.mode == ReasonMode::kIncreasing);
  CHECK(r.reasons.contributions);
  CHECK(r.reasons.leaves);
  REQUIRE(r.outputs.size() == 2);
  CHECK(r.outputs[0].name == "leaf");
  REQUIRE(decode("{" + input + "}", r));  // a reused request forgets them
  CHECK(!r.reasons.k);
  CHECK(!r.reasons.contributions);
  CHECK(!r.reasons.leaves);
  for (const auto& [params, message] : std::vector<std::pair<std::string, std::string>>{
           {R"({"reason_codes":-1})", "parameters.reason_codes: expected an integer from 0 to the model's features, got -1"},
           {R"({"reason_codes":"2"})",
            "parameters.reason_codes: expected an integer from 0 to the model's features, got a string"},
           {R"({"reason_codes":4294967296})",
            "parameters.reason_codes: expected an integer from 0 to the model's features, got 4294967296"},
           {R"({"reason_codes":1.5})", "parameters.reason_codes: expected an integer from 0 to the model's features, "
                                       "got a non-integer or out-of-range number"},
           {R"({"reason_mode":"down"})", "parameters.reason_mode: expected \"magnitude\" or \"up\""},
       }) {
    INFO(params);
    Status s = decode(R"({"parameters":)" + params + "," + input + "}", r);
    CHECK(s.code() == StatusCode::kInvalidInput);
    CHECK(s.message() == message);
  }
  Status twice = decode("{" + input + R"(,"outputs":[{"name":"leaf"},{"name":"leaf"}]})", r);
  CHECK(twice.message() == "outputs[1].name: output 'leaf' asked twice");
}

TEST_CASE("explanations: tensors in the order asked, JSON or binary, and the per-row explanations",
          "[oip][codec][explain]") {
  InferRequest req;
  REQUIRE(decode(R"({"inputs":[{"name":"x","shape":[2,1],"datatype":"FP32","data":[1,2]}],"outputs":[)"
                 R"({"name":"contributions"},{"name":"leaf","parameters":{"binary_data":true}},{"name":"output-0"}]})",
                 req));
  InferResult res;
  res.rows = 2;
  res.width = 1;
  res.scores = {0.5f, 0.25f};
  res.explained = res.reasons_asked = true;
  res.explained_by = {"primary", ""};
  res.explain_unavailable = {"", "stage 'default' answers with default scores"};
  res.reasons = {Reason{"age", 0, 0, 41.0, 0.75f}};
  res.reason_begin = {0, 1, 1};
  res.contrib_width = 2;
  res.contributions = {0.75f, -0.25f, NAN, NAN};
  res.leaf_width = 3;
  res.leaves = {4, 7, 1, -1, -1, -1};
  std::string body;
  const std::size_t hl = encode_infer_response(res, req, body);
  const auto j = nlohmann::json::parse(body.substr(0, hl));
  REQUIRE(j["outputs"].size() == 3);
  CHECK(j["outputs"][0]["name"] == "contributions");
  CHECK(j["outputs"][0]["datatype"] == "FP32");
  CHECK(j["outputs"][0]["shape"] == nlohmann::json::array({2, 2}));
  CHECK(j["outputs"][0]["data"] == nlohmann::json::parse("[0.75,-0.25,null,null]"));
  CHECK(j["outputs"][1]["name"] == "leaf");
  CHECK(j["outputs"][1]["datatype"] == "INT32");
  CHECK(j["outputs"][1]["parameters"]["binary_data_size"] == 24);
  CHECK(j["outputs"][2]["data"] == nlohmann::json::parse("[0.5,0.25]"));
  REQUIRE(body.size() == hl + 24);
  std::int32_t leaves[6];
  std::memcpy(leaves, body.data() + hl, sizeof leaves);
  CHECK(std::vector<std::int32_t>(leaves, leaves + 6) == res.leaves);
  CHECK(j["parameters"]["explanations"] ==
        nlohmann::json::parse(R"([{"explained_by":"primary","reasons":[{"feature":"age","index":0,"output":0,)"
                              R"("value":41,"contribution":0.75}]},{"explained_by":"","reasons":[],)"
                              R"("reasons_unavailable":"stage 'default' answers with default scores"}])"));
  res.explained_by = {"", "primary"};  // a failed row (no stage, no reason) is null
  res.explain_unavailable = {"", ""};
  encode_infer_response(res, req, body);
  const auto k = nlohmann::json::parse(body.substr(0, body.size() - 24));
  CHECK(k["parameters"]["explanations"][0].is_null());
  CHECK(k["parameters"]["explanations"][1]["explained_by"] == "primary");
}

TEST_CASE("error bodies escape the message", "[oip][codec]") {
  auto j = nlohmann::json::parse(error_json("bad \"x\"\n\x01"));
  CHECK(j["error"] == "bad \"x\"\n\x01");
}
