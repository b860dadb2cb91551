#include <catch2/catch.hpp>

#include "unit/engine_test_util.hpp"

#include <keel/engine/config.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

namespace {

const std::filesystem::path kData = std::filesystem::path(KEEL_TEST_DATA_DIR) / "engine";

// The fixture's rows and XGBoost's own predictions for them.
struct Fixture {
  std::vector<std::vector<float>> rows;
  std::vector<float> pred;
};

Fixture read_fixture() {
  Fixture f;
  std::ifstream in(kData / "model.input.csv");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<float> row;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) row.push_back(cell.empty() ? NAN : std::stof(cell));
    if (!line.empty() && line.back() == ',') row.push_back(NAN);  // an empty last cell
    f.rows.push_back(std::move(row));
  }
  std::ifstream p(kData / "model.pred.csv");
  std::getline(p, line);
  while (std::getline(p, line)) f.pred.push_back(std::stof(line));
  return f;
}

nlohmann::json base_config() {
  return nlohmann::json::parse(R"({
    "name": "tumour",
    "models": [{"name": "primary", "path": "model.json", "id": "xgb"},
               {"name": "backup", "path": "backup_linear.json"}],
    "chain": [
      {"model": "primary",
       "breaker": {"window": "count", "window_size": 10, "minimum_calls": 5, "failure_rate": 0.5,
                   "wait_in_open_ms": 1000, "half_open_probes": 1},
       "retry": {"max_attempts": 2, "initial_backoff_ms": 0, "jitter": "none", "budget": {"ratio": 0.2}},
       "bulkhead": {"max_concurrent": 8}},
      {"model": "backup", "name": "fallback"},
      {"default": [0.5]}
    ],
    "validator": {"schema": {"defaults": {"range": "reject"},
                             "features": [{"name": "mean radius", "min": 0, "max": 100}]}},
    "postprocess": {"labels": {"thresholds": [0.5], "names": ["benign", "malignant"]}},
    "cache": {"max_entries": 1000, "ttl_ms": 60000},
    "idempotency": {"ttl_ms": 60000},
    "log": {"level": "off"},
    "default_timeout_ms": 1000
  })");
}

// Builds from `j`, expecting a keel::Error whose message contains `where`.
void expect_error(const nlohmann::json& j, const std::string& where) {
  INFO(j.dump());
  try {
    auto e = keel::builder_from_json(j.dump(), kData).build();
    FAIL("no error; expected one naming " << where);
  } catch (const keel::Error& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains(where));
  }
}

}  // namespace

TEST_CASE("config: a full config builds an engine that scores like XGBoost", "[config]") {
  auto engine = keel::builder_from_json(base_config().dump(), kData).build();
  CHECK(engine->name() == "tumour");
  CHECK(engine->num_features() == 10);
  const Fixture f = read_fixture();
  REQUIRE(f.rows.size() == f.pred.size());
  int rejected = 0;
  for (std::size_t i = 0; i < f.rows.size(); ++i) {
    keel::Request r;
    r.features = f.rows[i];
    r.model = "tumour";
    auto res = engine->score(r);
    INFO("row " << i << ": " << res.status().to_string());
    const float radius = f.rows[i][0];
    bool valid = std::isnan(radius) || (radius >= 0.f && radius <= 100.f);
    for (float x : f.rows[i]) valid = valid && !std::isinf(x);  // the schema rejects inf by default
    if (!valid) {  // the fixture has edge values
      CHECK(res.code() == keel::StatusCode::kInvalidInput);
      ++rejected;
      continue;
    }
    REQUIRE(res.ok());
    CHECK(res->stage == "primary");
    CHECK(res->model_id == "xgb");
    CHECK(res->scores[0] == Approx(f.pred[i]).epsilon(1e-6));
    auto label = engine->labels(*res);
    REQUIRE(label.ok());
    CHECK(label->label == (f.pred[i] >= 0.5f ? "malignant" : "benign"));
  }
  CHECK(rejected > 0);
  CHECK(rejected < 10);  // most fixture rows are ordinary
  // The schema from the config: radius above 100 is rejected.
  std::vector<float> bad = f.rows[0];
  bad[0] = 500.f;
  keel::Request r;
  r.features = bad;
  auto res = engine->score(r);
  CHECK(res.code() == keel::StatusCode::kInvalidInput);
  CHECK_THAT(res.status().message(), Catch::Contains("mean radius"));
  // Health names the configured stages.
  const std::string h = engine->health().to_json();
  CHECK_THAT(h, Catch::Contains("stage:fallback") && Catch::Contains("stage:default") && Catch::Contains("cache"));
  CHECK_THAT(engine->metrics_text(), Catch::Contains("keel_breaker_state{engine=\"tumour\",stage=\"primary\"} 0"));
}

