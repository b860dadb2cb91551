#include <keel/net/redis/redis_client.hpp>

#include <fmt/format.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>

namespace keel::net {

// --------------------------------------------------------------------------
// Replies and scripts

namespace {
const redisReply* as_reply(const void* r) noexcept { return static_cast<const redisReply*>(r); }
}  // namespace

RedisReply::Type RedisReply::View::type() const noexcept {
  const redisReply* r = as_reply(r_);
  if (r == nullptr) return Type::kNil;
  switch (r->type) {
    case REDIS_REPLY_STRING: return Type::kString;
    case REDIS_REPLY_ARRAY: return Type::kArray;
    case REDIS_REPLY_INTEGER: return Type::kInteger;
    case REDIS_REPLY_STATUS: return Type::kStatus;
    case REDIS_REPLY_ERROR: return Type::kError;
    default: return Type::kNil;
  }
}

std::string_view RedisReply::View::str() const noexcept {
  const redisReply* r = as_reply(r_);
  if (r == nullptr || r->str == nullptr) return {};
  return {r->str, r->len};
}

long long RedisReply::View::integer() const noexcept {
  const redisReply* r = as_reply(r_);
  return r != nullptr && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
}

std::size_t RedisReply::View::size() const noexcept {
  const redisReply* r = as_reply(r_);
  return r != nullptr && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
}

RedisReply::View RedisReply::View::operator[](std::size_t i) const noexcept {
  return View(i < size() ? as_reply(r_)->element[i] : nullptr);
}

RedisReply& RedisReply::operator=(RedisReply&& o) noexcept {
  if (this != &o) {
    if (r_ != nullptr) freeReplyObject(r_);
    r_ = o.r_;
    o.r_ = nullptr;
  }
  return *this;
}

RedisReply::~RedisReply() {
  if (r_ != nullptr) freeReplyObject(r_);
}

RedisScript::RedisScript(std::string lua) : text_(std::move(lua)) {
  std::array<unsigned char, SHA_DIGEST_LENGTH> d{};
  SHA1(reinterpret_cast<const unsigned char*>(text_.data()), text_.size(), d.data());
  sha1_.reserve(2 * d.size());
  for (unsigned char c : d) sha1_ += fmt::format("{:02x}", c);
}

std::string_view to_string(RedisFailure f) noexcept {
  switch (f) {
    case RedisFailure::kNone: return "none";
    case RedisFailure::kOpen: return "open";
    case RedisFailure::kPool: return "pool";
    case RedisFailure::kTimeout: return "timeout";
    case RedisFailure::kUnavailable: return "unavailable";
    case RedisFailure::kError: return "error";
    case RedisFailure::kBudget: return "budget";
  }
  return "error";
}

RedisFailure classify(const Status& s) noexcept {
  switch (s.code()) {
    case StatusCode::kOk: return RedisFailure::kNone;
    case StatusCode::kDeadlineExceeded: return RedisFailure::kTimeout;
    case StatusCode::kOverloaded: return RedisFailure::kPool;
    case StatusCode::kUnavailable:
      return s.message().find("circuit") != std::string::npos ? RedisFailure::kOpen : RedisFailure::kUnavailable;
    default: return RedisFailure::kError;
  }
}

Deadline redis_budget(TimePoint t0, Deadline deadline, double share) noexcept {
  if (share >= 1.0 || deadline.is_never()) return deadline;
  const Duration left = deadline.remaining(t0);
  return Deadline(t0 + std::chrono::duration_cast<Duration>(left * std::max(share, 0.0)));
}

// --------------------------------------------------------------------------
// State

namespace {

constexpr std::array<std::string_view, 2> kUses{"cache", "idempotency"};
constexpr std::size_t kReasons = 7;  // RedisFailure values

struct Conn {
  redisContext* ctx = nullptr;
  std::uint64_t gen = 0;
  Duration timeout{-1};  // what the socket is set to now
  ~Conn() {
    if (ctx != nullptr) redisFree(ctx);
  }
};

timeval to_timeval(Duration d) noexcept {
  // A zero timeval means "no timeout" to the kernel: never send one.
  const auto us = std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  return timeval{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
}

std::string read_password(const RedisAuthOptions& a) {
  if (!a.password_file.empty()) {
    std::ifstream in(a.password_file, std::ios::binary);
    if (!in) throw Error(StatusCode::kInvalidInput, fmt::format("redis auth: password_file '{}' cannot be read",
                                                                a.password_file));
    std::string pw;
    std::getline(in, pw);
    if (!pw.empty() && pw.back() == '\r') pw.pop_back();
    if (pw.empty()) throw Error(StatusCode::kInvalidInput, fmt::format("redis auth: password_file '{}' is empty",
                                                                       a.password_file));
    return pw;
  }
  const char* v = std::getenv(a.password_env.c_str());
  if (v == nullptr || *v == '\0') {
    throw Error(StatusCode::kInvalidInput,
                fmt::format("redis auth: environment variable '{}' is not set or empty", a.password_env));
  }
  return v;
}

std::string addr_string(const RedisAddress& a) { return fmt::format("{}:{}", a.host, a.port); }

bool starts_with(std::string_view s, std::string_view p) noexcept { return s.substr(0, p.size()) == p; }

}  // namespace

struct RedisClient::State {
  RedisOptions opts;
  std::string password;  // never formatted anywhere
  Clock* clock = nullptr;
  std::unique_ptr<CircuitBreaker> breaker;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::vector<std::unique_ptr<Conn>> idle;  // guarded by mu
  std::size_t open = 0;                     // guarded by mu: idle + in use + connecting
  std::uint64_t gen = 1;                    // guarded by mu: bumped when the master may have changed
  std::optional<RedisAddress> master;       // guarded by mu
  bool master_stale = true;                 // guarded by mu
  std::size_t next_sentinel = 0;            // guarded by mu
  std::string last_error;                   // guarded by mu

