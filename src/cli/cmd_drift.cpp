// keel drift: how far a CSV file (recent inputs) has drifted from a saved
// profile: PSI and missing rates per feature, the top drifting features as
// a table, or all of them as JSON sorted by PSI. Columns are matched to the
// profile's features by name; other columns are ignored.

#include "cli/csv_rows.hpp"
#include "cli/registry.hpp"

#include <keel/validate/drift_monitor.hpp>

#include <fmt/format.h>

#include <memory>
#include <string>
#include <vector>

namespace keel::cli {
namespace {

struct DriftCmdOptions {
  std::string profile;
  std::string input;
  bool json = false;
  std::size_t top = 10;
  double fail_above = -1;
  std::string on_error = "fail";
};

std::string_view verdict(double psi) { return psi > 0.25 ? "SHIFT" : psi > 0.1 ? "moderate" : "stable"; }

int drift(const DriftCmdOptions& o) {
  auto fail = [](const Status& s) {
    fmt::print(stderr, "keel drift: error: {}\n", s.message());
    return 1;
  };
  Profile ref;
  try {
    ref = Profile::load(o.profile);
  } catch (const Error& e) {
    return fail(e.status());
  }
  Result<std::unique_ptr<CsvRowSource>> src_r = CsvRowSource::open(o.input, o.on_error == "skip", "drift");
  if (!src_r) return fail(src_r.status());
  CsvRowSource& src = **src_r;
  std::vector<std::string> names;
  for (const FeatureProfile& f : ref.features) names.push_back(f.name);
  if (Status s = src.select_names(names); !s) return fail(s);

  Result<DriftSnapshot> snap = [&] {
    ProgressBar bar("keel drift");
    return measure_drift(ref, src, [&](std::uint64_t rows, double f) { bar.update(rows, f); });
  }();
  if (!snap) return fail(snap.status());
  if (o.json) {
    fmt::print("{}\n", snap->to_json());
  } else {
    fmt::print("{} rows against {} ({} reference rows)\n", snap->rows, o.profile, ref.rows);
    fmt::print("{:>4}  {:<24} {:>6} {:>9} {:>9} {:>9}  {}\n", "rank", "feature", "index", "psi", "missing", "ref_miss", "");
    std::size_t rank = 0;
    for (const FeatureDrift& f : snap->top(o.top)) {
      fmt::print("{:>4}  {:<24} {:>6} {:>9.4f} {:>9.4f} {:>9.4f}  {}\n", ++rank, f.name, f.index, f.psi, f.missing_rate,
                 f.reference_missing_rate, verdict(f.psi));
    }
  }
  if (src.skipped() > 0) fmt::print(stderr, "keel drift: skipped {} bad rows of {}\n", src.skipped(), src.rows_read());
  if (o.fail_above >= 0 && snap->max_psi() > o.fail_above) {
    fmt::print(stderr, "keel drift: max PSI {:.4f} is above {}\n", snap->max_psi(), o.fail_above);
    return 3;
  }
  return 0;
}

}  // namespace
}  // namespace keel::cli

KEEL_CLI_COMMAND(drift) {
  auto o = std::make_shared<keel::cli::DriftCmdOptions>();
  CLI::App* sub = app.add_subcommand("drift", "Compare a CSV file with a saved profile (PSI, missing rates)");
  sub->add_option("--profile,-p", o->profile, "Profile JSON written by keel profile")->required();
  sub->add_option("--input,-i", o->input, "CSV with a header row naming the profile's features ('-' = stdin)")
      ->required();
  sub->add_flag("--json", o->json, "Print {\"features\": [...]} for every feature, highest PSI first");
  sub->add_option("--top", o->top, "Features in the table")->capture_default_str();
  sub->add_option("--fail-above", o->fail_above, "Exit with status 3 when the highest PSI exceeds this");
  sub->add_option("--on-error", o->on_error, "A bad row: 'fail' stops with an error, 'skip' uses the others")
      ->check(CLI::IsMember({"skip", "fail"}))
      ->capture_default_str();
  return [o] { return keel::cli::drift(*o); };
}
