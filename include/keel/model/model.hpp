#pragma once
// Model: the small interface every scorer implements, local or remote.
// Models are immutable after load; predict() on a const Model may run
// concurrently from any number of threads (thread-safe).

#include <keel/core/content_id.hpp>
#include <keel/core/deadline.hpp>
#include <keel/core/health.hpp>
#include <keel/core/result.hpp>
#include <keel/core/status.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
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

class Explainer;  // explain.hpp

struct FeatureInfo {
  std::string name;  // empty when the file has no names
  FeatureType type = FeatureType::kNumeric;
  // A categorical feature's vocabulary as the training library stored it
  // (XGBoost >= 3.1 `cats`, LightGBM `pandas_categorical`): the category
  // code of categories[i] is i. Empty when the file carries none.
  std::vector<std::string> categories = {};
};

// What the training library does with a category string absent from the
// vocabulary when it recodes a DataFrame before predicting.
//  kError:   XGBoost >= 3.1 raises "Found a category not in the training set"
//            (src/encoder/ordinal.h, Recode).
//  kMissing: LightGBM's Python package sets the categories to the stored
//            pandas_categorical lists, so an unseen value becomes code -1,
//            which it replaces by NaN (basic.py, _data_from_pandas).
enum class UnseenCategory : std::uint8_t { kError, kMissing };

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
  std::size_t num_targets = 0;         // 0 unless multi-target (XGBoost num_target > 1)
  std::size_t num_iterations = 0;      // boosting rounds scored (after LoadOptions::num_iterations)
  std::size_t iterations_in_file = 0;  // boosting rounds the file holds
  // The round count early stopping chose, as the file records it (XGBoost
  // learner.attributes.best_iteration is 0-based: best_iteration + 1 rounds);
  // -1 when the file records none. Used only when asked (LoadOptions).
  std::int64_t best_iteration = -1;
  UnseenCategory unseen_category = UnseenCategory::kError;
  std::string id;                      // a name for metrics and responses (file stem by default)
  std::uint64_t version = 0;           // distinct for every load in this process (ordering)
  ModelContentId content_id;           // the same for the same bytes and options, in any process
  // What answers Model::contributions / leaf_indices for a tree ensemble,
  // built from its spec at load (explain.hpp); null for other models. It
  // lives here so every Model that reports this info (fast, reference,
  // wrappers) explains alike.
  std::shared_ptr<const Explainer> explainer;

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

  // float64 rows and float64 outputs: a model whose library computes in
  // double (LightGBM) returns its double results unrounded (a linear leaf on
  // 1e300 gives ~1e300, not inf). The default computes in float and widens.
  [[nodiscard]] virtual Status predict(std::span<const double> rows, std::size_t n_rows, std::span<double> out,
                                       const PredictOptions& opts = {}) const noexcept;

  // One row; out must hold info().width(opts.output) floats.
  [[nodiscard]] Status predict_row(std::span<const float> row, std::span<float> out,
                                   const PredictOptions& opts = {}) const noexcept {
    return predict(row, 1, out, opts);
  }

  // Explanations (explain.hpp). contributions: per row, num_margin_outputs
  // blocks of num_features + 1 values, each feature's exact SHAP value for
  // that margin and then the bias; a block sums to the margin.
  // leaf_indices: per row, the leaf each tree reaches, numbered as the
  // training library numbers it. Thread-safe; no allocation once a thread
  // is warm. The defaults ask info().explainer, else return kModelError.
  [[nodiscard]] virtual Status contributions(std::span<const float> rows, std::size_t n_rows,
                                             std::span<float> out) const noexcept;
  [[nodiscard]] virtual Status contributions(std::span<const double> rows, std::size_t n_rows,
                                             std::span<float> out) const noexcept;
  [[nodiscard]] virtual Status leaf_indices(std::span<const float> rows, std::size_t n_rows,
                                            std::span<std::int32_t> out) const noexcept;
  [[nodiscard]] virtual Status leaf_indices(std::span<const double> rows, std::size_t n_rows,
                                            std::span<std::int32_t> out) const noexcept;

  // The state of a model whose parts come and go (a RemoteModel's
  // endpoints), shown by ScoringEngine::health() beside the model; none for
  // a model loaded from a file. Thread-safe.
  [[nodiscard]] virtual std::optional<ComponentHealth> component_health() const { return std::nullopt; }

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