  std::atomic<std::size_t> in_use{0};
  std::atomic<bool> last_ok{true};
  std::atomic<std::uint64_t> n_ok{0}, n_round_trips{0}, n_error_replies{0}, n_timeouts{0}, n_unavailable{0}, n_rejected{0},
      n_pool_exhausted{0}, n_connects{0}, n_resolves{0};
  std::array<std::array<std::atomic<std::uint64_t>, kReasons>, kUses.size()> fallbacks{};

  [[nodiscard]] bool sentinel_mode() const noexcept { return !opts.sentinel.sentinels.empty(); }

  void note_error(const Status& st) {
    last_ok.store(false, std::memory_order_relaxed);
    std::lock_guard lock(mu);
    last_error = st.message();
  }

  // The master may have moved: forget its address (Sentinel mode) and
  // retire every idle connection.
  void invalidate() {
    std::lock_guard lock(mu);
    ++gen;
    if (sentinel_mode()) master_stale = true;
    drop_idle();
  }

  void drop_idle() {  // under mu
    open -= idle.size();
    idle.clear();
  }

  // Sets the socket timeout only when it changes (two setsockopt calls).
  static bool set_timeout(Conn& c, Duration t) noexcept {
    if (c.timeout == t) return true;
    if (redisSetTimeout(c.ctx, to_timeval(t)) != REDIS_OK) return false;
    c.timeout = t;
    return true;
  }

  // One round trip on `c`. On a transport error the context is dead.
  static Result<RedisReply> exec(Conn& c, std::span<const std::string_view> args, Duration timeout,
                                 std::string_view what) noexcept {
    try {
      if (!set_timeout(c, timeout)) return unavailable(fmt::format("redis: {}: cannot set the socket timeout", what));
      std::vector<const char*> argv(args.size());
      std::vector<std::size_t> lens(args.size());
      for (std::size_t i = 0; i < args.size(); ++i) {
        argv[i] = args[i].data();
        lens[i] = args[i].size();
      }
      errno = 0;
      void* r = redisCommandArgv(c.ctx, static_cast<int>(args.size()), argv.data(), lens.data());
      const int err = errno;
      if (r == nullptr) {
        if (c.ctx->err == REDIS_ERR_IO && (err == EAGAIN || err == EWOULDBLOCK)) {
          return deadline_exceeded(fmt::format("redis: {}: no answer within {} ms", what,
                                               std::chrono::duration<double, std::milli>(timeout).count()));
        }
        return unavailable(fmt::format("redis: {}: {}", what, c.ctx->errstr));
      }
      return RedisReply(r);
    } catch (...) {
      return internal_error("redis: out of memory");
    }
  }

