#pragma once
// The Open Inference Protocol REST codec: infer request bytes → InferRequest
// and InferResult → response bytes, JSON or with Triton's binary-tensor
// extension. It knows no sockets; tests drive it with byte buffers alone.
//
// Request rules (every error is kInvalidInput naming the field, row or byte
// offset):
//   - one input tensor, shape [rows, features] or [features];
//   - `data` flat or nested, row-major; its element count must match shape;
//   - FP32 as sent; FP64 kept as doubles (InferRequest::values64): the
//     models get them as doubles, so a LightGBM model answers as LightGBM
//     does on double data (narrowing first can take another branch); INT8..INT64, UINT8..UINT64 and BOOL converted exactly, so an
//     integer that no float represents exactly is an error; a JSON null is
//     a missing value (NaN), which the engine's validator may refuse;
//   - with `Inference-Header-Content-Length: N` the first N bytes are the
//     JSON header and the rest holds each input carrying
//     `parameters.binary_data_size` in order, little-endian;
//   - `outputs` selects outputs by name: "output-0" (the scores; the only
//     one sent when `outputs` is absent), "contributions" and "leaf" (the
//     explanation tensors, below); `parameters.binary_data` on an output, or
//     `binary_data_output` on the request, asks for it in binary;
//   - request parameters `reason_codes` (an integer k >= 0, at most the
//     model's features) and `reason_mode` ("magnitude": largest |value|
//     first; "up": only contributions > 0) ask for each row's top k reason
//     codes per margin output.
//
// Explanations come from the model of the stage that answered each row (a
// degraded row is explained by the fallback's model), on the row as that
// model scored it:
//   - "contributions": FP32 [rows, outputs * (features + 1)], per margin
//     output each feature's exact SHAP value, then the bias (a block sums
//     to the margin);
//   - "leaf": INT32 [rows, trees], the leaf each tree reaches (the width is
//     the most trees of any stage; -1 past the answering model's trees);
//   - a row with no explanation (it failed, its stage answers default
//     scores, or its model cannot explain) is NaN (JSON null) / -1 in the
//     tensors and says why in `explanations`: never another model's values.
// With any explanation asked, the response's `parameters.explanations` is
// one entry per row: null for a failed row, else {"explained_by": stage
// ("" when none), "reasons": [{"feature", "index", "output", "value",
// "contribution"}, ...] (when reason codes were asked; best first per
// output), "reasons_unavailable": "why" (only when the row has none)}.
// gRPC carries the same JSON as a string parameter (grpc_codec.hpp).
//
// Response: `id`, `model_name`, `model_version`, one FP32 output of shape
// [rows, width] ([width] for a one-dimensional request), and in
// `parameters` Keel's answer fields: `degraded`, `stage`,
// `degraded_reason` (when degraded), `cache_hit`, `anomaly`, and for a batch
// where some rows failed `rows_failed` and `row_errors`
// ([{"row": i, "code": "invalid_input", "error": "..."}]) with those rows'
// values null in JSON (NaN in binary). Floats are written shortest
// round-trip (std::to_chars).
//
// RequestDecoder reuses its parser and buffers: not thread-safe, keep one
// per thread. The free functions are thread-safe.

#include <keel/core/result.hpp>
#include <keel/net/oip/infer.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace keel::net::oip {

// Bytes the JSON parser may read past a document's end. A body whose
// buffer has this much readable space after it is parsed in place.
inline constexpr std::size_t kJsonPadding = 64;

class RequestDecoder {
 public:
  RequestDecoder();
  ~RequestDecoder();
  RequestDecoder(const RequestDecoder&) = delete;
  RequestDecoder& operator=(const RequestDecoder&) = delete;

  // `body` is the whole request body; `capacity` is how many bytes from
  // body.data() may be read (>= body.size(); in place when it leaves
  // kJsonPadding spare, copied otherwise). `json_length` is the
  // Inference-Header-Content-Length header, when present. `out` is
  // overwritten (its buffers reused).
  [[nodiscard]] Status decode(std::string_view body, std::size_t capacity, std::optional<std::size_t> json_length,
                              InferRequest& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Encodes `result` as `request` asked (outputs selection, binary). Returns
// the length of the JSON part: body.size() when nothing is binary, else the
// value of the Inference-Header-Content-Length response header.
std::size_t encode_infer_response(const InferResult& result, const InferRequest& request, std::string& body);

// Appends [{"row": i, "code": "...", "error": "..."}, ...].
void append_row_errors(std::string& body, const std::vector<RowError>& errors);

// Shared by the REST and gRPC decoders: reads `reason_codes` and
// `reason_mode` from request.parameters into request.reasons, and adds one
// requested output after checking its name (`field` names it in errors).
[[nodiscard]] Status read_explain_parameters(InferRequest& request);
[[nodiscard]] Status add_requested_output(RequestedOutput output, const std::string& field, InferRequest& request);
// Appends the `explanations` array (above) of a result that has them.
void append_explanations(std::string& body, const InferResult& result);

// {"error": "<message>"}
[[nodiscard]] std::string error_json(std::string_view message);

// Appends `s` as a JSON string literal (quoted, escaped).
void append_json_string(std::string& out, std::string_view s);
// Appends a float, shortest round-trip; NaN and infinities as null.
void append_json_float(std::string& out, float v);

}  // namespace keel::net::oip
