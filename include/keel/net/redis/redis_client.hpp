#pragma once
// RedisClient: a bounded pool of blocking hiredis connections to one Redis
// master, found directly or through Sentinel, behind a Keel CircuitBreaker.
//
// hiredis 0.14 (Debian's) has one socket timeout for connect and I/O, and a
// context is dead after its first error, so every connection that fails is
// freed and a new one is made on demand. Every call takes a deadline: the
// socket timeout of a command is min(command_timeout, time left), the wait
// for a free connection min(pool_wait_timeout, time left), so no call
// outlives its caller's deadline by more than the kernel's timer slack.
//
// Failover: in Sentinel mode the master is asked of the sentinels
// (SENTINEL get-master-addr-by-name) and every new connection checks ROLE;
// a connection error or a -READONLY reply marks the address stale, drops
// the idle connections and re-resolves on the next connect, so the client
// follows a promoted replica without a restart.
//
// Credentials (ACL user + password) come from a file or an environment
// variable; the password is sent in AUTH and never appears in a message,
// a log line, health() or the metrics.
//
// Thread-safe: every member may be called concurrently. Reusable for any
// command (the Streams worker's XREADGROUP/XACK/XAUTOCLAIM take a longer
// per-call timeout through `CommandOptions`).

#include <keel/core/clock.hpp>
#include <keel/core/deadline.hpp>
#include <keel/core/result.hpp>
#include <keel/engine/metrics.hpp>
#include <keel/engine/scoring_engine.hpp>
#include <keel/resilience/circuit_breaker.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace keel::net {

struct RedisAddress {
  std::string host = "127.0.0.1";
  int port = 6379;
};

// Where the password comes from; the user name is not a secret.
struct RedisAuthOptions {
  std::string user;           // ACL user; empty: AUTH <password> (the default user)
  std::string password_file;  // first line of the file (trailing newline dropped)
  std::string password_env;   // or this environment variable
  [[nodiscard]] bool enabled() const noexcept { return !password_file.empty() || !password_env.empty(); }
};

struct RedisSentinelOptions {
  std::vector<RedisAddress> sentinels;  // empty: connect to RedisOptions::address directly
  std::string master_name = "mymaster";
};

struct RedisOptions {
  RedisAddress address;  // the server, when no sentinels are given
  RedisSentinelOptions sentinel;
  RedisAuthOptions auth;
  int database = 0;
  std::size_t pool_size = 8;                         // connections at most
  Duration connect_timeout = std::chrono::milliseconds(50);
  Duration command_timeout = std::chrono::milliseconds(20);
  Duration pool_wait_timeout = std::chrono::milliseconds(5);
  // Breaker around Redis. Defaults: trip after 5 calls of which half
  // failed, probe again after 500 ms.
  CircuitBreakerConfig breaker = default_breaker();
  // Reads the breaker's time (real time for sockets and the pool).
  Clock* clock = nullptr;  // nullptr: system_clock()
  std::string name = "redis";  // health component name and metrics label

  static CircuitBreakerConfig default_breaker() {
    CircuitBreakerConfig c;
    c.window_size = 20;
    c.minimum_calls = 5;
    c.failure_rate_threshold = 0.5;
    c.wait_in_open = std::chrono::milliseconds(500);
    c.wait_multiplier = 2.0;
    c.max_wait_in_open = std::chrono::seconds(5);
    c.half_open_probes = 1;
    return c;
  }
};

// Per-call overrides.
struct CommandOptions {
  Duration timeout = Duration::zero();  // zero: RedisOptions::command_timeout
};

// One reply, owning hiredis's reply tree. Move-only; not thread-safe.
class RedisReply {
 public:
  enum class Type : std::uint8_t { kString, kArray, kInteger, kNil, kStatus, kError };

  // A view of one node of the tree, valid while its RedisReply lives.
  class View {
   public:
    [[nodiscard]] Type type() const noexcept;
    [[nodiscard]] bool is_nil() const noexcept { return type() == Type::kNil; }
    [[nodiscard]] std::string_view str() const noexcept;  // string, status or error text
    [[nodiscard]] long long integer() const noexcept;
    [[nodiscard]] std::size_t size() const noexcept;  // array elements
    [[nodiscard]] View operator[](std::size_t i) const noexcept;

   private:
    friend class RedisReply;
    explicit View(const void* r) noexcept : r_(r) {}
    const void* r_;
  };

  RedisReply() = default;
  explicit RedisReply(void* hiredis_reply) noexcept : r_(hiredis_reply) {}
  RedisReply(RedisReply&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  RedisReply& operator=(RedisReply&& o) noexcept;
  RedisReply(const RedisReply&) = delete;
  RedisReply& operator=(const RedisReply&) = delete;
  ~RedisReply();

  [[nodiscard]] View view() const noexcept { return View(r_); }
  [[nodiscard]] Type type() const noexcept { return view().type(); }
  [[nodiscard]] bool is_nil() const noexcept { return view().is_nil(); }
  [[nodiscard]] std::string_view str() const noexcept { return view().str(); }
  [[nodiscard]] long long integer() const noexcept { return view().integer(); }
  [[nodiscard]] std::size_t size() const noexcept { return view().size(); }
  [[nodiscard]] View operator[](std::size_t i) const noexcept { return view()[i]; }

 private:
  void* r_ = nullptr;
};

// A Lua script and its SHA-1, computed once. Immutable; thread-safe.
class RedisScript {
 public:
  explicit RedisScript(std::string lua);
  [[nodiscard]] const std::string& text() const noexcept { return text_; }
  [[nodiscard]] const std::string& sha1() const noexcept { return sha1_; }

