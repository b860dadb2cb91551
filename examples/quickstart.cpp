// Quickstart: embed Keel in an application. Load a model, build an engine
// around it (with a default answer for when the model cannot), score a row.
//
//   ./example_quickstart [examples/data/model.json]

#include <keel/engine/scoring_engine.hpp>
#include <keel/model/loaders.hpp>

#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : "examples/data/model.json";

  keel::Result<keel::ModelPtr> model = keel::load_model(path);
  if (!model.ok()) {
    std::fprintf(stderr, "cannot load %s: %s\n", path, model.status().to_string().c_str());
    return 1;
  }

  // Configure once (this may throw keel::Error on a bad composition) ...
  std::unique_ptr<keel::ScoringEngine> engine = keel::EngineBuilder()
                                                    .name("tumour")
                                                    .model("primary", *model)
                                                    .stage("primary")
                                                    .default_scores({0.5f})
                                                    .cache(std::make_shared<keel::LruCache>())
                                                    .build();

  // ... then score from any number of threads; errors are values.
  std::vector<float> row{14.f, 19.f, 0.1f, 0.05f, 0.4f, 40.f, 16.f, 25.f, 107.f, 0.11f};
  keel::Request request;
  request.id = "patient-42";  // optional: a repeat with this id gets the same answer
  request.features = row;
  keel::Result<keel::Response> r = engine->score(request);
  if (!r.ok()) {
    std::fprintf(stderr, "score failed: %s\n", r.status().to_string().c_str());
    return 1;
  }
  std::printf("score %.6f from stage '%s' (model %s v%llu)%s\n", r->scores[0], r->stage.c_str(),
              r->model_id.c_str(), static_cast<unsigned long long>(r->model_version),
              r->degraded ? " [degraded]" : "");
  return 0;
}
