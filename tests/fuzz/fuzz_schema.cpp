// libFuzzer: schema files (parse_schema) on arbitrary bytes, both on their
// own and refining a 3-feature base with a profile for "median" imputes.
// Bad input throws keel::Error with a message; nothing else escapes. A
// schema that parses must build a SchemaValidator or be refused by it
// with keel::Error, and a built validator checks rows of zeros, NaNs and
// infinities without a sanitizer report.
#include <keel/core/status.hpp>
#include <keel/validate/profile.hpp>
#include <keel/validate/schema.hpp>
#include <keel/validate/schema_validator.hpp>
#include <keel/validate/validation_report.hpp>

#include <cstdlib>
#include <limits>
#include <optional>
#include <string_view>
#include <vector>

namespace {

const keel::Profile& base_profile() {
  static const keel::Profile p = [] {
    keel::Profile pr;
    pr.rows = 10;
    for (const char* name : {"age", "income", "colour"}) {
      keel::FeatureProfile f;
      f.name = name;
      f.count = 10;
      f.min = 0;
      f.max = 9;
      f.mean = 4.5;
      f.quantiles.fill(4.5);
      f.histogram.counts = {10};
      pr.features.push_back(f);
    }
    return pr;
  }();
  return p;
}

void exercise(const keel::Schema& s) {
  std::optional<keel::SchemaValidator> v;
  try {
    v.emplace(s);
  } catch (const keel::Error& e) {
    if (e.status().message().empty()) std::abort();
    return;
  }
  const std::size_t n = s.num_features();
  if (n == 0 || n > 4096) return;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> rows;
  for (const float x : {0.0f, nan, inf, -inf, 1e30f}) rows.insert(rows.end(), n, x);
  std::vector<float> fixed(rows.size());
  keel::ValidationReport report;
  v->validate(rows, rows.size() / n, fixed, report);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (int pass = 0; pass < 2; ++pass) {
    try {
      const keel::Schema s =
          pass == 0 ? keel::parse_schema(text)
                    : keel::parse_schema(text, keel::Schema::from_names({"age", "income", "colour"}), &base_profile());
      exercise(s);
    } catch (const keel::Error& e) {
      if (e.status().message().empty()) std::abort();  // errors must say what is wrong
    }
  }
  return 0;
}
