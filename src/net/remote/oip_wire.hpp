#pragma once
// The client side of the OIP REST exchange (the server side is
// src/net/oip/codec.*, whose JSON writers this reuses): an infer request
// from float rows, the scores out of an infer response, a model's shape out
// of its metadata, and the message out of an error body. Every decode error
// is kUnavailable naming what was wrong, since it is the peer's fault, not
// the caller's. Thread-safe (a parser per thread).

#include <keel/core/result.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace keel::net::remote {

// {"id":..,"inputs":[{"name":"input-0","datatype":"FP32","shape":[n,cols],"data":[..]}]}
// ("id" left out when empty);
// NaN (missing) is sent as null, every value shortest round-trip; float64
// rows go as FP64, so the remote model gets the same doubles. JSON has no
// infinity: a row holding one is kInvalidInput naming it (sending null
// would score it as missing, another answer).
[[nodiscard]] Status encode_infer_request(std::string& body, std::string_view id, std::span<const float> rows,
                                          std::size_t n_rows, std::size_t cols);
[[nodiscard]] Status encode_infer_request(std::string& body, std::string_view id, std::span<const double> rows,
                                          std::size_t n_rows, std::size_t cols);

// Writes n_rows * width scores from outputs[0] into out. A response whose
// parameters carry row_errors gives kInvalidInput naming the first failed
// row and its error (the row's own fault on the remote engine).
// `degraded` is set from parameters.degraded (the remote answered from its
// own fallback), `reason` from degraded_reason.
[[nodiscard]] Status decode_infer_response(std::string_view body, std::size_t n_rows, std::size_t width,
                                           std::span<float> out, bool& degraded, std::string& reason);

struct ModelShape {
  std::string name;
  std::string platform;
  std::size_t features = 0;
  std::size_t outputs = 0;
};
// inputs[0].shape[-1] and outputs[0].shape[-1] of GET /v2/models/<name>.
[[nodiscard]] Result<ModelShape> decode_metadata(std::string_view body);

// "error" of {"error": "..."}, or the body's first 200 bytes.
[[nodiscard]] std::string error_message(std::string_view body);

}  // namespace keel::net::remote
