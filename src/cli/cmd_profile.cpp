// keel profile: per-feature statistics of a CSV file (usually the training
// data) in one streaming pass, saved as JSON for validation, anomaly
// detection and drift monitoring. With --model, columns are matched to the
// model's features (by name when it has names, else the first N columns),
// feature types come from the model, and the model's first output is
// profiled too, as the reference for score drift.

#include "cli/csv_rows.hpp"
#include "cli/model_file.hpp"
#include "cli/registry.hpp"

#include <keel/validate/profile_builder.hpp>

#include <fmt/format.h>

#include <memory>
#include <string>
#include <vector>

namespace keel::cli {
namespace {

struct ProfileCmdOptions {
  std::string input;
  std::string model;
  std::string output;
  std::vector<std::string> exclude;
  std::size_t bins = 10;
  std::size_t max_categories = 1024;
  std::string on_error = "fail";
};

int profile(const ProfileCmdOptions& o) {
  auto fail = [](const Status& s) {
    fmt::print(stderr, "keel profile: error: {}\n", s.message());
    return 1;
  };
  Result<std::unique_ptr<CsvRowSource>> src_r = CsvRowSource::open(o.input, o.on_error == "skip", "profile");
  if (!src_r) return fail(src_r.status());
  CsvRowSource& src = **src_r;

  std::vector<FeatureInfo> features;
  ScoreFn score;
  ModelPtr model;
  if (!o.model.empty()) {
    Result<ModelPtr> m = load_model_file(o.model);
    if (!m) return fail(m.status());
    model = *m;
    const ModelInfo& info = model->info();
    features = info.features;
    features.resize(info.num_features);
    if (info.has_feature_names) {
      std::vector<std::string> names;
      for (const FeatureInfo& f : features) names.push_back(f.name);
      if (Status s = src.select_names(names); !s) return fail(s);
    } else {
      if (src.columns().size() < info.num_features) {
        return fail(invalid_input(fmt::format("{}: {} columns; the model has {} features", o.input,
                                              src.columns().size(), info.num_features)));
      }
      std::vector<std::size_t> first(info.num_features);
      for (std::size_t j = 0; j < first.size(); ++j) {
        first[j] = j;
        features[j].name = src.columns()[j];
      }
      src.select(std::move(first));
    }
    const std::size_t width = info.width(OutputKind::kTransformed);
    score = [model, width, buf = std::vector<float>()](std::span<const float> rows, std::size_t n,
                                                       std::span<float> out) mutable {
      buf.resize(n * width);
      if (Status s = model->predict(rows, n, buf); !s) return s;
      for (std::size_t r = 0; r < n; ++r) out[r] = buf[r * width];  // the first output
      return Status::ok();
    };
  } else {
    Result<std::vector<std::string>> names = src.select_all_but(o.exclude);
    if (!names) return fail(names.status());
    for (std::string& n : *names) features.push_back(FeatureInfo{std::move(n), FeatureType::kNumeric});
  }
  if (features.empty()) return fail(invalid_input(fmt::format("{}: no feature columns", o.input)));

  ProfileOptions popts;
  popts.histogram_bins = o.bins;
  popts.max_categories = o.max_categories;
  Result<Profile> p = [&] {
    ProgressBar bar("keel profile");
    return profile_source(src, std::move(features), popts, score,
                          [&](std::uint64_t rows, double f) { bar.update(rows, f); });
  }();
  if (!p) return fail(p.status());
  try {
    p->save(o.output);
  } catch (const Error& e) {
    return fail(e.status());
  }
  fmt::print("profiled {} rows, {} features{} -> {}\n", p->rows, p->features.size(), p->score ? " and the score" : "",
             o.output);
  if (src.skipped() > 0) fmt::print(stderr, "keel profile: skipped {} bad rows of {}\n", src.skipped(), src.rows_read());
  return 0;
}

}  // namespace
}  // namespace keel::cli

KEEL_CLI_COMMAND(profile) {
  auto o = std::make_shared<keel::cli::ProfileCmdOptions>();
  CLI::App* sub = app.add_subcommand("profile", "Profile a CSV file (per-feature statistics) into a JSON file");
  sub->add_option("--input,-i", o->input, "CSV with a header row; an empty field is a missing value ('-' = stdin)")
      ->required();
  sub->add_option("--output,-o", o->output, "Where to write the profile JSON")->required();
  sub->add_option("--model,-m", o->model, "Match columns and types to this model's features, and profile its score");
  sub->add_option("--exclude", o->exclude, "Columns that are not features (e.g. the label); without --model");
  sub->add_option("--bins", o->bins, "Histogram bins per feature")->check(CLI::Range(1, 1000))->capture_default_str();
  sub->add_option("--max-categories", o->max_categories, "Distinct ids counted per categorical feature")
      ->capture_default_str();
  sub->add_option("--on-error", o->on_error, "A bad row: 'fail' stops with an error, 'skip' profiles the others")
      ->check(CLI::IsMember({"skip", "fail"}))
      ->capture_default_str();
  return [o] { return keel::cli::profile(*o); };
}
