// RedisClient against real redis-server processes: commands, AUTH with an
// ACL user, timeouts against a SIGSTOPped server, reconnect after a restart.

#include <keel/net/redis/redis_client.hpp>

#include "net/support/redis_process.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <thread>

using namespace std::chrono_literals;
using keel::Deadline;
using keel::StatusCode;
using keel::net::RedisClient;
using keel::net::RedisOptions;
using keel::net::RedisReply;

namespace {

RedisOptions local(int port) {
  RedisOptions o;
  o.address.port = port;
  return o;
}

Deadline in(std::chrono::milliseconds d) { return Deadline::after(d); }

keel::test::RedisServerOptions acl(std::string user, std::string pw) {
  keel::test::RedisServerOptions o;
  o.acl_user = std::move(user);
  o.acl_password = std::move(pw);
  return o;
}

keel::net::RedisAuthOptions auth_file(std::string user, std::string file) {
  keel::net::RedisAuthOptions a;
  a.user = std::move(user);
  a.password_file = std::move(file);
  return a;
}

}  // namespace

TEST_CASE("commands round-trip and health says up", "[net][redis]") {
  keel::test::RedisServer server;
  RedisClient c(local(server.port()));
  REQUIRE(c.ping(in(1000ms)).is_ok());
  auto set = c.command({"SET", "k", std::string_view("a\0b", 3), "PX", "60000"}, in(1000ms));
  REQUIRE(set.ok());
  CHECK(set->str() == "OK");
  auto get = c.command({"GET", "k"}, in(1000ms));
  REQUIRE(get.ok());
  CHECK(get->str() == std::string_view("a\0b", 3));
  CHECK(c.command({"GET", "missing"}, in(1000ms))->is_nil());
  auto err = c.command({"INCR", "k"}, in(1000ms));
  REQUIRE(err.ok());  // an error reply is an answer, not a transport failure
  CHECK(err->type() == RedisReply::Type::kError);
  CHECK(c.health().state == "up");
  CHECK(c.up());
  CHECK(c.stats().open <= c.options().pool_size);
}

TEST_CASE("a Lua script runs by SHA, loaded by EVAL when the server lacks it", "[net][redis]") {
  keel::test::RedisServer server;
  RedisClient c(local(server.port()));
  const keel::net::RedisScript script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  const std::string_view keys[] = {"n"};
  const std::string_view args[] = {"5"};
  auto r1 = c.eval(script, keys, args, in(1000ms));
  REQUIRE(r1.ok());
  CHECK(r1->integer() == 5);
  REQUIRE(c.command({"SCRIPT", "FLUSH"}, in(1000ms)).ok());
  auto r2 = c.eval(script, keys, args, in(1000ms));
  REQUIRE(r2.ok());
  CHECK(r2->integer() == 10);
}

TEST_CASE("AUTH with an ACL user; a wrong password is a clear error that never shows the password",
          "[net][redis][auth]") {
  keel::test::TempDir dir;
  keel::test::RedisServer server(acl("keel", "s3cret-pw"));
  const auto pw_file = dir.path() / "pw";
  std::ofstream(pw_file) << "s3cret-pw\n";
  const auto bad_file = dir.path() / "bad";
  std::ofstream(bad_file) << "wrong-pw-123\n";

  SECTION("from a file") {
    RedisOptions o = local(server.port());
    o.auth = auth_file("keel", pw_file.string());
    RedisClient c(o);
    REQUIRE(c.ping(in(1000ms)).is_ok());
    CHECK(c.health().detail.find("s3cret") == std::string::npos);
  }
  SECTION("from the environment") {
    ::setenv("KEEL_TEST_REDIS_PW", "s3cret-pw", 1);
    RedisOptions o = local(server.port());
    o.auth.user = "keel";
    o.auth.password_env = "KEEL_TEST_REDIS_PW";
    RedisClient c(o);
    CHECK(c.ping(in(1000ms)).is_ok());
    ::unsetenv("KEEL_TEST_REDIS_PW");
  }
  SECTION("wrong password") {
    RedisOptions o = local(server.port());
    o.auth = auth_file("keel", bad_file.string());
    RedisClient c(o);
    const keel::Status st = c.ping(in(1000ms));
    INFO(st.message());
    CHECK(st.code() == StatusCode::kUnavailable);
    CHECK(st.message().find("AUTH as user 'keel'") != std::string::npos);
    CHECK(st.message().find("WRONGPASS") != std::string::npos);
    CHECK(st.message().find("wrong-pw-123") == std::string::npos);
    const auto h = c.health();
    CHECK(h.state != "up");
    CHECK(h.detail.find("wrong-pw-123") == std::string::npos);
    keel::MetricsRegistry reg;
    c.register_metrics(reg);
    CHECK(reg.render().find("wrong-pw-123") == std::string::npos);
  }
  SECTION("no password at all") {
    RedisClient c(local(server.port()));
    const keel::Status st = c.ping(in(1000ms));
    CHECK(st.code() == StatusCode::kUnavailable);
    CHECK(st.message().find("NOAUTH") != std::string::npos);
  }
  SECTION("a missing password file is a configuration error naming the file") {
    RedisOptions o = local(server.port());
    o.auth = auth_file("keel", (dir.path() / "nope").string());
    CHECK_THROWS_WITH(RedisClient(o), Catch::Contains("password_file") && Catch::Contains("nope"));
  }
}

TEST_CASE("a SIGSTOPped server costs at most the command timeout, then the breaker opens", "[net][redis]") {
  keel::test::RedisServer server;
  RedisOptions o = local(server.port());
  o.command_timeout = 30ms;
  RedisClient c(o);
  REQUIRE(c.ping(in(1000ms)).is_ok());
  server.pause();
  int timeouts = 0, rejected = 0;
  for (int i = 0; i < 10; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c.command({"GET", "x"}, in(5000ms));
    const auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE_FALSE(r.ok());
    // Generous: 10x the command timeout on a shared, noisy machine.
    CHECK(took < 10 * o.command_timeout);
    if (r.code() == StatusCode::kDeadlineExceeded) ++timeouts;
    if (keel::net::classify(r.status()) == keel::net::RedisFailure::kOpen) ++rejected;
  }
  CHECK(timeouts >= 1);
  CHECK(rejected >= 1);  // the breaker opened and later calls did not wait
  CHECK(c.health().state == "open");
  server.resume();
}

TEST_CASE("the deadline bounds a command below the command timeout", "[net][redis]") {
  keel::test::RedisServer server;
  RedisOptions o = local(server.port());
  o.command_timeout = 2000ms;
  RedisClient c(o);
  REQUIRE(c.ping(in(1000ms)).is_ok());
  server.pause();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c.command({"GET", "x"}, in(40ms));
  const auto took = std::chrono::steady_clock::now() - t0;
  server.resume();
  CHECK(r.code() == StatusCode::kDeadlineExceeded);
  CHECK(took < 1000ms);
}

TEST_CASE("killed, then restarted on the same port: used again without a new client", "[net][redis]") {
  keel::test::RedisServer server;
  RedisOptions o = local(server.port());
  o.breaker.wait_in_open = 100ms;
  RedisClient c(o);
  REQUIRE(c.ping(in(1000ms)).is_ok());
  server.kill();
  for (int i = 0; i < 10; ++i) CHECK_FALSE(c.command({"GET", "x"}, in(1000ms)).ok());
  CHECK(c.health().state != "up");
  server.start();
  const bool back = keel::test::wait_until([&] { return c.ping(in(500ms)).is_ok(); }, 10'000ms);
  CHECK(back);
  CHECK(c.health().state == "up");
}
