// keel score: scores a CSV file with a model, writing one line of scores per
// input row. Columns are matched to the model's features by name when the
// model has names, by position otherwise. Rows go to the model in batches.
// --contribs, --leaf and --reason-codes append the row's explanation after
// its scores (explain.hpp), from the same float64 rows.

#include "cli/csv.hpp"
#include "cli/registry.hpp"

#include <keel/model/categories.hpp>
#include <keel/model/explain.hpp>
#include <keel/model/loaders.hpp>

#include <fmt/format.h>

#include <charconv>
#include <cstdint>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace keel::cli {
namespace {

struct ScoreOptions {
  std::string model;
  std::string input;
  std::string output = "-";
  bool margin = false;
  unsigned threads = 1;
  std::string on_error = "fail";
  std::string num_iterations;  // "" = all, N = the first N rounds, "best" = the file's best iteration
  std::size_t batch = 4096;
  std::size_t max_reported = 100;  // skipped rows named on stderr; the rest are counted
  bool contribs = false;
  bool leaf = false;
  std::size_t reason_codes = 0;  // top K per output; 0 = none
  std::string reason_mode = "magnitude";
};

// column_of[j] = the input column holding model feature j.
Result<std::vector<std::size_t>> match_columns(const ModelInfo& info, const CsvReader& csv) {
  const std::vector<std::string>& cols = csv.columns();
  std::vector<std::size_t> column_of(info.num_features);
  if (!info.has_feature_names) {
    if (cols.size() > info.num_features) {
      return invalid_input(fmt::format("input column '{}' (position {}) is extra: the model has {} features",
                                       cols[info.num_features], info.num_features + 1, info.num_features));
    }
    if (cols.size() < info.num_features) {
      return invalid_input(fmt::format("input has {} columns; the model has {} features (feature {} is missing)",
                                       cols.size(), info.num_features, cols.size()));
    }
    for (std::size_t j = 0; j < column_of.size(); ++j) column_of[j] = j;
    return column_of;
  }
  for (std::size_t c = 0; c < cols.size(); ++c) {
    if (csv.find_column(cols[c]) != c) return invalid_input(fmt::format("input column '{}' appears twice", cols[c]));
  }
  for (std::size_t j = 0; j < info.num_features; ++j) {
    const auto c = csv.find_column(info.features[j].name);
    if (!c) return invalid_input(fmt::format("input has no column '{}' (model feature {})", info.features[j].name, j));
    column_of[j] = *c;
  }
  if (cols.size() > info.num_features) {
    for (const std::string& name : cols) {
      bool known = false;
      for (const FeatureInfo& f : info.features) known = known || f.name == name;
      if (!known) return invalid_input(fmt::format("input column '{}' is not a model feature", name));
    }
  }
  return column_of;
}

// A CSV field: quoted when it holds a separator, a quote or a line break.
void put_field(fmt::memory_buffer& buf, std::string_view v) {
  auto it = std::back_inserter(buf);
  if (v.find_first_of(",\"\r\n") == std::string_view::npos) {
    fmt::format_to(it, "{}", v);
    return;
  }
  *it++ = '"';
  for (const char c : v) {
    if (c == '"') *it++ = '"';
    *it++ = c;
  }
  *it++ = '"';
}

// The explanation columns after the scores, and their per-batch buffers.
// Contributions are named as XGBoost's pred_contribs names them (feature
// names, then bias; c{k}_ before each for several margin outputs), leaves
// tree_{i}, reason codes reason_{i}, reason_{i}_value, reason_{i}_contribution.
// Not thread-safe: one per command.
class Explanations {
 public:
  Explanations(const ScoreOptions& o, const ModelInfo& info)
      : o_(o), names_(reason_code_names(info)), outputs_(info.num_margin_outputs), trees_(info.num_trees),
        mode_(o.reason_mode == "up" ? ReasonMode::kIncreasing : ReasonMode::kMagnitude),
        codes_(o.reason_codes) {}

  [[nodiscard]] bool any() const { return o_.contribs || o_.leaf || o_.reason_codes > 0; }
  [[nodiscard]] bool need_contribs() const { return o_.contribs || o_.reason_codes > 0; }

