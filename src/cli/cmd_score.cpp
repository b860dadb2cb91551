// keel score: scores a CSV file with a model, writing one line of scores per
// input row. Columns are matched to the model's features by name when the
// model has names, by position otherwise. Rows go to the model in batches.

#include "cli/csv.hpp"
#include "cli/registry.hpp"

#include <keel/model/categories.hpp>
#include <keel/model/loaders.hpp>

#include <fmt/format.h>

#include <charconv>
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
  Output out(o.output);
  if (!out.ok()) return fail(invalid_input(fmt::format("cannot write '{}'", o.output)));
  if (w == 1) {
    fmt::format_to(std::back_inserter(out.buf()), "score\n");
  } else {
    for (std::size_t k = 0; k < w; ++k) fmt::format_to(std::back_inserter(out.buf()), "{}score_{}", k ? "," : "", k);
    fmt::format_to(std::back_inserter(out.buf()), "\n");
  }

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
  return [o] { return keel::cli::score(*o); };
}