  // Sets the socket timeout to what is left until `end` when that is
  // shorter than the current one (by more than a quarter millisecond, so a
  // healthy exchange costs no setsockopt per read): no read or write of a
  // pipeline outlives `end` by more than that.
  static Result<bool> shrink_timeout(Conn& c, std::chrono::steady_clock::time_point end, std::string_view what) noexcept {
    const Duration left = std::chrono::duration_cast<Duration>(end - std::chrono::steady_clock::now());
    if (left <= Duration::zero()) return deadline_exceeded(fmt::format("redis: {}: no answer in time", what));
    if (c.timeout - left > std::chrono::microseconds(250) && !set_timeout(c, left)) {
      return unavailable(fmt::format("redis: {}: cannot set the socket timeout", what));
    }
    return true;
  }

  static Status io_failure(Conn& c, int err, Duration budget, std::string_view what) {
    if (c.ctx->err == REDIS_ERR_IO && (err == EAGAIN || err == EWOULDBLOCK)) {
      return deadline_exceeded(fmt::format("redis: {}: no answer within {} ms", what,
                                           std::chrono::duration<double, std::milli>(budget).count()));
    }
    return unavailable(fmt::format("redis: {}: {}", what, c.ctx->errstr));
  }

  // One round trip on `c` for every command: all written, then all replies
  // read, within `budget` in all. On a transport error the context is dead.
  static Result<std::vector<RedisReply>> exec_pipeline(Conn& c, std::span<const std::span<const std::string_view>> cmds,
                                                       Duration budget, std::string_view what) noexcept {
    try {
      const auto end = std::chrono::steady_clock::now() + budget;
      if (!set_timeout(c, budget)) return unavailable(fmt::format("redis: {}: cannot set the socket timeout", what));
      std::vector<const char*> argv;
      std::vector<std::size_t> lens;
      for (std::span<const std::string_view> cmd : cmds) {
        argv.resize(cmd.size());
        lens.resize(cmd.size());
        for (std::size_t i = 0; i < cmd.size(); ++i) {
          argv[i] = cmd[i].data();
          lens[i] = cmd[i].size();
        }
        if (redisAppendCommandArgv(c.ctx, static_cast<int>(cmd.size()), argv.data(), lens.data()) != REDIS_OK) {
          return internal_error("redis: out of memory");
        }
      }
      for (int done = 0; done == 0;) {
        if (Result<bool> t = shrink_timeout(c, end, what); !t.ok()) return t.status();
        errno = 0;
        if (redisBufferWrite(c.ctx, &done) != REDIS_OK) return io_failure(c, errno, budget, what);
      }
      std::vector<RedisReply> replies;
      replies.reserve(cmds.size());
      while (replies.size() < cmds.size()) {
        void* r = nullptr;
        if (redisGetReplyFromReader(c.ctx, &r) != REDIS_OK) return unavailable(fmt::format("redis: {}: {}", what, c.ctx->errstr));
        if (r == nullptr) {
          if (Result<bool> t = shrink_timeout(c, end, what); !t.ok()) return t.status();
          errno = 0;
          if (redisBufferRead(c.ctx) != REDIS_OK) return io_failure(c, errno, budget, what);
          continue;
        }
        replies.emplace_back(r);
      }
      return replies;
    } catch (...) {
      return internal_error("redis: out of memory");
    }
  }

