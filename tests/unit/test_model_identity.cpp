// Model content identity (ModelInfo::content_id): the same for the same
// bytes and answer-changing load options in any process, different when one
// leaf changes, so that replicas sharing a cache agree on what a key means.

#include "support/fixture_csv.hpp"

#include <catch2/catch.hpp>
#include <keel/model/loaders.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <vector>

using namespace keel;

namespace {

const std::string kData = KEEL_TEST_DATA_DIR;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

ModelPtr load_text(const std::string& text, const LoadOptions& opts = {}) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(text.data());
  Result<ModelPtr> r = load_model_from_memory(std::span<const std::uint8_t>(p, text.size()), opts);
  REQUIRE(r.ok());
  return *r;
}

float score(const Model& m, const std::vector<float>& row) {
  std::vector<float> out(m.info().num_outputs);
  REQUIRE(m.predict(std::span<const float>(row), 1, std::span<float>(out)).is_ok());
  return out[0];
}

}  // namespace

TEST_CASE("content id: the same file twice is one identity, and it is not empty", "[model][identity]") {
  for (const std::string file : {"xgboost/base_score.json", "xgboost/base_score.ubj", "lightgbm/binary.model.txt"}) {
    INFO(file);
    const auto a = load_model(kData + "/" + file);
    const auto b = load_model(kData + "/" + file);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK_FALSE((*a)->info().content_id.empty());
    CHECK((*a)->info().content_id == (*b)->info().content_id);
    CHECK((*a)->info().content_id.hex().size() == 32);
    // The per-process version still tells the two loads apart, for ordering.
    CHECK((*a)->info().version != (*b)->info().version);
  }
}

TEST_CASE("content id: one changed leaf is another identity", "[model][identity]") {
  const std::string text = slurp(kData + "/xgboost/base_score.json");
  nlohmann::json doc = nlohmann::json::parse(text);
  auto& tree = doc["learner"]["gradient_booster"]["model"]["trees"][0];
  std::size_t leaf = 0;
  while (tree["left_children"][leaf].get<int>() != -1) ++leaf;
  tree["base_weights"][leaf] = tree["base_weights"][leaf].get<double>() + 0.5;
  tree["split_conditions"][leaf] = tree["split_conditions"][leaf].get<double>() + 0.5;
  const ModelPtr orig = load_text(text);
  const ModelPtr changed = load_text(doc.dump());
  CHECK(orig->info().content_id != changed->info().content_id);

  // The edit reaches some fixture row's answer (so the change is real).
  const test::Table in = test::read_csv(kData + "/xgboost/base_score.input.csv");
  const std::size_t F = in.cols();
  REQUIRE(F == orig->info().num_features);
  bool differs = false;
  for (std::size_t r = 0; r < in.rows && !differs; ++r) {
    const std::vector<float> row(in.values.begin() + static_cast<std::ptrdiff_t>(r * F),
                                 in.values.begin() + static_cast<std::ptrdiff_t>((r + 1) * F));
    differs = score(*orig, row) != score(*changed, row);
  }
  CHECK(differs);
}

TEST_CASE("content id: the rounds scored are part of it; 'all' spelled two ways is one", "[model][identity]") {
  const std::string text = slurp(kData + "/xgboost/base_score.json");
  const ModelPtr all = load_text(text);
  const std::size_t rounds = all->info().iterations_in_file;
  REQUIRE(rounds > 1);
  LoadOptions fewer;
  fewer.num_iterations = rounds - 1;
  LoadOptions every;
  every.num_iterations = rounds;
  CHECK(load_text(text, fewer)->info().content_id != all->info().content_id);
  CHECK(load_text(text, every)->info().content_id == all->info().content_id);
  // Options that pick no different answers (the id) leave it alone.
  LoadOptions named;
  named.id = "another-name";
  CHECK(load_text(text, named)->info().content_id == all->info().content_id);
}
