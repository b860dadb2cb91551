// Engines sharing Redis under load, with real redis-server / redis-sentinel
// processes: duplicates on two engines compute once, Redis killed, paused
// (SIGSTOP) and failed over mid-load. Each scenario prints its counts and
// asserts them: no request fails or runs past its deadline.

#include <keel/engine/scoring_engine.hpp>
#include <keel/net/redis/redis_cache.hpp>
#include <keel/net/redis/redis_idempotency.hpp>
#include <keel/net/status_map.hpp>

#include "net/support/redis_process.hpp"
#include "support/fake_models.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <atomic>
#include <thread>

using namespace std::chrono_literals;
using keel::Deadline;
using keel::StatusCode;
using namespace keel::net;

namespace {

struct Replica {
  std::shared_ptr<keel::test::ConstModel> model;
  std::shared_ptr<RedisClient> client;
  std::shared_ptr<RedisCache> cache;
  std::shared_ptr<RedisIdempotencyStore> idem;
  std::unique_ptr<keel::ScoringEngine> engine;
};

RedisOptions direct(int port) {
  RedisOptions o;
  o.address.port = port;
  o.command_timeout = 20ms;
  o.breaker.wait_in_open = 100ms;
  o.breaker.max_wait_in_open = 400ms;
  return o;
}

Replica replica(RedisOptions o) {
  Replica r;
  r.model = std::make_shared<keel::test::ConstModel>(0.5f, 2, 1, "m");
  r.client = std::make_shared<RedisClient>(std::move(o));
  r.cache = std::make_shared<RedisCache>(r.client);
  r.idem = std::make_shared<RedisIdempotencyStore>(r.client);
  r.engine = keel::EngineBuilder()
                 .name("m")
                 .model("primary", r.model)
                 .stage("primary")
                 .cache(r.cache)
                 .idempotency(r.idem)
                 .build();
  return r;
}

struct Counts {
  std::atomic<std::uint64_t> sent{0}, answered{0}, failed{0}, late{0};
  std::uint64_t duplicated = 0;
  void print(const char* scenario) const {
    fmt::print("[{}] sent={} answered={} failed={} late={} duplicated={}\n", scenario, sent.load(), answered.load(),
               failed.load(), late.load(), duplicated);
  }
};

// Scores unique-id rows on `threads` threads until `stop`, each within
// `budget`; a request is late when it returns after its deadline.
void load(keel::ScoringEngine& engine, Counts& c, std::atomic<bool>& stop, int threads, std::chrono::milliseconds budget,
          const char* tag) {
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (std::uint64_t i = 0; !stop.load(); ++i) {
        const float row[] = {static_cast<float>(t), static_cast<float>(i % 50)};  // repeats: cache hits
        keel::Request req;
        req.id = fmt::format("{}-{}-{}", tag, t, i);
        req.features = row;
        const auto t0 = std::chrono::steady_clock::now();
        req.deadline = Deadline::after(budget);
        auto r = engine.score(req);
        const auto took = std::chrono::steady_clock::now() - t0;
        c.sent.fetch_add(1);
        (r.ok() ? c.answered : c.failed).fetch_add(1);
        if (took > budget) c.late.fetch_add(1);
      }
    });
  }
  for (auto& t : ts) t.join();
}

}  // namespace

TEST_CASE("concurrent duplicates on two engines sharing one Redis compute once; another payload is 422",
          "[net][redis][concurrency]") {
  keel::test::RedisServer server;
  // A slow command would (correctly) fall back to local-only idempotency
  // and compute again: this test is about the claim, so Redis gets time.
  RedisOptions o = direct(server.port());
  o.command_timeout = 1000ms;
  Replica a = replica(o);
  Replica b = replica(o);
  REQUIRE(a.client->ping(Deadline::after(1000ms)).is_ok());
  const std::uint64_t canaries = a.model->calls() + b.model->calls();  // build() scored its canary rows
  constexpr int kIds = 200;
  Counts c;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      keel::ScoringEngine& e = (t % 2 == 0 ? *a.engine : *b.engine);
      for (int i = 0; i < kIds; ++i) {
        // Distinct rows per id, so that the cache never answers for the store.
        const float row[] = {static_cast<float>(i), 1.f};
        keel::Request req;
        req.id = fmt::format("dup-{}", i);
        req.features = row;
        req.deadline = Deadline::after(2000ms);
        auto r = e.score(req);
        c.sent.fetch_add(1);
        (r.ok() ? c.answered : c.failed).fetch_add(1);
        if (!r.ok()) INFO(r.status().to_string());
      }
    });
  }
  for (auto& t : ts) t.join();
  const std::uint64_t computed = a.model->calls() + b.model->calls() - canaries;
  c.duplicated = computed - kIds;
  c.print("two engines, same ids");
  INFO("fallbacks: " << a.client->fallbacks("idempotency") + b.client->fallbacks("idempotency"));
  CHECK(c.failed == 0);
  CHECK(computed == kIds);
  CHECK(a.idem->computed() + b.idem->computed() == kIds);
  CHECK(c.duplicated == 0);

  const float other[] = {-1.f, -1.f};
  keel::Request req;
  req.id = "dup-7";
  req.features = other;
  auto r = b.engine->score(req);
  REQUIRE_FALSE(r.ok());
  CHECK(http_status(r.status()) == 422);
}

