#include <keel/engine/registry.hpp>
#include <keel/engine/scoring_engine.hpp>

#include "engine_test_util.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

using keel::EngineRegistry;
using keel::RegisteredEngine;
using keel::StatusCode;

namespace {

// A real engine whose one score is `bias` (weight 0), so a lookup can be
// checked by scoring what it found.
std::shared_ptr<keel::ScoringEngine> engine(float bias) {
  return keel::EngineBuilder()
      .name("e" + std::to_string(static_cast<int>(bias)))
      .model("primary", keel::test::linear({0.0f}, bias))
      .stage("primary")
      .build();
}

float score(const std::shared_ptr<keel::ScoringEngine>& e) {
  const float row[] = {1.0f};
  keel::Request req;
  req.features = row;
  auto r = e->score(req);
  REQUIRE(r.ok());
  return r->scores.at(0);
}

RegisteredEngine entry(std::string name, std::string version, std::shared_ptr<keel::ScoringEngine> e,
                       bool ready = true) {
  return RegisteredEngine{.name = std::move(name), .version = std::move(version), .engine = std::move(e),
                          .ready = ready, .context = {}};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("registry finds an engine by name and version", "[registry]") {
  EngineRegistry reg;
  auto one = engine(1), two = engine(2);
  REQUIRE(reg.add(entry("fraud", "1", one)).is_ok());
  REQUIRE(reg.add(entry("fraud", "2", two)).is_ok());

  auto r = reg.find("fraud", "1");
  REQUIRE(r.ok());
  CHECK((*r)->engine == one);
  CHECK((*r)->name == "fraud");
  CHECK((*r)->version == "1");
  CHECK(score((*r)->engine) == 1.0f);
  CHECK(reg.find("fraud", "2").value()->engine == two);
  CHECK(reg.size() == 2);
}

TEST_CASE("registry names the unknown name and version", "[registry]") {
  EngineRegistry reg;
  REQUIRE(reg.add(entry("fraud", "1", engine(1))).is_ok());

  auto no_name = reg.find("churn", "3");
  REQUIRE(no_name.code() == StatusCode::kNotFound);
  CHECK(contains(no_name.status().message(), "'churn'"));
  CHECK(contains(no_name.status().message(), "'3'"));
  CHECK_FALSE(no_name.status().retryable());

  auto no_version = reg.find("fraud", "3");
  REQUIRE(no_version.code() == StatusCode::kNotFound);
  CHECK(contains(no_version.status().message(), "'fraud'"));
  CHECK(contains(no_version.status().message(), "'3'"));

  CHECK(reg.find("churn").code() == StatusCode::kNotFound);
}

TEST_CASE("registry by name answers the newest ready version", "[registry]") {
  EngineRegistry reg;
  auto e9 = engine(9), e10 = engine(10);
  REQUIRE(reg.add(entry("m", "9", e9)).is_ok());
  REQUIRE(reg.add(entry("m", "10", e10)).is_ok());
  REQUIRE(reg.add(entry("m", "canary", engine(3))).is_ok());
  CHECK(reg.find("m").value()->engine == e10);  // numeric, not bytewise; numbers after names

  REQUIRE(reg.set_ready("m", "10", false).is_ok());
  CHECK(reg.find("m").value()->engine == e9);
  auto not_ready = reg.find("m", "10");
  REQUIRE(not_ready.code() == StatusCode::kUnavailable);
  CHECK(contains(not_ready.status().message(), "'10'"));
  CHECK(not_ready.status().retryable());

  REQUIRE(reg.set_ready("m", "9", false).is_ok());
  REQUIRE(reg.set_ready("m", "canary", false).is_ok());
  auto none = reg.find("m");
  REQUIRE(none.code() == StatusCode::kUnavailable);
  CHECK(contains(none.status().message(), "'m'"));

  REQUIRE(reg.set_ready("m", "10", true).is_ok());
  CHECK(reg.find("m").value()->engine == e10);
  CHECK(reg.set_ready("m", "11", true).code() == StatusCode::kNotFound);
  CHECK(reg.set_ready("x", "1", true).code() == StatusCode::kNotFound);
}

TEST_CASE("an entry added not ready is listed but not served", "[registry]") {
  EngineRegistry reg;
  auto e = engine(1);
  REQUIRE(reg.add(entry("m", "1", e, false)).is_ok());
  CHECK(reg.find("m", "1").code() == StatusCode::kUnavailable);
  CHECK(reg.find("m").code() == StatusCode::kUnavailable);
  REQUIRE(reg.list().size() == 1);
  CHECK_FALSE(reg.list()[0]->ready);
  CHECK_FALSE(reg.ready());
}

TEST_CASE("draining makes every lookup unavailable until it is switched off", "[registry]") {
  EngineRegistry reg;
  REQUIRE(reg.add(entry("a", "1", engine(1))).is_ok());
  REQUIRE(reg.add(entry("b", "1", engine(2))).is_ok());
  CHECK(reg.ready());

  reg.set_draining(true);
  CHECK(reg.draining());
  for (auto r : {reg.find("a"), reg.find("a", "1"), reg.find("b", "1")}) {
    REQUIRE(r.code() == StatusCode::kUnavailable);
    CHECK(contains(r.status().message(), "draining"));
  }
  CHECK_FALSE(reg.ready());
  CHECK(reg.list().size() == 2);  // still listed (metadata, health)

  reg.set_draining(false);
  CHECK(reg.find("a").ok());
  CHECK(reg.ready());
}

TEST_CASE("registry readiness needs a ready version of every name", "[registry]") {
  EngineRegistry reg;
  CHECK_FALSE(reg.ready());  // empty
  REQUIRE(reg.add(entry("a", "1", engine(1))).is_ok());
  REQUIRE(reg.add(entry("a", "2", engine(2), false)).is_ok());  // warming: a/1 still serves
  CHECK(reg.ready());
  REQUIRE(reg.add(entry("b", "1", engine(3), false)).is_ok());
  CHECK_FALSE(reg.ready());
  REQUIRE(reg.set_ready("b", "1", true).is_ok());
  CHECK(reg.ready());
}

TEST_CASE("registry rejects bad and duplicate entries", "[registry]") {
  EngineRegistry reg;
  CHECK(reg.add(entry("", "1", engine(1))).code() == StatusCode::kInvalidInput);
  auto no_version = reg.add(entry("m", "", engine(1)));
  CHECK(no_version.code() == StatusCode::kInvalidInput);
  CHECK(contains(no_version.message(), "'m'"));
  CHECK(reg.add(entry("m", "1", nullptr)).code() == StatusCode::kInvalidInput);
  CHECK(reg.size() == 0);

  REQUIRE(reg.add(entry("m", "1", engine(1))).is_ok());
  auto twice = reg.add(entry("m", "1", engine(2)));
  REQUIRE(twice.code() == StatusCode::kConflict);
  CHECK(contains(twice.message(), "'m'"));
  CHECK(contains(twice.message(), "'1'"));
  CHECK(score(reg.find("m", "1").value()->engine) == 1.0f);  // the first one stays
}

TEST_CASE("replace swaps the engine; an entry found before keeps the old one", "[registry]") {
  EngineRegistry reg;
  std::weak_ptr<keel::ScoringEngine> old_weak;
  {
    auto old = engine(1);
    old_weak = old;
    REQUIRE(reg.add(entry("m", "1", std::move(old))).is_ok());
  }
  auto before = reg.find("m", "1");
  REQUIRE(before.ok());

  CHECK(reg.replace(entry("m", "2", engine(5))).code() == StatusCode::kNotFound);
  CHECK(reg.replace(entry("x", "1", engine(5))).code() == StatusCode::kNotFound);
  CHECK(reg.replace(entry("m", "1", nullptr)).code() == StatusCode::kInvalidInput);
  REQUIRE(reg.replace(entry("m", "1", engine(2))).is_ok());

  CHECK(score(reg.find("m", "1").value()->engine) == 2.0f);
  CHECK(score((*before)->engine) == 1.0f);  // in flight: finishes on the old engine
  CHECK_FALSE(old_weak.expired());
  before = keel::not_found("released");
  CHECK(old_weak.expired());  // and the registry did not keep it
}

TEST_CASE("remove drops one version; the name goes with its last version", "[registry]") {
  EngineRegistry reg;
  REQUIRE(reg.add(entry("m", "1", engine(1))).is_ok());
  REQUIRE(reg.add(entry("m", "2", engine(2))).is_ok());
  REQUIRE(reg.remove("m", "2").is_ok());
  CHECK(reg.find("m", "2").code() == StatusCode::kNotFound);
  CHECK(score(reg.find("m").value()->engine) == 1.0f);
  CHECK(reg.remove("m", "2").code() == StatusCode::kNotFound);
  REQUIRE(reg.remove("m", "1").is_ok());
  CHECK(reg.find("m").code() == StatusCode::kNotFound);
  CHECK(reg.size() == 0);
  CHECK(reg.list().empty());
  REQUIRE(reg.add(entry("m", "1", engine(3))).is_ok());  // the name can come back
  CHECK(score(reg.find("m").value()->engine) == 3.0f);
}

TEST_CASE("registry keeps the host's context with the entry", "[registry]") {
  EngineRegistry reg;
  auto ctx = std::make_shared<const int>(42);
  RegisteredEngine e = entry("m", "1", engine(1));
  e.context = ctx;
  REQUIRE(reg.add(std::move(e)).is_ok());
  REQUIRE(reg.set_ready("m", "1", false).is_ok());  // a copied entry keeps it
  REQUIRE(reg.set_ready("m", "1", true).is_ok());
  auto found = reg.find("m", "1");
  REQUIRE(found.ok());
  CHECK((*found)->context == ctx);
  CHECK(*static_cast<const int*>((*found)->context.get()) == 42);
}

TEST_CASE("registry lists entries by name, then version order", "[registry]") {
  EngineRegistry reg;
  auto e = engine(1);
  for (const char* v : {"10", "2", "beta", "1", "alpha"}) REQUIRE(reg.add(entry("b", v, e)).is_ok());
  REQUIRE(reg.add(entry("a", "7", e)).is_ok());
  std::vector<std::string> got;
  for (const auto& x : reg.list()) got.push_back(x->name + "/" + x->version);
  CHECK(got == std::vector<std::string>{"a/7", "b/alpha", "b/beta", "b/1", "b/2", "b/10"});
}

TEST_CASE("version order is a strict weak order, numeric on numbers", "[registry]") {
  const keel::VersionLess less;
  CHECK(less("9", "10"));
  CHECK_FALSE(less("10", "9"));
  CHECK(less("2", "10"));
  CHECK(less("1", "01"));  // numerically equal, still distinct
  CHECK_FALSE(less("01", "1"));
  CHECK(less("0", "00"));
  CHECK(less("007", "8"));
  CHECK(less("a", "b"));
  CHECK(less("v10", "v2"));  // names: bytewise
  CHECK(less("zzz", "0"));   // names before numbers
  CHECK_FALSE(less("5", "5"));

  // Irreflexive, asymmetric and transitive on a mixed set, with
  // incomparability meaning equality (a total order).
  std::vector<std::string> vs = {"0", "00", "1", "01", "2", "9", "10", "010", "100", "1a", "2b", "a", "b", "v2", "v10", ""};
  for (const auto& a : vs) {
    CHECK_FALSE(less(a, a));
    for (const auto& b : vs) {
      if (a != b) CHECK(less(a, b) != less(b, a));
      for (const auto& c : vs)
        if (less(a, b) && less(b, c)) CHECK(less(a, c));
    }
  }
  std::mt19937 rng(7);
  std::shuffle(vs.begin(), vs.end(), rng);
  std::sort(vs.begin(), vs.end(), less);
  CHECK(vs == std::vector<std::string>{"", "1a", "2b", "a", "b", "v10", "v2", "0", "00", "1", "01", "2", "9",
                                       "10", "010", "100"});
}