  // Asks the model for nothing, to learn before reading any row whether it
  // can explain at all (a tree without covers, a linear model's leaves).
  [[nodiscard]] Status probe(const Model& m) const {
    if (need_contribs()) {
      if (Status s = m.contributions(std::span<const double>(), 0, std::span<float>()); !s) return s;
    }
    if (o_.leaf) {
      if (Status s = m.leaf_indices(std::span<const double>(), 0, std::span<std::int32_t>()); !s) return s;
    }
    return Status::ok();
  }

  void header(fmt::memory_buffer& buf) const {
    auto it = std::back_inserter(buf);
    auto prefix = [&](std::size_t k) {
      if (outputs_ > 1) fmt::format_to(it, "c{}_", k);
    };
    if (o_.contribs) {
      for (std::size_t k = 0; k < outputs_; ++k) {
        for (const std::string& n : names_) {
          *it++ = ',';
          prefix(k);
          put_field(buf, n);
        }
        *it++ = ',';
        prefix(k);
        fmt::format_to(it, "bias");
      }
    }
    if (o_.leaf) {
      for (std::size_t t = 0; t < trees_; ++t) fmt::format_to(it, ",tree_{}", t);
    }
    for (std::size_t k = 0; k < outputs_ && o_.reason_codes > 0; ++k) {
      for (std::size_t i = 1; i <= o_.reason_codes; ++i) {
        for (const char* what : {"", "_value", "_contribution"}) {
          *it++ = ',';
          prefix(k);
          fmt::format_to(it, "reason_{}{}", i, what);
        }
      }
    }
  }

  // Explains the n rows of a batch; then row(r) appends row r's columns.
  [[nodiscard]] Status compute(const Model& m, std::span<const double> rows, std::size_t n) {
    rows_ = rows;
    if (need_contribs()) {
      contribs_.resize(n * outputs_ * (names_.size() + 1));
      if (Status s = m.contributions(rows, n, contribs_); !s) return s;
    }
    if (o_.leaf) {
      leaves_.resize(n * trees_);
      if (Status s = m.leaf_indices(rows, n, leaves_); !s) return s;
    }
    return Status::ok();
  }

  [[nodiscard]] Status row(fmt::memory_buffer& buf, std::size_t r) {
    auto it = std::back_inserter(buf);
    const std::size_t nf = names_.size(), block = nf + 1;
    const std::span<const float> all(contribs_.data() + r * outputs_ * block, need_contribs() ? outputs_ * block : 0);
    if (o_.contribs) {
      for (const float c : all) fmt::format_to(it, ",{:.9g}", c);
    }
    if (o_.leaf) {
      for (std::size_t t = 0; t < trees_; ++t) fmt::format_to(it, ",{}", leaves_[r * trees_ + t]);
    }
    if (o_.reason_codes == 0) return Status::ok();
    const std::span<const double> values = rows_.subspan(r * nf, nf);
    for (std::size_t k = 0; k < outputs_; ++k) {
      Result<std::size_t> got = top_reason_codes(all.subspan(k * block, block), names_, values, mode_, codes_);
      if (!got) return got.status();
      for (std::size_t i = 0; i < o_.reason_codes; ++i) {
        if (i >= *got) {
          fmt::format_to(it, ",,,");  // fewer features qualify than asked for
          continue;
        }
        const ReasonCode& c = codes_[i];
        *it++ = ',';
        put_field(buf, c.name);
        if (std::isnan(c.value)) {
          fmt::format_to(it, ",,{:.9g}", c.contribution);
        } else {
          fmt::format_to(it, ",{},{:.9g}", c.value, c.contribution);
        }
      }
    }
    return Status::ok();
  }

