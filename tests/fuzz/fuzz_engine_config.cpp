// libFuzzer: the engine config (builder_from_json) on arbitrary bytes. The
// contract (config.hpp): every bad file throws keel::Error with a message;
// nothing else escapes. A config that parses is built and scores one row of
// zeros and one of NaNs, which must never fail with kInternal.
//
// Models come from memory (one 3-feature linear model for every "path"),
// and file references (schema, profile) point under a directory that does
// not exist, so no iteration touches the disk.
#include <keel/core/status.hpp>
#include <keel/engine/config.hpp>
#include <keel/model/loaders.hpp>

#include <cstdlib>
#include <limits>
#include <string_view>
#include <vector>

namespace {

constexpr std::string_view kModel = R"({"keel_linear": 1, "num_features": 3,
  "feature_names": ["age", "income", "colour"], "outputs": 1,
  "weights": [[0.25], [-1.5], [2.0]], "intercept": [0.5], "link": "logistic"})";

class NullSink final : public keel::LogSink {
 public:
  void write(std::string_view) noexcept override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  keel::ConfigOptions opts;
  opts.loader = [](const std::filesystem::path&, const keel::LoadOptions&) {
    return keel::load_keel_linear_json(kModel);
  };
  opts.log_sink = std::make_shared<NullSink>();
  opts.max_fault_wait = std::chrono::milliseconds(1);  // a "fault" may not stall the fuzzer
  std::unique_ptr<keel::ScoringEngine> engine;
  try {
    engine = keel::builder_from_json(text, "/nonexistent-keel-fuzz", opts).build();
  } catch (const keel::Error& e) {
    if (e.status().message().empty()) std::abort();  // errors must say what is wrong
    return 0;
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const std::vector<float>& row : {std::vector<float>{0, 0, 0}, std::vector<float>{nan, nan, nan}}) {
    keel::Request req;
    req.features = row;
    const auto r = engine->score(req);
    if (!r.ok() && r.code() == keel::StatusCode::kInternal) std::abort();
  }
  return 0;
}
