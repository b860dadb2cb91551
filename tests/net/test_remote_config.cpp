// RemoteModel from engine.json ({"name": ..., "remote": {...}} in "models"):
// a chain of replicas over the OIP → default, against real `keel serve`
// replicas on loopback, answers exactly what the same engine answers with
// the model file in process; with the replicas stopped the default answers,
// flagged degraded. Bad "remote" values are errors naming their JSON path,
// and a host without keel::net's factory is told what is missing.

#include <keel/engine/config.hpp>
#include <keel/net/remote/remote_config.hpp>

#include "net/support/keel_serve_process.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <random>

using keel::test::KeelServe;

namespace {

const std::string kData = KEEL_TEST_DATA_DIR;
const std::string kModel = kData + "/engine/model.json";

std::unique_ptr<KeelServe> replica() {
  keel::test::KeelServeOptions o;
  o.keel_binary = keel::test::keel_binary(KEEL_BINARY_DIR);
  o.model_file = kModel;
  return std::make_unique<KeelServe>(o);
}

nlohmann::json remote_config(const std::vector<int>& ports) {
  nlohmann::json eps = nlohmann::json::array();
  for (int p : ports) eps.push_back({{"host", "127.0.0.1"}, {"port", p}});
  return {{"models", {{{"name", "replicas"},
                       {"remote", {{"model", "m"}, {"endpoints", eps}, {"attempt_timeout_ms", 500},
                                   {"health_interval_ms", 0}}}}}},
          {"chain", {{{"model", "replicas"}}, {{"default", {0.5}}}}},
          {"log", {{"level", "off"}}}};
}

keel::ConfigOptions with_remote() {
  keel::ConfigOptions o;
  keel::net::add_remote_models(o);
  return o;
}

void expect_error(const nlohmann::json& j, const std::string& where, const keel::ConfigOptions& opts) {
  INFO(j.dump());
  try {
    (void)keel::builder_from_json(j.dump(), kData, opts).build();
    FAIL("no error; expected one naming " << where);
  } catch (const keel::Error& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains(where));
  }
}

}  // namespace

TEST_CASE("engine.json remote models: a chain of replicas answers like the model file", "[remote][config]") {
  auto r1 = replica();
  auto r2 = replica();
  auto remote = keel::builder_from_json(remote_config({r1->port(), r2->port()}).dump(), kData, with_remote()).build();
  nlohmann::json local_cfg = remote_config({1});
  local_cfg["models"][0] = {{"name", "replicas"}, {"path", kModel}};
  auto local = keel::builder_from_json(local_cfg.dump(), kData).build();

  const std::size_t nf = local->num_features();
  std::mt19937 g(7);
  std::uniform_real_distribution<float> u(0.f, 30.f);
  for (int i = 0; i < 50; ++i) {
    std::vector<float> row(nf);
    for (auto& x : row) x = (g() % 10 == 0) ? std::nanf("") : u(g);
    keel::Request req;
    req.features = row;
    auto a = remote->score(req);
    auto b = local->score(req);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(a->stage == "replicas");
    CHECK_FALSE(a->degraded);
    REQUIRE(a->scores.size() == b->scores.size());
    CHECK(std::memcmp(a->scores.data(), b->scores.data(), a->scores.size() * sizeof(float)) == 0);
  }

  // Both replicas gone: the default answers, flagged degraded.
  r1->stop();
  r2->stop();
  const std::vector<float> ones(nf, 1.f);
  keel::Request req;
  req.features = ones;
  auto d = remote->score(req);
  REQUIRE(d.ok());
  CHECK(d->stage == "default");
  CHECK(d->degraded);
  CHECK_THAT(d->degraded_reason, Catch::Contains("replicas"));
}

TEST_CASE("engine.json remote models: \"hedge\" turns hedging on with its keys", "[remote][config]") {
  const auto o = keel::net::remote_options_from_json(
      R"({"model": "m", "endpoints": [{"host": "h", "port": 1}],
          "hedge": {"quantile": 0.9, "min_delay_ms": 2, "min_samples": 50, "budget_percent": 5, "burst": 3,
                    "threads": 2}})",
      "remote");
  CHECK(o.hedge.enabled);
  CHECK(o.hedge.quantile == 0.9);
  CHECK(o.hedge.min_delay == std::chrono::milliseconds(2));
  CHECK(o.hedge.min_samples == 50);
  CHECK(o.hedge.budget_percent == 5);
  CHECK(o.hedge.burst == 3);
  CHECK(o.hedge.threads == 2);
  const auto off = keel::net::remote_options_from_json(R"({"model": "m", "endpoints": [{"host": "h", "port": 1}]})",
                                                       "remote");
  CHECK_FALSE(off.hedge.enabled);
  CHECK(off.transport == keel::net::RemoteTransport::kRest);
  const auto g = keel::net::remote_options_from_json(
      R"({"model": "m", "transport": "grpc", "endpoints": [{"host": "h", "port": 1}]})", "remote");
  CHECK(g.transport == keel::net::RemoteTransport::kGrpc);
}

TEST_CASE("engine.json remote models: errors name the JSON path", "[remote][config]") {
  const auto opts = with_remote();
  auto j = remote_config({8000});
  SECTION("a port out of range") {
    j["models"][0]["remote"]["endpoints"][0]["port"] = 70000;
    expect_error(j, "models[0].remote.endpoints[0].port: must be in [1, 65535], got 70000", opts);
  }
  SECTION("a typo in a key") {
    j["models"][0]["remote"]["atempt_timeout_ms"] = 5;
    expect_error(j, "models[0].remote.atempt_timeout_ms: unknown key", opts);
  }
  SECTION("no model name") {
    j["models"][0]["remote"].erase("model");
    expect_error(j, "models[0].remote.model: is required", opts);
  }
  SECTION("no endpoints") {
    j["models"][0]["remote"]["endpoints"] = nlohmann::json::array();
    expect_error(j, "models[0].remote.endpoints: expected a non-empty array", opts);
  }
  SECTION("both a path and remote") {
    j["models"][0]["path"] = "model.json";
    expect_error(j, "models[0].remote: a model is one of \"path\" or \"remote\"", opts);
  }
  SECTION("neither") {
    j["models"][0].erase("remote");
    expect_error(j, "models[0]: needs \"path\"", opts);
  }
  SECTION("nothing listens: the build fails, naming the model") {
    j["models"][0]["remote"]["endpoints"][0]["port"] = 1;
    j["models"][0]["remote"]["metadata_timeout_ms"] = 300;
    expect_error(j, "models[0].remote", opts);
  }
  SECTION("a hedge quantile out of range") {
    j["models"][0]["remote"]["hedge"] = {{"quantile", 1.5}};
    expect_error(j, "models[0].remote.hedge.quantile: must be in (0, 1)", opts);
  }
  SECTION("an unknown transport") {
    j["models"][0]["remote"]["transport"] = "http3";
    expect_error(j, "models[0].remote.transport: 'http3' is not one of: rest, grpc", opts);
  }
  SECTION("a typo in a hedge key") {
    j["models"][0]["remote"]["hedge"] = {{"budget_precent", 5}};
    expect_error(j, "models[0].remote.hedge.budget_precent: unknown key", opts);
  }
  SECTION("a host without keel::net's factory is told what is missing") {
    expect_error(j, "models[0].remote: this host cannot make such models", keel::ConfigOptions{});
  }
}