 private:
  const ScoreOptions& o_;
  std::vector<std::string> names_;
  std::size_t outputs_, trees_;
  ReasonMode mode_;
  std::span<const double> rows_;
  std::vector<float> contribs_;
  std::vector<std::int32_t> leaves_;
  std::vector<ReasonCode> codes_;
};

class Output {
 public:
  explicit Output(const std::string& path) : path_(path) {
    file_ = path == "-" ? stdout : std::fopen(path.c_str(), "wb");
  }
  ~Output() {
    if (file_ != nullptr && file_ != stdout) std::fclose(file_);
  }
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  bool ok() const { return file_ != nullptr; }
  fmt::memory_buffer& buf() { return buf_; }
  bool flush() {
    const bool good = std::fwrite(buf_.data(), 1, buf_.size(), file_) == buf_.size();
    buf_.clear();
    return good && std::fflush(file_) == 0;
  }
  // Closes and deletes a partial output file (not standard output).
  void discard() {
    if (file_ == nullptr || file_ == stdout) return;
    std::fclose(file_);
    file_ = nullptr;
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  fmt::memory_buffer buf_;
};

int score(const ScoreOptions& o) {
  auto fail = [](const Status& s) {
    fmt::print(stderr, "keel score: error: {}\n", s.message());
    return 1;
  };
  LoadOptions lopts;
  if (o.num_iterations == "best") {
    lopts.use_best_iteration = true;
  } else if (!o.num_iterations.empty()) {
    const std::string& v = o.num_iterations;
    const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), lopts.num_iterations);
    if (ec != std::errc{} || p != v.data() + v.size()) {
      return fail(invalid_input(fmt::format("--num-iterations: '{}' is neither a number nor 'best'", v)));
    }
  }
  Result<ModelPtr> model = load_model(o.model, lopts);
  if (!model) return fail(model.status());
  const ModelInfo& info = (*model)->info();
  Result<std::unique_ptr<CsvReader>> csv = CsvReader::open(o.input);
  if (!csv) return fail(csv.status().with_context(o.input));
  CsvReader& in = **csv;
  Result<std::vector<std::size_t>> column_of = match_columns(info, in);
  if (!column_of) return fail(column_of.status().with_context(o.input));
  // Category strings in the model's categorical columns become codes, as
  // the training library recodes a DataFrame (see CategoryEncoder).
  const CategoryEncoder encoder(info);
  std::vector<std::size_t> feature_of(in.columns().size(), info.num_features);
  for (std::size_t j = 0; j < info.num_features; ++j) feature_of[(*column_of)[j]] = j;
  in.set_text_field_handler([&](std::size_t column, std::string_view field) -> Result<double> {
    const std::size_t j = feature_of[column];
    if (j == info.num_features || !encoder.has_vocabulary(j)) {
      return invalid_input(fmt::format("'{}' is not a number", field.substr(0, 40)));
    }
    return encoder.encode(j, field);
  });

  const PredictOptions popts{o.margin ? OutputKind::kMargin : OutputKind::kTransformed, o.threads};
  const std::size_t f = info.num_features, w = info.width(popts.output);
  Explanations explain(o, info);
  if (Status s = explain.probe(**model); !s) return fail(s.with_context(o.model));
  Output out(o.output);
  if (!out.ok()) return fail(invalid_input(fmt::format("cannot write '{}'", o.output)));
  if (w == 1) {
    fmt::format_to(std::back_inserter(out.buf()), "score");
  } else {
    for (std::size_t k = 0; k < w; ++k) fmt::format_to(std::back_inserter(out.buf()), "{}score_{}", k ? "," : "", k);
  }
  explain.header(out.buf());
  fmt::format_to(std::back_inserter(out.buf()), "\n");