TEST_CASE("config: errors name the JSON path", "[config]") {
  SECTION("a breaker threshold out of range") {
    auto j = base_config();
    j["chain"][0]["breaker"]["failure_rate"] = 1.5;
    expect_error(j, "chain[0].breaker.failure_rate: must be in (0, 1], got 1.5");
  }
  SECTION("a breaker threshold of the wrong type") {
    auto j = base_config();
    j["chain"][0]["breaker"]["failure_rate"] = "high";
    expect_error(j, "chain[0].breaker.failure_rate: expected a number");
  }
  SECTION("a typo in a key") {
    auto j = base_config();
    j["chain"][1]["braker"] = nlohmann::json::object();
    expect_error(j, "chain[1].braker: unknown key");
  }
  SECTION("a stage naming no declared model") {
    auto j = base_config();
    j["chain"][1]["model"] = "nope";
    expect_error(j, "chain[1].model: no model named 'nope'");
  }
  SECTION("a default that is not last") {
    auto j = base_config();
    std::swap(j["chain"][1], j["chain"][2]);
    expect_error(j, "chain[1]: a default stage must be last");
  }
  SECTION("a retry jitter that does not exist") {
    auto j = base_config();
    j["chain"][0]["retry"]["jitter"] = "wild";
    expect_error(j, "chain[0].retry.jitter: 'wild' is not one of: none, full, equal, decorrelated");
  }
  SECTION("a negative bulkhead size") {
    auto j = base_config();
    j["chain"][0]["bulkhead"]["max_concurrent"] = -3;
    expect_error(j, "chain[0].bulkhead.max_concurrent: expected a non-negative integer");
  }
  SECTION("a timeout on an inline stage") {
    auto j = base_config();
    j["chain"][0]["timeout_ms"] = 5;
    expect_error(j, "chain[0].timeout_ms: needs \"isolated\": true");
  }
  SECTION("a model file that does not load") {
    auto j = base_config();
    j["models"][0]["path"] = "corrupt.json";
    expect_error(j, "models[0].path");
  }
  SECTION("a model file that does not exist") {
    auto j = base_config();
    j["models"][1]["path"] = "absent.json";
    expect_error(j, "models[1].path");
  }
  SECTION("a missing required key") {
    auto j = base_config();
    j.erase("chain");
    expect_error(j, "chain: is required");
  }
  SECTION("a cache TTL below zero") {
    auto j = base_config();
    j["cache"]["ttl_ms"] = -1;
    expect_error(j, "cache.ttl_ms: must be in [0");
  }
  SECTION("a log level that does not exist") {
    auto j = base_config();
    j["log"]["level"] = "loud";
    expect_error(j, "log.level: expected debug, info, warn, error or off");
  }
  SECTION("a canary row of the wrong length") {
    auto j = base_config();
    j["canary_rows"] = {{1, 2, 3}};
    expect_error(j, "canary_rows[0]: has 3 values, the model takes 10");
  }
  SECTION("a preprocess step naming an unknown feature") {
    auto j = base_config();
    j.erase("validator");
    j["features"] = {"mean radius", "mean texture", "mean smoothness", "mean concave points", "radius error",
                     "area error", "worst radius", "worst texture", "worst perimeter", "worst concave points"};
    j["preprocess"] = {{"steps", {{{"op", "clip"}, {"feature", "radius"}, {"min", 0}, {"max", 1}}}}};
    expect_error(j, "preprocess.steps[0].feature: no input feature named 'radius'");
  }
  SECTION("a calibration that is not isotonic") {
    auto j = base_config();
    j["postprocess"] = {{"calibration", {{"isotonic", {{"x", {0, 1}}, {"y", {1, 0}}}}}}};
    expect_error(j, "postprocess");
  }
  SECTION("text that is not JSON") {
    CHECK_THROWS_WITH(keel::builder_from_json("{\"name\": ", kData), Catch::Contains("config: not valid JSON"));
    // A number beyond double is nlohmann's out_of_range, not a parse_error (found by fuzz_engine_config).
    CHECK_THROWS_WITH(keel::builder_from_json("{\"name\": 1e400}", kData), Catch::Contains("config: not valid JSON"));
  }
  SECTION("a file that cannot be read names the file") {
    CHECK_THROWS_WITH(keel::engine_from_config(kData / "no_such_config.json"), Catch::Contains("no_such_config.json"));
  }
}

