// libFuzzer: the OIP gRPC ModelInferRequest, from wire bytes (protobuf
// parse) through Keel's gRPC codec (grpc_oip::decode) and back
// (grpc_oip::encode). A decode either fails with a message or yields a
// consistent request that encodes to a response carrying the right number
// of scores; nothing crashes or reads out of bounds (ASan, UBSan).
#include "net/grpc/grpc_codec.hpp"

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  inference::ModelInferRequest in;
  if (!in.ParseFromArray(data, static_cast<int>(size))) return 0;
  keel::net::oip::InferRequest req;
  const keel::Status s = keel::net::grpc_oip::decode(in, req);
  if (!s) {
    if (s.message().empty()) std::abort();
    return 0;
  }
  // FP64 stays double (values64), every other datatype is in values.
  const std::size_t got = req.datatype == keel::net::oip::DataType::kFp64 ? req.values64.size() : req.values.size();
  const std::size_t other = req.datatype == keel::net::oip::DataType::kFp64 ? req.values.size() : req.values64.size();
  if (got != req.rows * req.cols || other != 0 || req.rows == 0 || req.cols == 0) std::abort();
  keel::net::oip::InferResult result;
  result.rows = req.rows;
  result.width = 1;
  result.one_dimensional = req.one_dimensional;
  result.scores.assign(req.rows, 0.5f);
  inference::ModelInferResponse out;
  const bool raw = keel::net::grpc_oip::wants_raw(in, req);
  keel::net::grpc_oip::encode(result, req, raw, out);
  // The scores tensor, wherever the request's `outputs` put it (or absent
  // when they named only explanations); raw answers carry one entry per
  // output, in order.
  if (raw && out.raw_output_contents_size() != out.outputs_size()) std::abort();
  for (int i = 0; i < out.outputs_size(); ++i) {
    if (out.outputs(i).name() != keel::net::oip::kScoresOutput) continue;
    if (raw && out.raw_output_contents(i).size() != req.rows * 4) std::abort();
    if (!raw && out.outputs(i).contents().fp32_contents_size() != static_cast<int>(req.rows)) std::abort();
  }
  return 0;
}
