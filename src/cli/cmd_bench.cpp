// keel bench: scoring speed of a model on rows from a CSV file. Loads the
// rows once (columns by position), then times batch prediction (median of
// several rounds) and single-row latency (p50/p99 over many calls).

#include "cli/csv.hpp"
#include <keel/model/loaders.hpp>
#include "cli/registry.hpp"

#include <keel/model/tree_ensemble.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace keel::cli {
namespace {

struct BenchOptions {
  std::string model;
  std::string input;
  unsigned threads = 1;
  std::size_t batch = 4096;
  std::string kernel = "auto";
  bool json = false;
  bool gather_walk = false;  // TreeEnsembleOptions::column_top_levels off
  std::size_t max_rows = 100000;
  std::size_t single_calls = 20000;
  double seconds = 2.0;  // total time spent on batch rounds
};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

Result<std::vector<float>> read_rows(const BenchOptions& o, std::size_t features) {
  auto csv = CsvReader::open(o.input);
  if (!csv) return csv.status();
  CsvReader& r = **csv;
  if (r.columns().size() != features) {
    return invalid_input(fmt::format("{}: {} columns, the model has {} features", o.input, r.columns().size(), features));
  }
  std::vector<double> row(features);
  std::vector<float> rows;
  while (rows.size() / features < o.max_rows) {
    const CsvReader::Row got = r.next(row);
    if (got.kind == CsvReader::Row::Kind::kEnd) break;
    if (got.kind == CsvReader::Row::Kind::kError) return got.error;
    rows.insert(rows.end(), row.begin(), row.end());
  }
  if (rows.empty()) return invalid_input(fmt::format("{}: no rows", o.input));
  return rows;
}

int run_bench(const BenchOptions& o) {
  TreeKernel kernel = TreeKernel::kAuto;
  if (!parse_tree_kernel(o.kernel, kernel)) {
    fmt::print(stderr, "keel bench: unknown kernel '{}' (auto, scalar, avx2, avx512, reference)\n", o.kernel);
    return 2;
  }
  if (Status s = set_default_tree_kernel(kernel); !s) {
    fmt::print(stderr, "keel bench: {}\n", s.message());
    return 2;
  }
  LoadOptions lopts;
  lopts.tree.column_top_levels = !o.gather_walk;
  auto model = load_model(o.model, lopts);
  if (!model) {
    fmt::print(stderr, "keel bench: {}\n", model.status().message());
    return 1;
  }
  const Model& m = **model;
  const ModelInfo& mi = m.info();
  const std::size_t nf = mi.num_features;
  auto rows_r = read_rows(o, nf);
  if (!rows_r) {
    fmt::print(stderr, "keel bench: {}\n", rows_r.status().message());
    return 1;
  }
  const std::vector<float>& rows = *rows_r;
  const std::size_t n = rows.size() / nf;
  const std::size_t batch = std::max<std::size_t>(1, std::min(o.batch, n));
  const std::size_t w = mi.num_outputs;
  std::vector<float> out(batch * w);
  PredictOptions popts;
  popts.threads = std::max(1u, o.threads);

  // Batch throughput: rounds of about seconds/5, median rows/s.
  std::vector<double> rates;
  std::size_t start = 0;
  for (int round = 0; round < 5; ++round) {
    std::size_t done = 0;
    const auto t0 = Clock::now();
    do {
      if (start + batch > n) start = 0;
      const Status s = m.predict(std::span<const float>(rows).subspan(start * nf, batch * nf), batch, out, popts);
      if (!s) {
        fmt::print(stderr, "keel bench: {}\n", s.message());
        return 1;
      }
      start += batch;
      done += batch;
    } while (seconds_since(t0) < o.seconds / 5);
    rates.push_back(static_cast<double>(done) / seconds_since(t0));
  }
  std::sort(rates.begin(), rates.end());
  const double rows_per_s = rates[rates.size() / 2];

  // Single rows, timed one by one.
  std::vector<double> lat;
  lat.reserve(o.single_calls);
  std::vector<float> one(w);
  for (std::size_t i = 0; i < o.single_calls; ++i) {
    const std::size_t r = i % n;
    const auto t0 = Clock::now();
    const Status s = m.predict_row(std::span<const float>(rows).subspan(r * nf, nf), one);
    lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (!s) {
      fmt::print(stderr, "keel bench: {}\n", s.message());
      return 1;
    }
  }
  std::sort(lat.begin(), lat.end());
  const double p50 = lat[lat.size() / 2];
  const double p99 = lat[std::min(lat.size() - 1, lat.size() * 99 / 100)];
  const double ns_row = 1e9 / rows_per_s;
  const double trees = static_cast<double>(std::max<std::size_t>(1, mi.num_trees));
  const std::string used = mi.num_trees > 0 && tree_kernel_of(m) == TreeKernel::kAuto
                               ? "reference"
                               : std::string(to_string(tree_kernel_of(m)));
  const std::string layout(to_string(tree_layout_of(m)));
  if (o.json) {
    fmt::print(
        "{{\"model\": \"{}\", \"rows\": {}, \"trees\": {}, \"rows_per_second\": {:.6g}, \"ns_per_row\": {:.6g}, "
        "\"ns_per_tree_row\": {:.6g}, \"p50_us\": {:.4g}, \"p99_us\": {:.4g}, \"kernel\": \"{}\", \"layout\": \"{}\", "
        "\"threads\": {}, \"batch\": {}, \"single_calls\": {}}}\n",
        mi.id, n, mi.num_trees, rows_per_s, ns_row, ns_row / trees, p50, p99, used, layout, popts.threads, batch,
        lat.size());
  } else {
    fmt::print("model {} ({} trees, {} features), {} rows; kernel {}, layout {}, threads {}, batch {}\n", mi.id,
               mi.num_trees, nf, n, used, layout, popts.threads, batch);
    fmt::print("batch:      {:.4g} rows/s, {:.4g} ns/row, {:.4g} ns per tree-row (median of {} rounds)\n", rows_per_s,
               ns_row, ns_row / trees, rates.size());
    fmt::print("single row: p50 {:.3g} us, p99 {:.3g} us over {} calls\n", p50, p99, lat.size());
  }
  return 0;
}

}  // namespace
}  // namespace keel::cli

KEEL_CLI_COMMAND(bench) {
  auto o = std::make_shared<keel::cli::BenchOptions>();
  auto* sub = app.add_subcommand("bench", "Measure a model's scoring speed on rows from a CSV file");
  sub->add_option("--model", o->model, "Model file")->required();
  sub->add_option("--input", o->input, "CSV rows (header line; columns in feature order)")->required();
  sub->add_option("--threads", o->threads, "Threads per batch")->check(CLI::Range(1u, 256u));
  sub->add_option("--batch", o->batch, "Rows per predict call")->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24));
  sub->add_option("--kernel", o->kernel, "auto, scalar, avx2, avx512 or reference");
  sub->add_flag("--json", o->json, "Print one JSON object");
  sub->add_flag("--gather-walk", o->gather_walk,
                "Walk every tree level with gathers (no column-compare top levels), to measure what they save");
  sub->add_option("--max-rows", o->max_rows, "Rows read from the input at most");
  sub->add_option("--single-calls", o->single_calls, "Single-row calls timed (at least 10000)")
      ->check(CLI::Range(std::size_t{10000}, std::size_t{100000000}));
  sub->add_option("--seconds", o->seconds, "Time spent on batch rounds")->check(CLI::Range(0.05, 600.0));
  return [o] { return keel::cli::run_bench(*o); };
}
