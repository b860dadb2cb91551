// keel inspect: prints a model's ModelInfo, as text or JSON.

#include "cli/registry.hpp"

#include <keel/model/loaders.hpp>
#include <keel/model/tree_ensemble.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace keel::cli {
namespace {

struct InspectOptions {
  std::string model;
  bool json = false;
  bool no_single_row_copy = false;
};

// Tree ensembles: the kernel, layout and bytes per layout; null otherwise.
nlohmann::json memory_json(const Model& m) {
  if (tree_kernel_of(m) == TreeKernel::kAuto) return nullptr;
  const TreeMemory b = tree_memory_of(m);
  return {{"kernel", std::string(to_string(tree_kernel_of(m)))},
          {"layout", std::string(to_string(tree_layout_of(m)))},
          {"binned", tree_binned_of(m)},
          {"binning_note", tree_binning_note(m)},
          {"bytes",
           {{"spec", b.spec},
            {"heap", b.heap},
            {"single_row_copy", b.row},
            {"compact", b.compact},
            {"compact_simd", b.compact_simd},
            {"double_rows", b.double_rows},
            {"binned", b.binned},
            {"total", b.total()}}}};
}

nlohmann::json to_json(const ModelInfo& info) {
  nlohmann::json features = nlohmann::json::array();
  for (const FeatureInfo& f : info.features) {
    nlohmann::json jf = {{"name", f.name}, {"type", std::string(to_string(f.type))}};
    if (!f.categories.empty()) jf["categories"] = f.categories.size();
    features.push_back(std::move(jf));
  }
  nlohmann::json best = nullptr;
  if (info.best_iteration >= 0) best = info.best_iteration;
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
          {"num_targets", info.num_targets},
          {"num_iterations", info.num_iterations},
          {"iterations_in_file", info.iterations_in_file},
          {"best_iteration", best},
          {"unseen_category", info.unseen_category == UnseenCategory::kMissing ? "missing" : "error"},
          {"num_trees", info.num_trees},
          {"max_depth", info.max_depth},
          {"base_score", info.base_score}};
}

int inspect(const InspectOptions& o) {
  LoadOptions lo;
  lo.tree.single_row_copy = !o.no_single_row_copy;
  Result<ModelPtr> model = load_model(o.model, lo);
  if (!model) {
    fmt::print(stderr, "keel inspect: error: {}\n", model.status().message());
    return 1;
  }
  const ModelInfo& info = (*model)->info();
  if (o.json) {
    nlohmann::json j = to_json(info);
    j["tree_ensemble"] = memory_json(**model);
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("id:            {}\n", info.id);
  fmt::print("format:        {}\n", to_string(info.format));
  fmt::print("objective:     {}\n", info.objective);
  fmt::print("booster:       {}\n", info.booster);
  fmt::print("features:      {}{}\n", info.num_features, info.has_feature_names ? " (named)" : " (by position)");
  fmt::print("outputs:       {} (margin: {})\n", info.num_outputs, info.num_margin_outputs);
  fmt::print("classes:       {}\n", info.num_classes);
  fmt::print("targets:       {}\n", info.num_targets);
  fmt::print("iterations:    {} (of {} in the file)\n", info.num_iterations, info.iterations_in_file);
  if (info.best_iteration >= 0) {
    fmt::print("best iteration: {} (0-based; --num-iterations best scores {} rounds)\n", info.best_iteration,
               info.best_iteration + 1);
  } else {
    fmt::print("best iteration: none recorded\n");
  }
  fmt::print("trees:         {}\n", info.num_trees);
  fmt::print("max depth:     {}\n", info.max_depth);
  fmt::print("base score:    {}\n", fmt::join(info.base_score, " "));
  if (const nlohmann::json mem = memory_json(**model); !mem.is_null()) {
    fmt::print("kernel:        {} ({} layout{})\n", mem["kernel"].get<std::string>(), mem["layout"].get<std::string>(),
               mem["binned"].get<bool>() ? ", binned" : "");
    if (!mem["binned"].get<bool>()) fmt::print("binned kernel: no, {}\n", mem["binning_note"].get<std::string>());
    fmt::print("memory (bytes):");
    for (const char* part :
         {"spec", "heap", "single_row_copy", "compact", "compact_simd", "double_rows", "binned", "total"}) {
      if (const auto v = mem["bytes"][part].get<std::size_t>(); v > 0 || std::string_view(part) == "total") {
        fmt::print(" {} {}", part, v);
      }
    }
    fmt::print("\n");
  }
  fmt::print("\n{:>6}  {:<32} {:<12} {}\n", "index", "feature", "type", "categories");
  for (std::size_t j = 0; j < info.features.size(); ++j) {
    const FeatureInfo& f = info.features[j];
    fmt::print("{:>6}  {:<32} {:<12} {}\n", j, f.name.empty() ? "-" : f.name, to_string(f.type),
               f.categories.empty() ? std::string("-") : fmt::format("{}", f.categories.size()));
  }
  bool any_vocab = false;
  for (const FeatureInfo& f : info.features) any_vocab = any_vocab || !f.categories.empty();
  if (any_vocab) {
    fmt::print("\ncategory strings not in a vocabulary: {}\n",
               info.unseen_category == UnseenCategory::kMissing ? "missing (LightGBM)" : "an error (XGBoost)");
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
  sub->add_flag("--no-single-row-copy", o->no_single_row_copy,
                "Load as a batch-only host would (LoadOptions::tree.single_row_copy = false)");
  return [o] { return keel::cli::inspect(*o); };
}