TEST_CASE("Redis killed mid-load: no request fails or runs late, health degraded; restarted: used again",
          "[net][redis][concurrency]") {
  keel::test::RedisServer server;
  Replica a = replica(direct(server.port()));
  REQUIRE(a.client->ping(Deadline::after(1000ms)).is_ok());
  Counts c;
  std::atomic<bool> stop{false};
  std::thread loader([&] { load(*a.engine, c, stop, 3, 250ms, "kill"); });
  std::this_thread::sleep_for(200ms);
  server.kill();
  std::this_thread::sleep_for(300ms);
  const std::string state_down = a.client->health().state;
  const std::uint64_t fallbacks_down = a.client->fallbacks("cache") + a.client->fallbacks("idempotency");
  server.start();
  const bool back = keel::test::wait_until([&] { return a.client->health().state == "up"; }, 10'000ms);
  const std::uint64_t hits_before = a.cache->stats().hits;
  std::this_thread::sleep_for(300ms);
  stop = true;
  loader.join();
  c.duplicated = a.idem->computed() - c.sent;  // unique ids: each computes once
  c.print("redis killed mid-load");
  CHECK(c.duplicated == 0);
  CHECK(c.failed == 0);
  CHECK(c.late == 0);
  CHECK(state_down != "up");
  CHECK(fallbacks_down > 0);
  CHECK(back);
  CHECK(a.cache->stats().hits > hits_before);  // the restarted Redis serves hits again
}

TEST_CASE("Redis SIGSTOPped mid-load: requests stay within their deadline", "[net][redis][concurrency]") {
  keel::test::RedisServer server;
  Replica a = replica(direct(server.port()));
  REQUIRE(a.client->ping(Deadline::after(1000ms)).is_ok());
  Counts c;
  std::atomic<bool> stop{false};
  // The budget is generous against the 20 ms command timeout: at most four
  // Redis calls per request (claim, lookup, insert, complete).
  std::thread loader([&] { load(*a.engine, c, stop, 3, 400ms, "stop"); });
  std::this_thread::sleep_for(200ms);
  server.pause();
  std::this_thread::sleep_for(600ms);
  const std::string state = a.client->health().state;
  server.resume();
  std::this_thread::sleep_for(200ms);
  stop = true;
  loader.join();
  c.duplicated = a.idem->computed() - c.sent;  // unique ids: each computes once
  c.print("redis SIGSTOPped mid-load");
  CHECK(c.duplicated == 0);
  CHECK(c.failed == 0);
  CHECK(c.late == 0);
  CHECK(state != "up");
  CHECK(a.client->stats().timeouts > 0);
}

TEST_CASE("Sentinel failover of the master under load: the client follows the new master",
          "[net][redis][sentinel][concurrency]") {
  keel::test::RedisServer master;
  keel::test::RedisServerOptions ro;
  ro.replica_of = master.port();
  keel::test::RedisServer replica_server(ro);
  keel::test::RedisSentinelOptions so;
  so.master_port = master.port();
  keel::test::RedisSentinel sentinel(so);

  RedisClient admin(direct(sentinel.port()));  // SENTINEL commands, sent as plain commands
  auto admin_cmd = [&](std::initializer_list<std::string_view> args) {
    return admin.command(args, Deadline::after(1000ms));
  };
  // Sentinel must know the replica before it can promote it.
  REQUIRE(keel::test::wait_until(
      [&] {
        auto r = admin_cmd({"SENTINEL", "replicas", "mymaster"});
        return r.ok() && r->size() >= 1;
      },
      20'000ms));

  RedisOptions o;
  o.sentinel.sentinels = {{"127.0.0.1", sentinel.port()}};
  o.command_timeout = 20ms;
  o.breaker.wait_in_open = 100ms;
  o.breaker.max_wait_in_open = 400ms;
  Replica a = replica(o);
  REQUIRE(a.client->ping(Deadline::after(1000ms)).is_ok());
  CHECK(a.client->master() == fmt::format("127.0.0.1:{}", master.port()));

  Counts c;
  std::atomic<bool> stop{false};
  std::thread loader([&] { load(*a.engine, c, stop, 2, 250ms, "failover"); });
  std::this_thread::sleep_for(200ms);
  auto f = admin_cmd({"SENTINEL", "failover", "mymaster"});
  REQUIRE(f.ok());
  INFO(f->str());
  REQUIRE(f->type() != RedisReply::Type::kError);
  const std::string promoted = fmt::format("127.0.0.1:{}", replica_server.port());
  const bool followed = keel::test::wait_until(
      [&] {
        // Writes reach the new master only once the client re-resolved.
        return a.client->master() == promoted &&
               a.client->command({"SET", "probe", "1"}, Deadline::after(200ms)).ok();
      },
      30'000ms);
  std::this_thread::sleep_for(200ms);
  stop = true;
  loader.join();
  c.duplicated = a.idem->computed() - c.sent;  // unique ids: each computes once
  c.print("sentinel failover under load");
  CHECK(c.duplicated == 0);
  INFO(sentinel.log_tail());
  CHECK(followed);
  CHECK(c.failed == 0);
  CHECK(c.late == 0);
  CHECK(a.client->health().state == "up");
}