TEST_CASE("config: preprocess by feature name and a file-backed reload", "[config]") {
  keel::test::TempDir dir("config");
  std::filesystem::copy_file(kData / "model.json", dir.path / "model.json");
  std::filesystem::copy_file(kData / "backup_linear.json", dir.path / "backup_linear.json");
  auto j = base_config();
  j["preprocess"] = {{"steps", {{{"op", "default"}, {"feature", "mean radius"}, {"value", 14}}}}};
  j.erase("validator");
  {
    std::ofstream out(dir.path / "engine.json");
    out << j.dump(2);
  }
  auto engine = keel::engine_from_config(dir.path / "engine.json");
  const Fixture f = read_fixture();
  std::vector<float> row = f.rows[0];
  row[0] = NAN;
  keel::Request r;
  r.features = row;
  auto missing = engine->score(r);
  row[0] = 14.f;
  auto filled = engine->score(r);
  REQUIRE(missing.ok());
  REQUIRE(filled.ok());
  CHECK(missing->scores == filled->scores);

  const auto v1 = engine->model("primary")->info().version;
  // Replace the primary's file with a corrupt one: the watch refuses it.
  std::filesystem::copy_file(kData / "corrupt.json", dir.path / "model.json",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::last_write_time(dir.path / "model.json",
                                   std::filesystem::last_write_time(dir.path / "model.json") + std::chrono::seconds(5));
  CHECK(engine->reload_changed() == 0);
  CHECK(engine->model("primary")->info().version == v1);
  CHECK(engine->score(r).ok());
  CHECK_THAT(engine->health().to_json(), Catch::Contains("last reload failed"));
}

TEST_CASE("config: a model's fault wraps it and every reload of its file", "[config]") {
  keel::test::TempDir dir("config-fault");
  std::filesystem::copy_file(kData / "model.json", dir.path / "model.json");
  std::filesystem::copy_file(kData / "backup_linear.json", dir.path / "backup_linear.json");
  auto j = base_config();
  j.erase("validator");
  j.erase("cache");
  j["chain"][0].erase("retry");
  // The primary slowed past its attempt timeout. (The canary rows run
  // through the fault too: an error_rate of 1 would fail them.)
  j["chain"][0]["isolated"] = true;
  j["chain"][0]["timeout_ms"] = 5;
  j["models"][0]["fault"] = {{"latency_ms", 40}};
  {
    std::ofstream out(dir.path / "engine.json");
    out << j.dump(2);
  }
  auto engine = keel::engine_from_config(dir.path / "engine.json");
  const Fixture f = read_fixture();
  keel::Request r;
  r.features = f.rows[0];
  auto answer = [&] {
    auto a = engine->score(r);
    REQUIRE(a.ok());
    return *a;
  };
  // Every primary call times out, so the backup answers, flagged degraded.
  CHECK(answer().stage == "fallback");
  CHECK(answer().degraded);
  // A reload of the primary's file keeps the fault: the loader wraps it.
  std::filesystem::last_write_time(dir.path / "model.json",
                                   std::filesystem::last_write_time(dir.path / "model.json") + std::chrono::seconds(5));
  CHECK(engine->reload_changed() == 1);
  CHECK(answer().stage == "fallback");

  // Without the fault the primary answers: the test sees the difference.
  j["models"][0].erase("fault");
  auto clean = keel::builder_from_json(j.dump(), dir.path).build();
  auto a = clean->score(r);
  REQUIRE(a.ok());
  CHECK(a->stage == "primary");
  CHECK_FALSE(a->degraded);

  SECTION("fault errors name their path") {
    auto k = base_config();
    k["models"][0]["fault"] = {{"error_rate", 2}};
    expect_error(k, "models[0].fault.error_rate: must be in [0, 1], got 2");
    k["models"][0]["fault"] = {{"latncy_ms", 2}};
    expect_error(k, "models[0].fault.latncy_ms: unknown key");
    k["models"][0]["fault"] = {{"hang_rate", 0.5}};
    expect_error(k, "models[0].fault: hang_rate needs hang_limit_ms");
    k["models"][0]["fault"] = {{"latency_ms", 120000}};
    expect_error(k, "models[0].fault.latency_ms: at most 60000 ms");
    k["models"][0]["fault"] = {{"error_code", "teapot"}};
    expect_error(k, "models[0].fault.error_code: 'teapot' is not one of");
  }
}
