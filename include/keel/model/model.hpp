#pragma once
// Model: the small interface every scorer implements, local or remote.
// Models are immutable after load; predict() on a const Model may run
// concurrently from any number of threads (thread-safe).

#include <keel/core/content_id.hpp>
#include <keel/core/deadline.hpp>
#include <keel/core/result.hpp>
#include <keel/core/status.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace keel {

enum class ModelFormat : std::uint8_t {
  kXGBoostJson,
  kXGBoostUbjson,
  kLightGBMText,
  kKeelLinearJson,
  kCustom,  // a host's own Model, or a wrapper
};
std::string_view to_string(ModelFormat f) noexcept;

enum class FeatureType : std::uint8_t { kNumeric, kInteger, kIndicator, kCategorical };
std::string_view to_string(FeatureType t) noexcept;

struct FeatureInfo {
  std::string name;  // empty when the file has no names
  FeatureType type = FeatureType::kNumeric;
};

// What prediction returns: the raw margin (sum of trees + base, or the
// linear predictor) or the objective's transformed output.
enum class OutputKind : std::uint8_t { kTransformed, kMargin };

struct ModelInfo {
  ModelFormat format = ModelFormat::kCustom;
  std::string objective;           // as the file names it: "binary:logistic", "multiclass", ...
  std::string booster;             // "gbtree", "dart", "gblinear", "gbdt", "rf", "linear", ...
  std::size_t num_features = 0;    // row length predict() expects
  std::vector<FeatureInfo> features;  // num_features entries
  bool has_feature_names = false;
  std::size_t num_margin_outputs = 1;  // columns of OutputKind::kMargin
  std::size_t num_outputs = 1;         // columns of OutputKind::kTransformed
  std::size_t num_classes = 0;         // 0 unless multiclass
  std::size_t num_trees = 0;           // 0 for linear models
  std::size_t max_depth = 0;           // deepest leaf, root = depth 0
  std::vector<double> base_score;      // in output space, as stored; one per margin output
  std::string id;                      // a name for metrics and responses (file stem by default)
  std::uint64_t version = 0;           // distinct for every load in this process (ordering)
  ModelContentId content_id;           // the same for the same bytes and options, in any process

  [[nodiscard]] std::size_t width(OutputKind k) const noexcept {
    return k == OutputKind::kMargin ? num_margin_outputs : num_outputs;
  }
};

struct PredictOptions {
  OutputKind output = OutputKind::kTransformed;
  // Threads a batch may use (1 = the caller's only). Results do not depend
  // on it. Single rows always run on the caller's thread.
  unsigned threads = 1;
  // The caller's deadline for this call: a model that waits (one over the
  // network) stops by then and returns kDeadlineExceeded. Local models
  // finish in microseconds and ignore it.
  Deadline deadline = Deadline::never();
};

class Model {
 public:
  virtual ~Model() = default;

  [[nodiscard]] virtual const ModelInfo& info() const noexcept = 0;

  // Scores n_rows dense rows of info().num_features floats each, row-major;
  // NaN means missing. Writes n_rows * info().width(opts.output) floats to
  // out. Errors: kInvalidInput when the spans' sizes disagree with n_rows.
  [[nodiscard]] virtual Status predict(std::span<const float> rows, std::size_t n_rows, std::span<float> out,
                                       const PredictOptions& opts = {}) const noexcept = 0;

  // The same for float64 rows, for callers whose data is double: a model
  // whose training library compares in double (LightGBM) answers exactly as
  // that library does. The default narrows to float and calls predict().
  [[nodiscard]] virtual Status predict(std::span<const double> rows, std::size_t n_rows, std::span<float> out,
                                       const PredictOptions& opts = {}) const noexcept;

  // One row; out must hold info().width(opts.output) floats.
  [[nodiscard]] Status predict_row(std::span<const float> row, std::span<float> out,
                                   const PredictOptions& opts = {}) const noexcept {
    return predict(row, 1, out, opts);
  }

 protected:
  // Checks span sizes against n_rows and the model's widths, naming what
  // disagrees. Implementations call it first.
  [[nodiscard]] Status check_shapes(std::size_t rows_size, std::size_t n_rows, std::size_t out_size,
                                    const PredictOptions& opts) const noexcept;
};

using ModelPtr = std::shared_ptr<const Model>;

// A process-wide, strictly increasing number for ModelInfo::version: every
// load (and reload) of a model gets a new one, so caches keyed on it never
// serve a score computed by another model.
std::uint64_t next_model_version() noexcept;

}  // namespace keel