  // What a command's (or a pipeline's) outcome does to the pool, the
  // breaker and the counters: the part command() and pipeline() share.
  // `exchange(conn, socket timeout)` makes the round trip.
  template <class T, class Exchange>
  Result<T> call(Deadline deadline, CommandOptions copts, std::size_t n_commands, Exchange&& exchange) noexcept {
    try {
      const TimePoint now = clock->now();
      if (deadline.expired(now)) return deadline_exceeded("redis: deadline passed before the command");
      CircuitBreaker::Permit permit = breaker->try_acquire(now);
      if (!permit) {
        n_rejected.fetch_add(1, std::memory_order_relaxed);
        return unavailable(fmt::format("redis: circuit {}", to_string(breaker->state())));
      }
      Result<std::unique_ptr<Conn>> conn = acquire(deadline);
      if (!conn.ok()) {
        if (conn.code() == StatusCode::kOverloaded) {
          breaker->release(permit);  // a local wait, not Redis's failure
        } else {
          breaker->record(permit, conn.code(), Duration::zero(), clock->now());
          (conn.code() == StatusCode::kDeadlineExceeded ? n_timeouts : n_unavailable).fetch_add(1);
          note_error(conn.status());
        }
        return conn.status();
      }
      const Duration base = copts.timeout > Duration::zero() ? copts.timeout : opts.command_timeout;
      const Duration left = deadline.remaining(clock->now());
      if (left <= Duration::zero()) {
        give_back(std::move(*conn));
        breaker->release(permit);
        return deadline_exceeded("redis: deadline passed waiting for a connection");
      }
      Result<T> r = exchange(**conn, std::min(base, left));
      const TimePoint end = clock->now();
      if (!r.ok()) {
        discard();  // hiredis: the context is dead after an error
        conn->reset();
        invalidate();
        (r.code() == StatusCode::kDeadlineExceeded ? n_timeouts : n_unavailable).fetch_add(1);
        breaker->record(permit, r.code(), end - now, end);
        note_error(r.status());
        return r;
      }
      std::size_t errors = 0;
      const std::string_view not_ready = scan_errors(*r, errors);
      if (!not_ready.empty()) {
        // A demoted master or a server not ready: look for the master again.
        Status st = unavailable(fmt::format("redis: {}", not_ready));
        discard();
        conn->reset();
        invalidate();
        n_unavailable.fetch_add(1);
        breaker->record(permit, st.code(), end - now, end);
        note_error(st);
        return st;
      }
      n_error_replies.fetch_add(errors, std::memory_order_relaxed);
      n_ok.fetch_add(n_commands, std::memory_order_relaxed);
      n_round_trips.fetch_add(1, std::memory_order_relaxed);
      last_ok.store(true, std::memory_order_relaxed);
      breaker->record(permit, StatusCode::kOk, end - now, end);
      give_back(std::move(*conn));
      return r;
    } catch (...) {
      return internal_error("redis: out of memory");
    }
  }

  // Counts error replies; returns the text of the first that means the
  // server cannot take commands now (-READONLY, -MASTERDOWN, -LOADING).
  static std::string_view scan_errors(const RedisReply& r, std::size_t& errors) noexcept {
    if (r.type() != RedisReply::Type::kError) return {};
    const std::string_view e = r.str();
    if (starts_with(e, "READONLY") || starts_with(e, "MASTERDOWN") || starts_with(e, "LOADING")) return e;
    ++errors;
    return {};
  }
  static std::string_view scan_errors(const std::vector<RedisReply>& rs, std::size_t& errors) noexcept {
    for (const RedisReply& r : rs) {
      if (const std::string_view e = scan_errors(r, errors); !e.empty()) return e;
    }
    return {};
  }

