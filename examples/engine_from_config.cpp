// Builds a ScoringEngine from a JSON config (models by path, the fallback
// chain with its breaker/retry/bulkhead, validation, labels, cache) and
// scores a CSV of rows with it.
//
//   ./example_engine_from_config [examples/engine_config.json] [examples/data/rows.csv]

#include "example_rows.hpp"

#include <keel/engine/config.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  const char* config = argc > 1 ? argv[1] : "examples/engine_config.json";
  const char* csv = argc > 2 ? argv[2] : "examples/data/rows.csv";
  std::unique_ptr<keel::ScoringEngine> engine;
  try {
    engine = keel::engine_from_config(config);
  } catch (const keel::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());  // names the JSON path of what is wrong
    return 1;
  }
  const auto rows = example::read_rows(csv);
  std::printf("engine '%s': %zu features in, %zu score(s) out; %zu rows\n", engine->name().c_str(),
              engine->num_features(), engine->width(), rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    keel::Request req;
    req.features = rows[i];
    auto r = engine->score(req);
    if (!r.ok()) {
      std::printf("row %2zu  error  %s\n", i, r.status().to_string().c_str());
      continue;
    }
    auto label = engine->labels(*r);
    std::printf("row %2zu  %.4f  %-9s  %s%s\n", i, r->scores[0], label.ok() ? label->label.c_str() : "?",
                r->stage.c_str(), r->degraded ? " (degraded)" : "");
  }
  std::printf("\nhealth: %s\n", engine->health().to_json().c_str());
  return 0;
}