  const bool skip = o.on_error == "skip";
  std::vector<double> line(in.columns().size()), batch;
  std::vector<double> scores;
  batch.reserve(o.batch * f);
  std::size_t rows = 0, skipped = 0, scored = 0;
  auto flush_batch = [&]() -> Status {
    const std::size_t n = batch.size() / f;
    if (n == 0) return Status::ok();
    scores.resize(n * w);
    if (Status s = (*model)->predict(std::span<const double>(batch), n, scores, popts); !s) return s;
    if (explain.any()) {
      if (Status s = explain.compute(**model, batch, n); !s) return s;
    }
    auto it = std::back_inserter(out.buf());
    for (std::size_t r = 0; r < n; ++r) {
      for (std::size_t k = 0; k < w; ++k) {
        if (k) *it++ = ',';
        // float64 outputs: a float result prints as before (9 digits round
        // trip a float); a double one (LightGBM) with 17 digits.
        const double v = scores[r * w + k];
        if (!std::isfinite(v) || static_cast<double>(static_cast<float>(v)) == v) {
          fmt::format_to(it, "{:.9g}", static_cast<float>(v));
        } else {
          fmt::format_to(it, "{:.17g}", v);
        }
      }
      if (explain.any()) {
        if (Status s = explain.row(out.buf(), r); !s) return s;
      }
      fmt::format_to(it, "\n");
    }
    scored += n;
    batch.clear();
    if (!out.flush()) return invalid_input(fmt::format("write to '{}' failed", o.output));
    return Status::ok();
  };
  while (true) {
    const CsvReader::Row row = in.next(line);
    if (row.kind == CsvReader::Row::Kind::kEnd) break;
    ++rows;
    if (row.kind == CsvReader::Row::Kind::kError) {
      const std::string msg = fmt::format("{}: row {}: {}", o.input, rows, row.error.message());
      if (!skip) {
        out.discard();
        return fail(invalid_input(msg));
      }
      if (++skipped <= o.max_reported) fmt::print(stderr, "keel score: skipped {}\n", msg);
      continue;
    }
    for (std::size_t j = 0; j < f; ++j) batch.push_back(line[(*column_of)[j]]);
    if (batch.size() == o.batch * f) {
      if (Status s = flush_batch(); !s) {
        out.discard();
        return fail(s);
      }
    }
  }
  if (Status s = flush_batch(); !s) {
    out.discard();
    return fail(s);
  }
  if (!out.flush()) return fail(invalid_input(fmt::format("write to '{}' failed", o.output)));
  if (skipped > 0) {
    if (skipped > o.max_reported) fmt::print(stderr, "keel score: ... and {} more\n", skipped - o.max_reported);
    fmt::print(stderr, "keel score: scored {} rows, skipped {} of {}\n", scored, skipped, rows);
  }
  return 0;
}

}  // namespace
}  // namespace keel::cli

KEEL_CLI_COMMAND(score) {
  auto o = std::make_shared<keel::cli::ScoreOptions>();
  CLI::App* sub = app.add_subcommand("score", "Score the rows of a CSV file with a model");
  sub->add_option("--model,-m", o->model, "Model file (LightGBM text, XGBoost JSON/UBJSON, Keel linear JSON)")
      ->required();
  sub->add_option("--input,-i", o->input, "CSV with a header row; an empty field is a missing value ('-' = stdin)")
      ->required();
  sub->add_option("--output,-o", o->output, "Where to write the scores ('-' = stdout)")->capture_default_str();
  sub->add_flag("--margin", o->margin, "Write raw margins instead of transformed predictions");
  sub->add_option("--threads", o->threads, "Threads the model may use per batch")
      ->check(CLI::Range(1u, 1024u))
      ->capture_default_str();
  sub->add_option("--on-error", o->on_error, "A bad row: 'fail' stops with an error, 'skip' scores the others")
      ->check(CLI::IsMember({"skip", "fail"}))
      ->capture_default_str();
  sub->add_option("--num-iterations", o->num_iterations,
                  "Score with the first N boosting rounds only (0 = all), or 'best' for the round the file "
                  "records as best; more rounds than the model has, or a model without rounds, is an error");
  sub->add_option("--batch", o->batch, "Rows per call to the model")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  sub->add_flag("--contribs", o->contribs,
               "Append each feature's exact SHAP contribution to the margin and the bias (columns named as "
               "XGBoost's pred_contribs: feature names, bias; c{k}_ per class)");
  sub->add_flag("--leaf", o->leaf, "Append the leaf each tree reaches (tree_0..), numbered as the training library does");
  CLI::Option* reasons = sub->add_option("--reason-codes", o->reason_codes,
                  "Append the top K reason codes per margin output: feature, its value, its contribution")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000}));
  sub->add_option("--reason-mode", o->reason_mode,
                  "Reason codes by 'magnitude' (either sign) or only those pushing the score 'up'")
      ->check(CLI::IsMember({"magnitude", "up"}))
      ->needs(reasons)
      ->capture_default_str();
  return [o] { return keel::cli::score(*o); };
}