  // Asks the sentinels for the master. A fresh client takes the first
  // answer; after a failure (the master marked stale) every sentinel is
  // asked, because during a failover they learn the new master one by one
  // (through hello messages, every 2 s): when they disagree, an address
  // other than the one that failed wins.
  Result<RedisAddress> resolve(Deadline deadline) {
    std::size_t start = 0;
    std::optional<RedisAddress> failed;
    {
      std::lock_guard lock(mu);
      if (master && !master_stale) return *master;
      start = next_sentinel;
      failed = master;
    }
    const auto& list = opts.sentinel.sentinels;
    std::string errors;
    std::optional<RedisAddress> pick;
    std::size_t picked = start;
    for (std::size_t k = 0; k < list.size(); ++k) {
      const std::size_t i = (start + k) % list.size();
      const Duration left = deadline.remaining(clock->now());
      if (left <= Duration::zero()) break;
      Conn c;
      c.ctx = redisConnectWithTimeout(list[i].host.c_str(), list[i].port, to_timeval(std::min(opts.connect_timeout, left)));
      if (c.ctx == nullptr || c.ctx->err != 0) {
        errors += fmt::format(" {}: {};", addr_string(list[i]), c.ctx ? c.ctx->errstr : "out of memory");
        continue;
      }
      const std::string_view args[] = {"SENTINEL", "get-master-addr-by-name", opts.sentinel.master_name};
      Result<RedisReply> r = exec(c, args, std::min(opts.command_timeout, left), "sentinel");
      if (!r.ok()) {
        errors += fmt::format(" {}: {};", addr_string(list[i]), r.status().message());
        continue;
      }
      if (r->type() != RedisReply::Type::kArray || r->size() != 2) {
        errors += fmt::format(" {}: does not know master '{}';", addr_string(list[i]), opts.sentinel.master_name);
        continue;
      }
      RedisAddress a;
      a.host = std::string((*r)[0].str());
      a.port = std::atoi(std::string((*r)[1].str()).c_str());
      const bool same_as_failed = failed && failed->host == a.host && failed->port == a.port;
      if (!pick || (!same_as_failed && failed && pick->host == failed->host && pick->port == failed->port)) {
        pick = a;
        picked = i;
      }
      if (!failed || !same_as_failed) break;  // a fresh client, or an answer that moved on
    }
    if (!pick) {
      return unavailable(fmt::format("redis: no sentinel answered for master '{}':{}", opts.sentinel.master_name,
                                     errors.empty() ? " deadline passed" : errors));
    }
    n_resolves.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(mu);
    if (!master || master->host != pick->host || master->port != pick->port) {
      ++gen;  // connections to the old master retire
      drop_idle();
    }
    master = *pick;
    master_stale = false;
    next_sentinel = picked;
    return *pick;
  }

  // A new connection: TCP, AUTH, SELECT, and ROLE in Sentinel mode.
  Result<std::unique_ptr<Conn>> connect(Deadline deadline, std::uint64_t g) {
    RedisAddress addr = opts.address;
    if (sentinel_mode()) {
      Result<RedisAddress> m = resolve(deadline);
      if (!m.ok()) return m.status();
      addr = *m;
    }
    const Duration left = deadline.remaining(clock->now());
    if (left <= Duration::zero()) return deadline_exceeded("redis: deadline passed before connecting");
    auto c = std::make_unique<Conn>();
    c->gen = g;
    n_connects.fetch_add(1, std::memory_order_relaxed);
    c->ctx = redisConnectWithTimeout(addr.host.c_str(), addr.port, to_timeval(std::min(opts.connect_timeout, left)));
    if (c->ctx == nullptr) return unavailable("redis: out of memory connecting");
    if (c->ctx->err != 0) {
      if (sentinel_mode()) invalidate();
      return unavailable(fmt::format("redis: connect to {}: {}", addr_string(addr), c->ctx->errstr));
    }
    const Duration t = std::min(opts.command_timeout, left);
    if (!password.empty()) {
      std::vector<std::string_view> args{"AUTH"};
      if (!opts.auth.user.empty()) args.push_back(opts.auth.user);
      args.push_back(password);
      Result<RedisReply> r = exec(*c, args, t, "AUTH");
      if (!r.ok()) return r.status();
      if (r->type() == RedisReply::Type::kError) {
        // The server's text (WRONGPASS ...) names no secret.
        return unavailable(fmt::format("redis: AUTH as user '{}' at {} refused: {}",
                                       opts.auth.user.empty() ? "default" : opts.auth.user, addr_string(addr),
                                       r->str()));
      }
    }
    if (opts.database != 0) {
      const std::string db = std::to_string(opts.database);
      const std::string_view args[] = {"SELECT", db};
      Result<RedisReply> r = exec(*c, args, t, "SELECT");
      if (!r.ok()) return r.status();
      if (r->type() == RedisReply::Type::kError) {
        return unavailable(fmt::format("redis: SELECT {} at {}: {}", db, addr_string(addr), r->str()));
      }
    }
    if (sentinel_mode()) {
      const std::string_view args[] = {"ROLE"};
      Result<RedisReply> r = exec(*c, args, t, "ROLE");
      if (!r.ok()) return r.status();
      if (r->type() != RedisReply::Type::kArray || r->size() == 0 || (*r)[0].str() != "master") {
        invalidate();
        return unavailable(fmt::format("redis: {} is not the master (ROLE {})", addr_string(addr),
                                       r->size() ? (*r)[0].str() : r->str()));
      }
    }
    return c;
  }

