#pragma once
// The OIP gRPC codec: ModelInferRequest → oip::InferRequest and
// oip::InferResult → ModelInferResponse, under the REST codec's rules
// (codec.hpp): one input tensor, shape [rows, features] or [features], the
// same datatypes converted exactly, errors kInvalidInput naming the field.
//
// Input data comes either from `contents` (the typed field that matches the
// datatype: bool_contents, int_contents for INT8/16/32, int64_contents,
// uint_contents for UINT8/16/32, uint64_contents, fp32_contents,
// fp64_contents) or from raw_input_contents[0] (little-endian, row-major),
// never both. The answer carries its scores in raw_output_contents when the
// request sent raw inputs, or asked for it (request parameter
// binary_data_output, or an output's binary_data), and in
// outputs[0].contents.fp32_contents otherwise. Keel's answer fields go in
// the response's parameters as in REST; `row_errors` is a string parameter
// holding the same JSON array REST sends. Explanations as in REST (codec.hpp):
// request parameters reason_codes (int64_param) and reason_mode
// (string_param), outputs "contributions" (FP32, fp32_contents) and "leaf"
// (INT32, int_contents), each tensor asked one raw_output_contents entry in
// the order of `outputs` when raw; `explanations` is a string parameter
// holding REST's JSON array. Thread-safe (pure functions).

#include <keel/core/status.hpp>
#include <keel/net/oip/infer.hpp>

#include "open_inference_grpc.pb.h"

namespace keel::net::grpc_oip {

[[nodiscard]] Status decode(const inference::ModelInferRequest& in, oip::InferRequest& out);
void encode(const oip::InferResult& result, const oip::InferRequest& request, bool raw,
            inference::ModelInferResponse& out);
// Whether the answer goes raw (see above).
[[nodiscard]] bool wants_raw(const inference::ModelInferRequest& in, const oip::InferRequest& request);

}  // namespace keel::net::grpc_oip
