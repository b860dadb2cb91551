// keel inspect: prints a model's ModelInfo, as text or JSON.

#include "cli/registry.hpp"

#include <keel/model/loaders.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace keel::cli {
namespace {

struct InspectOptions {
  std::string model;
  bool json = false;
};

nlohmann::json to_json(const ModelInfo& info) {
  nlohmann::json features = nlohmann::json::array();
  for (const FeatureInfo& f : info.features) {
    features.push_back({{"name", f.name}, {"type", std::string(to_string(f.type))}});
  }
  return {{"id", info.id},
          {"format", std::string(to_string(info.format))},
          {"objective", info.objective},
          {"booster", info.booster},
          {"num_features", info.num_features},
          {"has_feature_names", info.has_feature_names},
          {"features", features},
          {"num_outputs", info.num_outputs},
          {"num_margin_outputs", info.num_margin_outputs},
          {"num_classes", info.num_classes},
          {"num_trees", info.num_trees},
          {"max_depth", info.max_depth},
          {"base_score", info.base_score}};
}

int inspect(const InspectOptions& o) {
  Result<ModelPtr> model = load_model(o.model);
  if (!model) {
    fmt::print(stderr, "keel inspect: error: {}\n", model.status().message());
    return 1;
  }
  const ModelInfo& info = (*model)->info();
  if (o.json) {
    fmt::print("{}\n", to_json(info).dump(2));
    return 0;
  }
  fmt::print("id:            {}\n", info.id);
  fmt::print("format:        {}\n", to_string(info.format));
  fmt::print("objective:     {}\n", info.objective);
  fmt::print("booster:       {}\n", info.booster);
  fmt::print("features:      {}{}\n", info.num_features, info.has_feature_names ? " (named)" : " (by position)");
  fmt::print("outputs:       {} (margin: {})\n", info.num_outputs, info.num_margin_outputs);
  fmt::print("classes:       {}\n", info.num_classes);
  fmt::print("trees:         {}\n", info.num_trees);
  fmt::print("max depth:     {}\n", info.max_depth);
  fmt::print("base score:    {}\n", fmt::join(info.base_score, " "));
  fmt::print("\n{:>6}  {:<32} {}\n", "index", "feature", "type");
  for (std::size_t j = 0; j < info.features.size(); ++j) {
    const FeatureInfo& f = info.features[j];
    fmt::print("{:>6}  {:<32} {}\n", j, f.name.empty() ? "-" : f.name, to_string(f.type));
  }
  return 0;
}

}  // namespace
}  // namespace keel::cli

KEEL_CLI_COMMAND(inspect) {
  auto o = std::make_shared<keel::cli::InspectOptions>();
  CLI::App* sub = app.add_subcommand("inspect", "Print what a model file holds (format, objective, features, trees)");
  sub->add_option("--model,-m", o->model, "Model file")->required();
  sub->add_flag("--json", o->json, "Print JSON instead of text");
  return [o] { return keel::cli::inspect(*o); };
}