 private:
  std::string text_;
  std::string sha1_;  // lower-case hex
};

// Why a call did not reach Redis or got no answer, for fallback counters.
// kBudget: not tried, the request's share of its deadline for Redis was
// spent (RedisCacheOptions / RedisIdempotencyOptions::deadline_share).
enum class RedisFailure : std::uint8_t { kNone, kOpen, kPool, kTimeout, kUnavailable, kError, kBudget };
std::string_view to_string(RedisFailure f) noexcept;
// Classifies a Status returned by RedisClient::command.
RedisFailure classify(const Status& s) noexcept;

// The instant by which a request that started at `t0` must be done with
// Redis: t0 + share x (deadline - t0), so that (1 - share) of its time is
// left for the work Redis only speeds up. share >= 1 or no deadline: the
// deadline itself.
Deadline redis_budget(TimePoint t0, Deadline deadline, double share) noexcept;

struct RedisStats {
  std::uint64_t ok = 0;           // commands answered (an error reply included)
  std::uint64_t round_trips = 0;  // exchanges answered: one per command(), one per pipeline()
  std::uint64_t error_replies = 0;  // -ERR ... answers
  std::uint64_t timeouts = 0;
  std::uint64_t unavailable = 0;  // connect/IO errors, AUTH failures, no master
  std::uint64_t rejected = 0;     // breaker open
  std::uint64_t pool_exhausted = 0;
  std::uint64_t connects = 0;
  std::uint64_t resolves = 0;     // Sentinel lookups that changed or confirmed the master
  std::size_t in_use = 0;
  std::size_t open = 0;           // live connections (idle + in use)
};

class RedisClient {
 public:
  // Reads the password (throws keel::Error naming the file or variable
  // when it is configured but missing). Does not connect: Redis may be
  // down when the process starts.
  explicit RedisClient(RedisOptions opts);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Runs one command. A Redis error reply is kept as a reply (type kError)
  // and is not an error Status, except -READONLY / -MASTERDOWN / -LOADING
  // (kUnavailable: the server cannot take the command now). Errors:
  // kUnavailable (breaker open, connect/IO failure, AUTH refused, no
  // master), kDeadlineExceeded (socket timeout, or the deadline had passed),
  // kOverloaded (no connection free within pool_wait_timeout).
  [[nodiscard]] Result<RedisReply> command(std::span<const std::string_view> args, Deadline deadline,
                                           CommandOptions opts = {}) noexcept;
  [[nodiscard]] Result<RedisReply> command(std::initializer_list<std::string_view> args, Deadline deadline,
                                           CommandOptions opts = {}) noexcept {
    return command(std::span<const std::string_view>(args.begin(), args.size()), deadline, opts);
  }
  // Runs the commands in one round trip (hiredis pipelining: every command
  // written, then every reply read) under one breaker permit, the whole
  // exchange within min(command_timeout, time left). Returns the replies in
  // order; errors and error replies as command() (one -READONLY reply makes
  // the whole call kUnavailable). A failure part way loses every reply: the
  // connection is dropped, and which commands ran is unknown.
  [[nodiscard]] Result<std::vector<RedisReply>> pipeline(std::span<const std::span<const std::string_view>> commands,
                                                         Deadline deadline, CommandOptions opts = {}) noexcept;
  // Runs the script with keys and args (EVALSHA, then EVAL once when the
  // server does not know the script yet, e.g. after a restart or failover).
  [[nodiscard]] Result<RedisReply> eval(const RedisScript& script, std::span<const std::string_view> keys,
                                        std::span<const std::string_view> args, Deadline deadline) noexcept;

  // Deletes every key matching the glob `pattern` (SCAN + UNLINK, in
  // steps of 500 keys) within the deadline.
  [[nodiscard]] Status unlink_matching(std::string_view pattern, Deadline deadline) noexcept;

  // PING through the pool: the clear error of a wrong password or an
  // unreachable master, for start-up checks.
  [[nodiscard]] Status ping(Deadline deadline) noexcept;

  // "up": the breaker is closed and the last call reached Redis;
  // "degraded": the last call failed or the breaker is half-open;
  // "open": calls are refused without trying. Never shows the password.
  [[nodiscard]] ComponentHealth health() const;
  [[nodiscard]] bool up() const noexcept;
  [[nodiscard]] RedisStats stats() const noexcept;
  [[nodiscard]] const RedisOptions& options() const noexcept;
  [[nodiscard]] CircuitBreaker& breaker() noexcept;
  // The master currently used ("host:port"; empty before the first connect).
  [[nodiscard]] std::string master() const;

  // Counts a request that took its fallback because of Redis (`use`:
  // "cache", "idempotency").
  void count_fallback(std::string_view use, RedisFailure reason) noexcept;
  [[nodiscard]] std::uint64_t fallbacks(std::string_view use) const noexcept;

  // keel_redis_commands_total{result}, keel_redis_up, keel_redis_pool_in_use,
  // keel_redis_fallbacks_total{use,reason}, keel_redis_breaker_state, each
  // labelled client=<name>. The registry may outlive the client.
  void register_metrics(MetricsRegistry& registry) const;

  struct State;

 private:
  std::shared_ptr<State> s_;
};

}  // namespace keel::net
