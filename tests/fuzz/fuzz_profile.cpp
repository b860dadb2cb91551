// libFuzzer: profile files (Profile::from_json) on arbitrary bytes. Bad
// input throws keel::Error with a message; nothing else escapes. A profile
// that loads must round-trip (to_json, then from_json, gives an equal
// profile), and must drive what reads it — a DriftMonitor over rows of
// zeros, NaNs and infinities, and median imputes in a schema — without a
// sanitizer report, or be refused with keel::Error.
#include <keel/core/status.hpp>
#include <keel/validate/drift_monitor.hpp>
#include <keel/validate/profile.hpp>
#include <keel/validate/schema.hpp>

#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace {

void exercise(const keel::Profile& p) {
  const std::size_t n = p.num_features();
  if (n == 0 || n > 4096) return;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  keel::DriftOptions o;
  o.window_rows = 8;
  o.window_blocks = 2;
  o.shards = 1;
  keel::DriftMonitor drift(p, o);
  std::vector<float> row(n);
  for (const float x : {0.0f, nan, inf, -inf, 1e30f, -1.0f}) {
    std::fill(row.begin(), row.end(), x);
    drift.observe(row, x);
  }
  (void)drift.snapshot().gauges();
  std::vector<std::string> names;
  for (const keel::FeatureProfile& f : p.features) names.push_back(f.name);
  keel::Schema s = keel::Schema::from_names(names);
  s.impute_medians(p);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const keel::Profile p = keel::Profile::from_json(text);
    const std::string again = p.to_json();
    if (!(keel::Profile::from_json(again) == p)) std::abort();  // to_json must say all that from_json read
    exercise(p);
  } catch (const keel::Error& e) {
    if (e.status().message().empty()) std::abort();  // errors must say what is wrong
  }
  return 0;
}
