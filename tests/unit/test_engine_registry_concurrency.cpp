// Lookups and scoring through EngineRegistry while two writers add,
// replace, remove, toggle readiness and drain. Run under TSan by CI.

#include <keel/engine/registry.hpp>
#include <keel/engine/scoring_engine.hpp>

#include "engine_test_util.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using keel::EngineRegistry;
using keel::RegisteredEngine;
using keel::StatusCode;

namespace {

// A real engine that always answers `bias`, and the same value as the
// entry's context: a reader that finds an entry whose engine and context
// disagree has seen a torn entry.
RegisteredEngine entry(std::string name, std::string version, float bias) {
  auto engine = keel::EngineBuilder()
                    .name(name + ":" + version)
                    .model("primary", keel::test::linear({0.0f}, bias))
                    .stage("primary")
                    .build();
  return RegisteredEngine{.name = std::move(name), .version = std::move(version), .engine = std::move(engine),
                          .ready = true, .context = std::make_shared<const float>(bias)};
}

// Scores one row through the entry's engine; 0 when it answers its own
// context, else a failure to report.
int check_entry(const EngineRegistry::EntryPtr& e) {
  const float row[] = {1.0f};
  keel::Request req;
  req.features = row;
  auto r = e->engine->score(req);
  if (!r.ok()) return 1;
  return r->scores.at(0) == *static_cast<const float*>(e->context.get()) ? 0 : 1;
}

}  // namespace

TEST_CASE("registry lookups stay consistent while writers change it", "[registry][concurrency]") {
  constexpr int kSteps = 400;
  constexpr int kKeep = 4;  // versions of "m" kept after each add
  constexpr int kEngines = 8;

  // Built before the threads start (a build is slow under TSan); writers
  // hand out copies.
  std::vector<RegisteredEngine> pool;
  for (int i = 0; i < kEngines; ++i) pool.push_back(entry("r", "1", static_cast<float>(i + 1)));

  EngineRegistry reg;
  REQUIRE(reg.add(entry("m", "1", 100.0f)).is_ok());
  REQUIRE(reg.add(pool[0]).is_ok());
  {
    RegisteredEngine r2 = pool[1];
    r2.version = "2";
    REQUIRE(reg.add(std::move(r2)).is_ok());
  }

  std::atomic<bool> done{false};
  std::atomic<int> writer_errors{0};
  std::atomic<int> writers_left{2};
  std::atomic<int> readers_started{0};
  constexpr int kReaders = 3;
  // Writers start once every reader is looking, so the two overlap.
  auto wait_for_readers = [&] {
    while (readers_started.load() < kReaders) std::this_thread::yield();
  };

  // Writer A: a new version of "m" each step (always newest), the oldest
  // removed once kKeep are there.
  std::thread adder([&] {
    wait_for_readers();
    for (int i = 2; i <= kSteps + 1; ++i) {
      RegisteredEngine e = pool[static_cast<std::size_t>(i % kEngines)];
      e.name = "m";
      e.version = std::to_string(i);
      if (!reg.add(std::move(e)).is_ok()) writer_errors.fetch_add(1);
      if (i > kKeep && !reg.remove("m", std::to_string(i - kKeep)).is_ok()) writer_errors.fetch_add(1);
    }
    if (writers_left.fetch_sub(1) == 1) done = true;
  });
  // Writer B: swaps r/1's engine, toggles r/2, drains now and then.
  std::thread swapper([&] {
    wait_for_readers();
    for (int i = 0; i < kSteps; ++i) {
      if (!reg.replace(pool[static_cast<std::size_t>(i % kEngines)]).is_ok()) writer_errors.fetch_add(1);
      if (!reg.set_ready("r", "2", i % 2 == 0).is_ok()) writer_errors.fetch_add(1);
      if (i % 50 == 25) reg.set_draining(true);
      if (i % 50 == 30) reg.set_draining(false);
    }
    if (writers_left.fetch_sub(1) == 1) done = true;
  });

  std::atomic<int> bad_entry{0}, bad_status{0}, backwards{0}, found{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < kReaders; ++t) {
    readers.emplace_back([&] {
      readers_started.fetch_add(1);
      int newest_m = 0;
      EngineRegistry::EntryPtr held;  // kept across writes: must stay usable
      auto draining_or = [&](const keel::Status& s, bool may_be_not_ready) {
        if (s.code() != StatusCode::kUnavailable) return false;
        return s.message().find("draining") != std::string::npos || may_be_not_ready;
      };
      while (!done.load()) {
        if (auto m = reg.find("m"); m.ok()) {
          found.fetch_add(1);
          const int v = std::stoi((*m)->version);
          if ((*m)->name != "m" || check_entry(*m) != 0) bad_entry.fetch_add(1);
          if (v < newest_m) backwards.fetch_add(1);
          newest_m = v;
        } else if (!draining_or(m.status(), false)) {
          bad_status.fetch_add(1);
        }
        if (auto r1 = reg.find("r", "1"); r1.ok()) {
          if ((*r1)->version != "1" || check_entry(*r1) != 0) bad_entry.fetch_add(1);
          if (held && check_entry(held) != 0) bad_entry.fetch_add(1);
          held = *r1;
        } else if (!draining_or(r1.status(), false)) {
          bad_status.fetch_add(1);
        }
        if (auto r2 = reg.find("r", "2"); r2.ok()) {
          if (!(*r2)->ready || check_entry(*r2) != 0) bad_entry.fetch_add(1);
        } else if (!draining_or(r2.status(), true)) {
          bad_status.fetch_add(1);
        }
        for (const auto& e : reg.list())
          if (!e || !e->engine || !e->context) bad_entry.fetch_add(1);
        (void)reg.ready();
      }
    });
  }
  adder.join();
  swapper.join();
  for (auto& r : readers) r.join();

  CHECK(writer_errors.load() == 0);
  CHECK(bad_entry.load() == 0);
  CHECK(bad_status.load() == 0);
  CHECK(backwards.load() == 0);
  CHECK(found.load() > 0);

  // No write was lost: exactly the last kKeep versions of "m", and r/1 holds
  // the engine of the swapper's last step.
  std::vector<std::string> got;
  for (const auto& e : reg.list())
    if (e->name == "m") got.push_back(e->version);
  std::vector<std::string> want;
  for (int i = kSteps + 2 - kKeep; i <= kSteps + 1; ++i) want.push_back(std::to_string(i));
  CHECK(got == want);
  auto r1 = reg.find("r", "1");
  REQUIRE(r1.ok());
  CHECK((*r1)->engine == pool[(kSteps - 1) % kEngines].engine);
  CHECK(reg.find("r", "2").code() == StatusCode::kUnavailable);  // last toggle: not ready
  CHECK_FALSE(reg.draining());
}