  // A connection within min(pool_wait_timeout, deadline), or kOverloaded.
  Result<std::unique_ptr<Conn>> acquire(Deadline deadline) {
    std::unique_lock lock(mu);
    const TimePoint now = clock->now();
    const Duration wait = std::min(opts.pool_wait_timeout, deadline.remaining(now));
    const auto until = std::chrono::steady_clock::now() + wait;
    for (;;) {
      while (!idle.empty()) {
        std::unique_ptr<Conn> c = std::move(idle.back());
        idle.pop_back();
        if (c->gen == gen) {
          in_use.fetch_add(1, std::memory_order_relaxed);
          return c;
        }
        --open;  // from before a failover: drop it
      }
      if (open < opts.pool_size) {
        ++open;
        in_use.fetch_add(1, std::memory_order_relaxed);
        const std::uint64_t g = gen;
        lock.unlock();
        Result<std::unique_ptr<Conn>> c = connect(deadline, g);
        if (!c.ok()) {
          discard();
          return c.status();
        }
        return c;
      }
      if (cv.wait_until(lock, until) == std::cv_status::timeout && idle.empty() && open >= opts.pool_size) {
        n_pool_exhausted.fetch_add(1, std::memory_order_relaxed);
        return overloaded(fmt::format("redis: all {} connections busy for {} ms", opts.pool_size,
                                      std::chrono::duration<double, std::milli>(wait).count()));
      }
    }
  }

  void give_back(std::unique_ptr<Conn> c) {
    in_use.fetch_sub(1, std::memory_order_relaxed);
    {
      std::lock_guard lock(mu);
      if (c->gen == gen) {
        idle.push_back(std::move(c));
      } else {
        --open;
      }
    }
    cv.notify_one();
  }

