#pragma once
// The KServe v2 / Open Inference Protocol infer exchange as plain values:
// what a decoded REST (or, later, gRPC) request holds and what the answer
// carries back. No sockets, no JSON here: codec.hpp turns bytes into these
// and back, service code fills them. Value types, not thread-safe to mutate.

#include <keel/core/reason.hpp>
#include <keel/core/status.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel::net::oip {

// Tensor element types of the protocol. Keel scores FP32 and accepts the
// others as inputs when they convert exactly (see codec.hpp).
enum class DataType : std::uint8_t { kBool, kInt8, kInt16, kInt32, kInt64, kUint8, kUint16, kUint32, kUint64,
                                     kFp16, kFp32, kFp64, kBytes };

[[nodiscard]] std::string_view to_string(DataType t) noexcept;
[[nodiscard]] std::optional<DataType> parse_datatype(std::string_view s) noexcept;
// Bytes per element in the binary-tensor extension (0 for BYTES).
[[nodiscard]] std::size_t element_size(DataType t) noexcept;

// One `outputs` entry of a request.
struct RequestedOutput {
  std::string name;
  bool binary = false;  // parameters.binary_data
};

// A request parameter's value (bool, integer, float or string), kept to
// pass on or echo; Keel itself reads none today.
struct Parameter {
  enum class Kind : std::uint8_t { kBool, kInt, kDouble, kString } kind = Kind::kString;
  bool b = false;
  std::int64_t i = 0;
  double d = 0.0;
  std::string s;
};
using Parameters = std::vector<std::pair<std::string, Parameter>>;

// A decoded infer request: one input tensor of `rows` rows of `cols`
// features, row-major FP32 (integer and BOOL datatypes already converted
// exactly), or, for an FP64 tensor, the doubles as sent in `values64`
// (`values` then empty): the engine gives them to the models as doubles.
struct InferRequest {
  std::string id;
  std::string input_name;
  DataType datatype = DataType::kFp32;
  std::size_t rows = 0;
  std::size_t cols = 0;
  bool one_dimensional = false;  // shape was [features]: the answer is [width]
  std::vector<float> values;     // rows * cols (not FP64)
  std::vector<double> values64;  // rows * cols (FP64; NaN = missing)
  std::vector<RequestedOutput> outputs;  // empty: every output
  bool binary_output = false;    // parameters.binary_data_output: every output binary
  Parameters parameters;
  // Explanations asked (codec.hpp): parameters reason_codes / reason_mode,
  // and outputs "contributions" / "leaf".
  ReasonOptions reasons;
};

// Why one row of a batch got no score; the others are still answered.
struct RowError {
  std::size_t row = 0;
  Status status;
};

// What the scoring path answers, to be encoded. Rows that failed have NaN
// scores and an entry in `row_errors`.
struct InferResult {
  std::string id;
  std::string model_name;
  std::string model_version;
  std::size_t rows = 0;
  std::size_t width = 0;
  bool one_dimensional = false;
  std::vector<float> scores;  // rows * width
  std::vector<RowError> row_errors;
  // Keel's answer fields (in the response's `parameters`).
  bool degraded = false;
  std::string stage;
  std::string degraded_reason;
  bool cache_hit = false;
  bool anomaly = false;
  // Explanations, when asked (or configured: the engine's "explain"); per
  // row: the stage whose model explained it ("" when none), why an answered
  // row has none, its codes at reasons[reason_begin[r], reason_begin[r+1]).
  bool explained = false;
  bool reasons_asked = false;  // reason codes (not only tensors)
  std::vector<std::string> explained_by;
  std::vector<std::string> explain_unavailable;
  std::vector<Reason> reasons;
  std::vector<std::uint32_t> reason_begin;
  std::size_t contrib_width = 0;  // per row, when the contributions output was asked
  std::vector<float> contributions;
  std::size_t leaf_width = 0;     // per row, when the leaf output was asked
  std::vector<std::int32_t> leaves;
};

// The one output a Keel model produces: its scores.
inline constexpr std::string_view kScoresOutput = "output-0";
// Explanation outputs, only when named in `outputs` (codec.hpp).
inline constexpr std::string_view kContributionsOutput = "contributions";
inline constexpr std::string_view kLeafOutput = "leaf";

}  // namespace keel::net::oip
