// libFuzzer: the OIP REST infer body (keel::net::oip::RequestDecoder), JSON
// and binary. The first byte picks the framing: even, the rest is a JSON
// body; odd, the next two bytes (little-endian) are the
// Inference-Header-Content-Length, the rest a JSON header and binary
// tensors. A decode either fails with a message or yields a consistent
// request (rows * cols values, known outputs) that encodes to a response;
// nothing crashes, leaks or reads out of bounds (ASan, UBSan).
#include <keel/net/oip/codec.hpp>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static keel::net::oip::RequestDecoder decoder;  // reused, as each I/O thread does
  std::optional<std::size_t> json_length;
  std::size_t skip = 1;
  if (data[0] & 1) {
    if (size < 3) return 0;
    json_length = static_cast<std::size_t>(data[1]) | (static_cast<std::size_t>(data[2]) << 8);
    skip = 3;
  }
  // No spare capacity: the decoder must copy rather than read past the end.
  const std::string body(reinterpret_cast<const char*>(data + skip), size - skip);
  keel::net::oip::InferRequest req;
  const keel::Status s = decoder.decode(body, body.size(), json_length, req);
  if (!s) {
    if (s.message().empty()) std::abort();
    return 0;
  }
  // FP64 stays double (values64), every other datatype is in values.
  const std::size_t got = req.datatype == keel::net::oip::DataType::kFp64 ? req.values64.size() : req.values.size();
  const std::size_t other = req.datatype == keel::net::oip::DataType::kFp64 ? req.values.size() : req.values64.size();
  if (got != req.rows * req.cols || other != 0 || req.rows == 0 || req.cols == 0) std::abort();
  for (const auto& o : req.outputs)
    if (o.name != keel::net::oip::kScoresOutput && o.name != keel::net::oip::kContributionsOutput &&
        o.name != keel::net::oip::kLeafOutput)
      std::abort();
  keel::net::oip::InferResult result;
  result.rows = req.rows;
  result.width = 1;
  result.one_dimensional = req.one_dimensional;
  result.scores.assign(req.rows, 0.5f);
  result.id = req.id;
  std::string out;
  const std::size_t jl = keel::net::oip::encode_infer_response(result, req, out);
  if (jl > out.size()) std::abort();
  return 0;
}