  // A connection that failed (or never connected) leaves the pool.
  void discard() {
    in_use.fetch_sub(1, std::memory_order_relaxed);
    {
      std::lock_guard lock(mu);
      --open;
    }
    cv.notify_one();
  }
};

// --------------------------------------------------------------------------
// RedisClient

RedisClient::RedisClient(RedisOptions opts) : s_(std::make_shared<State>()) {
  if (opts.pool_size == 0) throw Error(StatusCode::kInvalidInput, "redis: pool_size must be at least 1");
  if (opts.command_timeout <= Duration::zero() || opts.connect_timeout <= Duration::zero()) {
    throw Error(StatusCode::kInvalidInput, "redis: connect_timeout and command_timeout must be positive");
  }
  s_->clock = opts.clock != nullptr ? opts.clock : &system_clock();
  if (opts.auth.enabled()) s_->password = read_password(opts.auth);
  s_->breaker = std::make_unique<CircuitBreaker>("redis:" + opts.name, opts.breaker, *s_->clock);
  s_->opts = std::move(opts);
}

RedisClient::~RedisClient() = default;

const RedisOptions& RedisClient::options() const noexcept { return s_->opts; }
CircuitBreaker& RedisClient::breaker() noexcept { return *s_->breaker; }

Result<RedisReply> RedisClient::command(std::span<const std::string_view> args, Deadline deadline,
                                        CommandOptions copts) noexcept {
  return s_->call<RedisReply>(deadline, copts, 1, [&](Conn& c, Duration timeout) {
    return State::exec(c, args, timeout, args.empty() ? "" : args[0]);
  });
}

Result<std::vector<RedisReply>> RedisClient::pipeline(std::span<const std::span<const std::string_view>> commands,
                                                      Deadline deadline, CommandOptions copts) noexcept {
  if (commands.empty()) return std::vector<RedisReply>{};
  const std::string_view what = commands[0].empty() ? "" : commands[0][0];
  return s_->call<std::vector<RedisReply>>(deadline, copts, commands.size(), [&](Conn& c, Duration timeout) {
    return State::exec_pipeline(c, commands, timeout, what);
  });
}

Result<RedisReply> RedisClient::eval(const RedisScript& script, std::span<const std::string_view> keys,
                                     std::span<const std::string_view> args, Deadline deadline) noexcept {
  try {
    const std::string nkeys = std::to_string(keys.size());
    std::vector<std::string_view> argv;
    argv.reserve(3 + keys.size() + args.size());
    argv.insert(argv.end(), {"EVALSHA", script.sha1(), nkeys});
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    Result<RedisReply> r = command(argv, deadline);
    if (r.ok() && r->type() == RedisReply::Type::kError && starts_with(r->str(), "NOSCRIPT")) {
      argv[0] = "EVAL";
      argv[1] = script.text();
      return command(argv, deadline);
    }
    return r;
  } catch (...) {
    return internal_error("redis: out of memory");
  }
}

Status RedisClient::unlink_matching(std::string_view pattern, Deadline deadline) noexcept {
  try {
    std::string cursor = "0";
    do {
      Result<RedisReply> r = command({"SCAN", cursor, "MATCH", pattern, "COUNT", "500"}, deadline);
      if (!r.ok()) return r.status();
      if (r->type() != RedisReply::Type::kArray || r->size() != 2) {
        return unavailable(fmt::format("redis: SCAN: {}", r->str()));
      }
      cursor = std::string((*r)[0].str());
      const RedisReply::View keys = (*r)[1];
      if (keys.size() == 0) continue;
      std::vector<std::string_view> argv{"UNLINK"};
      for (std::size_t i = 0; i < keys.size(); ++i) argv.push_back(keys[i].str());
      if (Result<RedisReply> d = command(argv, deadline); !d.ok()) return d.status();
    } while (cursor != "0");
    return Status::ok();
  } catch (...) {
    return internal_error("redis: out of memory");
  }
}

Status RedisClient::ping(Deadline deadline) noexcept {
  Result<RedisReply> r = command({"PING"}, deadline);
  if (!r.ok()) return r.status();
  if (r->type() == RedisReply::Type::kError) return unavailable(fmt::format("redis: PING: {}", r->str()));
  return Status::ok();
}

bool RedisClient::up() const noexcept {
  return s_->breaker->state() == BreakerState::kClosed && s_->last_ok.load(std::memory_order_relaxed);
}

std::string RedisClient::master() const {
  std::lock_guard lock(s_->mu);
  if (!s_->sentinel_mode()) return addr_string(s_->opts.address);
  return s_->master ? addr_string(*s_->master) : std::string();
}

RedisStats RedisClient::stats() const noexcept {
  const State& s = *s_;
  RedisStats t;
  t.ok = s.n_ok.load();
  t.round_trips = s.n_round_trips.load();
  t.error_replies = s.n_error_replies.load();
  t.timeouts = s.n_timeouts.load();
  t.unavailable = s.n_unavailable.load();
  t.rejected = s.n_rejected.load();
  t.pool_exhausted = s.n_pool_exhausted.load();
  t.connects = s.n_connects.load();
  t.resolves = s.n_resolves.load();
  t.in_use = s.in_use.load();
  std::lock_guard lock(s.mu);
  t.open = s.open;
  return t;
}

ComponentHealth RedisClient::health() const {
  const State& s = *s_;
  const BreakerState bs = s.breaker->state();
  ComponentHealth h;
  h.name = s.opts.name;
  if (bs == BreakerState::kOpen || bs == BreakerState::kForcedOpen) {
    h.state = "open";
  } else if (bs == BreakerState::kHalfOpen || !s.last_ok.load()) {
    h.state = "degraded";
  } else {
    h.state = "up";
  }
  h.ok = h.state == "up";
  const RedisStats st = stats();
  std::string last;
  {
    std::lock_guard lock(s.mu);
    last = s.last_error;
  }
  h.detail = fmt::format("master={} user={} pool={}/{} ok={} timeouts={} unavailable={} rejected={} "
                         "pool_exhausted={} connects={}{}{}",
                         master().empty() ? "unresolved" : master(),
                         s.opts.auth.user.empty() ? (s.password.empty() ? "none" : "default") : s.opts.auth.user,
                         st.in_use, s.opts.pool_size, st.ok, st.timeouts, st.unavailable, st.rejected,
                         st.pool_exhausted, st.connects, last.empty() ? "" : " last_error=", last);
  return h;
}

void RedisClient::count_fallback(std::string_view use, RedisFailure reason) noexcept {
  const std::size_t u = use == kUses[0] ? 0 : 1;
  s_->fallbacks[u][static_cast<std::size_t>(reason) % kReasons].fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t RedisClient::fallbacks(std::string_view use) const noexcept {
  const std::size_t u = use == kUses[0] ? 0 : 1;
  std::uint64_t n = 0;
  for (const auto& c : s_->fallbacks[u]) n += c.load(std::memory_order_relaxed);
  return n;
}

void RedisClient::register_metrics(MetricsRegistry& reg) const {
  std::shared_ptr<State> s = s_;
  const std::string client = s->opts.name;
  static constexpr const char* kCmd = "keel_redis_commands_total";
  static constexpr const char* kCmdHelp =
      "Redis commands by result (ok includes error replies; rejected: breaker open; pool: no free connection).";
  auto cmd = [&](const char* result, std::atomic<std::uint64_t> State::*field) {
    reg.counter_fn(kCmd, kCmdHelp, {{"client", client}, {"result", result}},
                   [s, field] { return static_cast<double>(((*s).*field).load(std::memory_order_relaxed)); });
  };
  cmd("ok", &State::n_ok);
  cmd("timeout", &State::n_timeouts);
  cmd("unavailable", &State::n_unavailable);
  cmd("rejected", &State::n_rejected);
  cmd("pool_exhausted", &State::n_pool_exhausted);
  reg.counter_fn("keel_redis_error_replies_total", "Redis error replies (-ERR ...), counted in ok as well.",
                 {{"client", client}}, [s] { return static_cast<double>(s->n_error_replies.load()); });
  reg.gauge_fn("keel_redis_up", "1 when the Redis breaker is closed and the last command reached Redis.",
               {{"client", client}}, [s] {
                 return s->breaker->state() == BreakerState::kClosed && s->last_ok.load() ? 1.0 : 0.0;
               });
  reg.gauge_fn("keel_redis_pool_in_use", "Redis connections in use (or connecting).", {{"client", client}},
               [s] { return static_cast<double>(s->in_use.load()); });
  reg.gauge_fn("keel_redis_breaker_state",
               "Redis circuit breaker state: 0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled.",
               {{"client", client}}, [s] { return static_cast<double>(s->breaker->state()); });
  for (std::size_t u = 0; u < kUses.size(); ++u) {
    for (std::size_t r = 1; r < kReasons; ++r) {
      reg.counter_fn("keel_redis_fallbacks_total",
                     "Requests that took the local path (cache miss, local-only idempotency) because of Redis.",
                     {{"client", client}, {"use", std::string(kUses[u])},
                      {"reason", std::string(to_string(static_cast<RedisFailure>(r)))}},
                     [s, u, r] { return static_cast<double>(s->fallbacks[u][r].load()); });
    }
  }
}

}  // namespace keel::net
