#include <keel/net/remote/remote_model.hpp>

#include "net/remote/grpc_exchange.hpp"
#include "net/remote/http_connection.hpp"
#include "net/remote/oip_wire.hpp"

#include <keel/net/status_map.hpp>

#include <keel/resilience/executor.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

namespace keel::net {
using remote::HttpConnection;

namespace {

std::int64_t ticks(TimePoint t) { return t.time_since_epoch().count(); }

std::minstd_rand& rng() {
  thread_local std::minstd_rand r(std::random_device{}() ^
                                  static_cast<unsigned>(std::hash<std::thread::id>{}(std::this_thread::get_id())));
  return r;
}

}  // namespace

struct EndpointState {
  RemoteEndpoint cfg;
  std::string address;
  bool local = false;

  std::mutex pool_mu;
  std::vector<std::unique_ptr<HttpConnection>> idle;
  std::atomic<std::size_t> in_flight{0};

  std::atomic<std::uint32_t> consecutive{0};
  std::atomic<bool> healthy{true};
  // Written under State::eject_mu, read lock-free by the balancer.
  std::atomic<std::int64_t> ejected_until{std::numeric_limits<std::int64_t>::min()};
  std::uint32_t multiplier = 0;  // guarded by State::eject_mu

  std::mutex ewma_mu;
  double ewma_ns = 0;  // guarded by ewma_mu
  TimePoint ewma_at{};
  std::atomic<double> cost_base{0};  // ewma_ns as last written, for lock-free reads
  std::atomic<std::int64_t> cost_at{0};  // when, in ticks of system_clock()

  std::atomic<std::uint64_t> answers{0}, failures{0}, overloaded{0}, ejections{0};
  std::unique_ptr<HttpConnection> health_conn;  // the health thread's only
  std::unique_ptr<remote::GrpcEndpoint> grpc;   // the gRPC transport's channel

  [[nodiscard]] bool ejected(TimePoint now) const noexcept {
    return ticks(now) < ejected_until.load(std::memory_order_acquire);
  }
};

// What one attempt came to: answered (the scores are written), try
// another endpoint, or the call's answer as it stands (the request's fault).
enum class Verdict : std::uint8_t { kAnswered, kNext, kFinal };
struct Attempt {
  Verdict verdict = Verdict::kNext;
  Status status;
};

struct AttemptHooks {
  remote::ExchangeHook exchange;
  // Set by the transport before its exchange: read in exchange.fire, it
  // gives a function that interrupts this exchange (and no later one).
  std::function<std::function<void()>()> interrupter;
  std::function<void()> over;  // the exchange is over; before its connection or call state goes
};

// One request's rows as a transport sends them: REST's JSON body, or
// gRPC's raw tensor bytes.
struct Payload {
  std::string text;
  bool fp64 = false;
  std::size_t n_rows = 0;
};

// A hedged attempt's shared state: the hedge may outlive the call.
struct HedgeCall {
  std::mutex mu;
  std::condition_variable cv;
  bool primary_done = false;  // the primary's exchange is over: do not interrupt it
  bool hedge_running = false;
  bool hedge_done = false;
  std::function<void()> interrupt_primary;
  Attempt hedge;
  std::vector<float> scores;
  // Copies for the hedge thread (the caller's may be gone when it runs).
  Payload payload;
  Deadline deadline;
};

// The hedge delay (a quantile of recent answer times) and the budget.
// The histogram has quarter-octave buckets of nanoseconds and is halved
// every kWindow samples so that it follows the recent answers; concurrent
// updates may lose a count now and then, which only blurs the estimate.
struct Hedger {
  static constexpr int kBuckets = 160;  // up to 2^40 ns
  static constexpr std::uint32_t kWindow = 4096;
  static constexpr std::int64_t kHedge = 1000;  // milli-hedges in a hedge
  HedgeOptions o;
  std::array<std::atomic<std::uint32_t>, kBuckets> hist{};
  std::atomic<std::uint32_t> count{0}, since_update{0};
  std::atomic<std::int64_t> delay_ns{-1};
  std::atomic<std::int64_t> tokens{0};  // milli-hedges saved
  std::int64_t per_call = 0, cap = 0;
  std::atomic<std::uint64_t> launched{0}, won{0}, no_budget{0};
  std::unique_ptr<BoundedExecutor> pool;

  explicit Hedger(const HedgeOptions& opts) : o(opts) {
    per_call = static_cast<std::int64_t>(std::llround(o.budget_percent * 10.0));
    cap = static_cast<std::int64_t>(std::llround(o.burst * 1000.0));
    tokens.store(cap);
    pool = std::make_unique<BoundedExecutor>(ExecutorConfig{o.threads, 4 * static_cast<std::size_t>(o.threads)});
  }

  static int bucket(double ns) {
    if (ns < 1) return 0;
    return std::clamp(static_cast<int>(std::log2(ns) * 4), 0, kBuckets - 1);
  }

  void record(Duration rtt) {
    hist[static_cast<std::size_t>(bucket(static_cast<double>(rtt.count())))].fetch_add(1, std::memory_order_relaxed);
    if (count.fetch_add(1, std::memory_order_relaxed) + 1 >= kWindow) {
      std::uint32_t total = 0;
      for (auto& h : hist) {
        const std::uint32_t v = h.load(std::memory_order_relaxed) / 2;
        h.store(v, std::memory_order_relaxed);
        total += v;
      }
      count.store(total, std::memory_order_relaxed);
    }
    if (since_update.fetch_add(1, std::memory_order_relaxed) + 1 >= 16) {
      since_update.store(0, std::memory_order_relaxed);
      update();
    }
  }

  void update() {
    std::array<std::uint32_t, kBuckets> snap{};
    std::uint64_t total = 0;
    for (int i = 0; i < kBuckets; ++i) total += snap[static_cast<std::size_t>(i)] = hist[static_cast<std::size_t>(i)].load(std::memory_order_relaxed);
    if (total < o.min_samples || total == 0) {
      delay_ns.store(-1, std::memory_order_relaxed);
      return;
    }
    const double want = o.quantile * static_cast<double>(total);
    double acc = 0;
    int b = kBuckets - 1;
    for (int i = 0; i < kBuckets; ++i) {
      acc += snap[static_cast<std::size_t>(i)];
      if (acc >= want) {
        b = i;
        break;
      }
    }
    const double upper = std::exp2((b + 1) / 4.0);  // the bucket's upper edge
    delay_ns.store(std::max<std::int64_t>(o.min_delay.count(), std::llround(upper)), std::memory_order_relaxed);
  }

  void deposit() {
    std::int64_t v = tokens.load(std::memory_order_relaxed);
    while (v < cap && !tokens.compare_exchange_weak(v, std::min(cap, v + per_call), std::memory_order_relaxed)) {
    }
  }
  bool spend() {
    std::int64_t v = tokens.load(std::memory_order_relaxed);
    while (v >= kHedge) {
      if (tokens.compare_exchange_weak(v, v - kHedge, std::memory_order_relaxed)) return true;
    }
    return false;
  }
  void refund() { tokens.fetch_add(kHedge, std::memory_order_relaxed); }
};

struct RemoteModel::State {
  RemoteModelOptions opts;
  Clock* clock;
  std::vector<std::unique_ptr<EndpointState>> eps;
  ModelInfo info;
  std::string infer_target, ready_target, name;
  std::mutex eject_mu;

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;
  std::thread health;

  [[nodiscard]] bool available(const EndpointState& e, TimePoint now) const noexcept {
    return !e.ejected(now) && e.healthy.load(std::memory_order_relaxed);
  }

  // The estimate decays toward zero while no sample comes (Finagle reads
  // it so too): an endpoint that was slow once gets probed again.
  [[nodiscard]] double latency_ns(const EndpointState& e) const noexcept {
    const double dt = static_cast<double>(ticks(system_clock().now()) - e.cost_at.load(std::memory_order_relaxed));
    return e.cost_base.load(std::memory_order_relaxed) *
           std::exp(-std::max(0.0, dt) / static_cast<double>(opts.ewma_decay.count()));
  }

  [[nodiscard]] double cost(const EndpointState& e) const noexcept {
    return (latency_ns(e) + 1.0) * static_cast<double>(e.in_flight.load(std::memory_order_relaxed) + 1);
  }

  // Forgets the estimate of an endpoint that comes back: it was measured on a
  // process that is gone or was stuck.
  void reset_latency(EndpointState& e) {
    std::lock_guard lock(e.ewma_mu);
    e.ewma_ns = 0;
    e.ewma_at = TimePoint{};
    e.cost_base.store(0, std::memory_order_relaxed);
  }

  // Peak EWMA: a slower sample replaces the estimate at once, faster ones
  // pull it down with weight decaying over ewma_decay.
  void observe(EndpointState& e, Duration rtt) {
    const double x = static_cast<double>(rtt.count());
    const TimePoint now = system_clock().now();
    std::lock_guard lock(e.ewma_mu);
    if (x > e.ewma_ns || e.ewma_at == TimePoint{}) {
      e.ewma_ns = x;
    } else {
      const double dt = static_cast<double>((now - e.ewma_at).count());
      const double w = std::exp(-dt / static_cast<double>(opts.ewma_decay.count()));
      e.ewma_ns = e.ewma_ns * w + x * (1.0 - w);
    }
    e.ewma_at = now;
    e.cost_base.store(e.ewma_ns, std::memory_order_relaxed);
    e.cost_at.store(ticks(now), std::memory_order_relaxed);
  }

  // Power of two choices among untried endpoints matching `pred`.
  template <class Pred>
  int choose(const std::vector<bool>& tried, Pred pred) const {
    thread_local std::vector<int> c;
    c.clear();
    for (std::size_t i = 0; i < eps.size(); ++i)
      if (!tried[i] && pred(*eps[i])) c.push_back(static_cast<int>(i));
    if (c.empty()) return -1;
    if (c.size() == 1) return c[0];
    std::uniform_int_distribution<std::size_t> d(0, c.size() - 1);
    const std::size_t a = d(rng());
    std::size_t b = d(rng());
    if (b == a) b = (a + 1) % c.size();
    return cost(*eps[c[a]]) <= cost(*eps[c[b]]) ? c[a] : c[b];
  }

  int pick(const std::vector<bool>& tried) const {
    const TimePoint now = clock->now();
    std::size_t local_available = 0;
    for (const auto& e : eps)
      if (e->local && !e->cfg.standby && available(*e, now)) ++local_available;
    int r = -1;
    if (local_available >= opts.min_local_available)
      r = choose(tried, [&](const EndpointState& e) { return e.local && !e.cfg.standby && available(e, now); });
    if (r < 0) r = choose(tried, [&](const EndpointState& e) { return !e.cfg.standby && available(e, now); });
    if (r < 0) r = choose(tried, [&](const EndpointState& e) { return e.cfg.standby && available(e, now); });
    if (r < 0) r = choose(tried, [](const EndpointState&) { return true; });  // panic: none available
    return r;
  }

  void success(EndpointState& e, Duration rtt) {
    e.answers.fetch_add(1, std::memory_order_relaxed);
    e.consecutive.store(0, std::memory_order_relaxed);
    observe(e, rtt);
  }

  // A failure counts as a full attempt_timeout of latency (Finagle's
  // failure penalty): a replica that refuses fast must not look fast.
  void failure(EndpointState& e, Duration rtt) {
    e.failures.fetch_add(1, std::memory_order_relaxed);
    observe(e, std::max(rtt, opts.attempt_timeout));
    if (e.consecutive.fetch_add(1, std::memory_order_relaxed) + 1 >= opts.outlier.consecutive_failures) eject(e);
  }

  void eject(EndpointState& e) {
    std::lock_guard lock(eject_mu);
    const TimePoint now = clock->now();
    if (e.ejected(now)) return;
    std::size_t ejected = 0;
    for (const auto& x : eps) ejected += x->ejected(now) ? 1 : 0;
    const std::size_t allowed = std::max<std::size_t>(1, eps.size() * opts.outlier.max_ejection_percent / 100);
    if (ejected >= allowed || ejected + 1 >= eps.size()) return;  // over the cap, or the last one standing
    ++e.multiplier;
    const Duration d = std::min<Duration>(opts.outlier.base_ejection * e.multiplier, opts.outlier.max_ejection);
    e.ejected_until.store(ticks(now + d), std::memory_order_release);
    e.ejections.fetch_add(1, std::memory_order_relaxed);
    e.consecutive.store(0, std::memory_order_relaxed);
  }

  std::unique_ptr<HttpConnection> acquire(EndpointState& e) {
    {
      std::lock_guard lock(e.pool_mu);
      if (!e.idle.empty()) {
        auto c = std::move(e.idle.back());
        e.idle.pop_back();
        return c;
      }
    }
    return std::make_unique<HttpConnection>(e.cfg.host, e.cfg.port);
  }

  void release(EndpointState& e, std::unique_ptr<HttpConnection> c) {
    if (!c->reusable()) return;
    std::lock_guard lock(e.pool_mu);
    if (e.idle.size() < opts.max_idle) e.idle.push_back(std::move(c));
  }

  void health_loop() {
    for (;;) {
      {
        std::unique_lock lock(stop_mu);
        if (stop_cv.wait_for(lock, opts.health_interval, [this] { return stopping; })) return;
      }
      for (auto& e : eps) {
        const TimePoint until = system_clock().now() + opts.health_timeout;
        bool ok = false;
        if (e->grpc) {
          ok = e->grpc->ready(opts.model, opts.version, until);
        } else {
          if (!e->health_conn) e->health_conn = std::make_unique<HttpConnection>(e->cfg.host, e->cfg.port);
          auto a = e->health_conn->exchange("GET", ready_target, {}, {}, until, opts.health_timeout);
          ok = a && a->status == 200;
          if (!a) e->health_conn.reset();
        }
        if (ok && !e->healthy.load(std::memory_order_relaxed)) reset_latency(*e);
        e->healthy.store(ok, std::memory_order_relaxed);
        if (ok) {
          std::lock_guard lock(eject_mu);
          if (!e->ejected(clock->now()) && e->multiplier > 0) --e->multiplier;
        }
      }
    }
  }

  std::unique_ptr<Hedger> hedger;  // null: hedging off

  // What one exchange came to, whatever the transport.
  struct Outcome {
    Status transport;  // not ok: the exchange itself failed (connect, I/O, time, a hedge won)
    StatusCode code = StatusCode::kOk;  // else the peer's answer
    std::string message;                // the peer's error, for code != kOk
    Status decoded;                     // for kOk: reading the scores (kInvalidInput: a failed row)
    bool degraded = false;
    std::string reason;
  };

  Outcome exchange_rest(EndpointState& e, const Payload& p, std::span<float> out, TimePoint until,
                        Duration budget, AttemptHooks* hooks) {
    const auto budget_ms = std::max<long long>(1, std::chrono::duration_cast<std::chrono::milliseconds>(budget).count());
    const remote::HeaderList headers{{"Keel-Timeout-Ms", std::to_string(budget_ms)}};
    auto conn = acquire(e);
    if (hooks) {
      hooks->interrupter = [c = conn.get()]() -> std::function<void()> {
        return [c, token = c->token()] { c->interrupt(token); };
      };
    }
    auto answer = conn->exchange("POST", infer_target, headers, p.text, until, opts.connect_timeout,
                                 hooks ? &hooks->exchange : nullptr);
    if (hooks) hooks->over();
    release(e, std::move(conn));
    Outcome o;
    if (!answer) {
      o.transport = answer.status();
    } else if (answer->status == 200) {
      o.decoded = remote::decode_infer_response(answer->body, p.n_rows, info.num_outputs, out, o.degraded, o.reason);
    } else {
      o.code = from_http_status(answer->status);
      o.message = "HTTP " + std::to_string(answer->status) + ": " + remote::error_message(answer->body);
    }
    return o;
  }

  Outcome exchange_grpc(EndpointState& e, const Payload& p, std::span<float> out, TimePoint until,
                        AttemptHooks* hooks) {
    std::function<void(std::function<void()>)> on_start;
    std::function<void()> on_end;
    if (hooks) {
      on_start = [hooks](std::function<void()> cancel) {
        hooks->interrupter = [cancel = std::move(cancel)] { return cancel; };
      };
      on_end = hooks->over;
    }
    remote::GrpcAnswer g = e.grpc->infer(opts.model, opts.version, p.text, p.fp64, p.n_rows, info.num_features,
                                         info.num_outputs, out, until, hooks ? &hooks->exchange : nullptr, on_start,
                                         on_end);
    Outcome o;
    o.transport = std::move(g.transport);
    if (g.code != GrpcCode::kOk) {
      o.code = from_grpc_code(g.code);
      o.message = std::move(g.message);
    }
    o.decoded = std::move(g.decoded);
    o.degraded = g.degraded;
    o.reason = std::move(g.reason);
    return o;
  }

  // One attempt on `e`: fills `out` when answered. `hooks` (hedging) can
  // interrupt the exchange and is told when it is over, before its state
  // goes.
  Attempt attempt(EndpointState& e, const Payload& p, std::span<float> out, Deadline deadline, TimePoint now,
                  AttemptHooks* hooks) {
    const auto& o = opts;
    if (e.in_flight.fetch_add(1, std::memory_order_relaxed) >= o.max_connections) {
      e.in_flight.fetch_sub(1, std::memory_order_relaxed);
      if (hooks) hooks->over();
      return {Verdict::kNext, overloaded("RemoteModel '" + name + "': " + e.address + " has " +
                                         std::to_string(o.max_connections) + " requests in flight")};
    }
    const Duration left = deadline.remaining(now);
    const bool full_budget = left >= o.attempt_timeout;
    const Duration budget = std::min(left, o.attempt_timeout);
    Outcome x = o.transport == RemoteTransport::kGrpc ? exchange_grpc(e, p, out, now + budget, hooks)
                                                      : exchange_rest(e, p, out, now + budget, budget, hooks);
    const Duration rtt = system_clock().now() - now;
    e.in_flight.fetch_sub(1, std::memory_order_relaxed);
    const std::string where = "RemoteModel '" + name + "' " + e.address + ": ";
    if (!x.transport) {
      if (x.transport.code() == StatusCode::kCancelled) {  // a hedge answered first: a lower bound, no fault
        observe(e, rtt);
        return {Verdict::kNext, Status(StatusCode::kCancelled, where + x.transport.message(), true)};
      }
      // A timeout on a budget cut short by the caller's deadline is not the endpoint's fault.
      if (x.transport.code() != StatusCode::kDeadlineExceeded || full_budget) failure(e, rtt);
      return {Verdict::kNext, Status(x.transport.code(), where + x.transport.message(), true)};
    }
    if (x.code == StatusCode::kOk) {
      if (x.decoded.code() == StatusCode::kInvalidInput) {
        success(e, rtt);
        return {Verdict::kFinal, Status(x.decoded.code(), where + x.decoded.message())};
      }
      if (!x.decoded) {
        failure(e, rtt);
        return {Verdict::kNext, Status(x.decoded.code(), where + x.decoded.message(), true)};
      }
      if (x.degraded) {  // the peer's own fallback answered: another peer may do better
        e.overloaded.fetch_add(1, std::memory_order_relaxed);
        e.consecutive.store(0, std::memory_order_relaxed);
        return {Verdict::kNext, unavailable(where + "answered degraded (" + x.reason + ")")};
      }
      success(e, rtt);
      if (hedger) hedger->record(rtt);
      return {Verdict::kAnswered, {}};
    }
    std::string msg = where + x.message;
    switch (x.code) {
      case StatusCode::kOverloaded:
        e.overloaded.fetch_add(1, std::memory_order_relaxed);
        return {Verdict::kNext, Status(x.code, std::move(msg), true)};
      case StatusCode::kInvalidInput:
      case StatusCode::kConflict:
      case StatusCode::kCancelled:
        e.consecutive.store(0, std::memory_order_relaxed);
        return {Verdict::kFinal, Status(x.code, std::move(msg))};
      case StatusCode::kDeadlineExceeded:
        if (full_budget) failure(e, rtt);
        return {Verdict::kNext, Status(x.code, std::move(msg), true)};
      default:
        failure(e, rtt);
        return {Verdict::kNext, Status(x.code, std::move(msg), true)};
    }
  }

  // An attempt on `e` that, still unanswered after `delay`, gets a copy on
  // another untried endpoint (on the hedge threads) if the budget allows.
  // The first answer wins: a hedge that answers interrupts the primary's
  // exchange; a primary that answers leaves the hedge to finish unseen.
  Attempt hedged_attempt(EndpointState& e, std::vector<bool>& tried, const Payload& p, std::span<float> out,
                         Deadline deadline, TimePoint now, Duration delay) {
    auto call = std::make_shared<HedgeCall>();
    AttemptHooks hooks;
    hooks.exchange.at = now + delay;
    hooks.exchange.fire = [&] {
      if (!hedger->spend()) {
        hedger->no_budget.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      const int j = pick(tried);
      if (j < 0 || deadline.expired(system_clock().now()) || !hooks.interrupter) {
        hedger->refund();
        return;
      }
      {
        std::lock_guard lock(call->mu);
        call->interrupt_primary = hooks.interrupter();
        call->hedge_running = true;
      }
      call->payload = p;
      call->deadline = deadline;
      EndpointState* target = eps[static_cast<std::size_t>(j)].get();
      const bool sent = hedger->pool->try_submit([this, call, target] {
        std::vector<float> scores(call->payload.n_rows * info.num_outputs);
        Attempt h = attempt(*target, call->payload, scores, call->deadline, system_clock().now(), nullptr);
        std::lock_guard lock(call->mu);
        call->hedge_running = false;
        call->hedge_done = true;
        if (h.verdict == Verdict::kAnswered) {
          call->scores = std::move(scores);
          if (!call->primary_done) call->interrupt_primary();
        }
        call->hedge = std::move(h);
        call->cv.notify_all();
      });
      if (!sent) {
        hedger->refund();
        std::lock_guard lock(call->mu);
        call->hedge_running = false;
        return;
      }
      tried[static_cast<std::size_t>(j)] = true;
      hedger->launched.fetch_add(1, std::memory_order_relaxed);
    };
    hooks.over = [&] {
      std::lock_guard lock(call->mu);
      call->primary_done = true;
    };
    Attempt r = attempt(e, p, out, deadline, now, &hooks);
    std::unique_lock lock(call->mu);
    if (r.verdict == Verdict::kNext && (call->hedge_running || call->hedge_done)) {
      // The primary failed, or lost: the hedge's answer is the call's.
      call->cv.wait_for(lock, deadline.remaining(system_clock().now()), [&] { return call->hedge_done; });
      if (call->hedge_done) {
        if (call->hedge.verdict == Verdict::kAnswered) {
          std::copy(call->scores.begin(), call->scores.end(), out.begin());
          hedger->won.fetch_add(1, std::memory_order_relaxed);
          return {Verdict::kAnswered, {}};
        }
        if (r.status.code() == StatusCode::kCancelled || call->hedge.verdict == Verdict::kFinal) return call->hedge;
      }
    }
    return r;
  }

  std::string state_of(const EndpointState& e, TimePoint now) const {
    if (e.ejected(now)) return "ejected";
    if (!e.healthy.load(std::memory_order_relaxed)) return "unhealthy";
    return "available";
  }
};

RemoteModel::RemoteModel(RemoteModelOptions opts) : s_(std::make_shared<State>()) {
  auto& s = *s_;
  s.opts = std::move(opts);
  auto& o = s.opts;
  const auto bad = [](const std::string& what) { throw Error(StatusCode::kInvalidInput, "RemoteModel: " + what); };
  if (o.endpoints.empty()) bad("endpoints: at least one is needed");
  if (o.model.empty()) bad("model: the served model's name is needed");
  if (o.max_attempts == 0) bad("max_attempts must be at least 1");
  if (o.max_connections == 0) bad("max_connections must be at least 1");
  if (o.attempt_timeout <= Duration::zero()) bad("attempt_timeout must be positive");
  if (o.default_timeout <= Duration::zero()) bad("default_timeout must be positive");
  if (o.outlier.consecutive_failures == 0) bad("outlier.consecutive_failures must be at least 1");
  if (o.outlier.max_ejection_percent > 100) bad("outlier.max_ejection_percent must be in [0, 100]");
  if (o.ewma_decay <= Duration::zero()) bad("ewma_decay must be positive");
  if (o.hedge.enabled) {
    const auto& h = o.hedge;
    if (!(h.quantile > 0 && h.quantile < 1)) bad("hedge.quantile must be in (0, 1)");
    if (h.min_delay < Duration::zero()) bad("hedge.min_delay must be >= 0");
    if (!(h.budget_percent >= 0 && h.budget_percent <= 100)) bad("hedge.budget_percent must be in [0, 100]");
    if (!(h.burst >= 0 && h.burst <= 1e6)) bad("hedge.burst must be in [0, 1e6]");
    if (h.threads == 0 || h.threads > 256) bad("hedge.threads must be in [1, 256]");
    s.hedger = std::make_unique<Hedger>(h);
  }
  s.clock = o.clock ? o.clock : &system_clock();
  s.name = o.name.empty() ? o.model : o.name;
  for (std::size_t i = 0; i < o.endpoints.size(); ++i) {
    const auto& ep = o.endpoints[i];
    if (ep.host.empty() || ep.port <= 0 || ep.port > 65535)
      bad("endpoints[" + std::to_string(i) + "]: host and a port in [1, 65535] are needed");
    auto e = std::make_unique<EndpointState>();
    e->cfg = ep;
    e->address = ep.host + ":" + std::to_string(ep.port);
    e->local = ep.zone == o.local_zone;
    if (o.transport == RemoteTransport::kGrpc) e->grpc = std::make_unique<remote::GrpcEndpoint>(ep.host, ep.port);
    s.eps.push_back(std::move(e));
  }
  std::string base = "/v2/models/" + o.model;
  if (!o.version.empty()) base += "/versions/" + o.version;
  s.infer_target = base + "/infer";
  s.ready_target = base + "/ready";

  std::string errors;
  std::optional<remote::ModelShape> shape;
  const TimePoint until = system_clock().now() + o.metadata_timeout;
  for (auto& e : s.eps) {
    if (e->grpc) {
      auto m = e->grpc->metadata(o.model, o.version, until);
      if (!m) {
        errors += "; " + e->address + " (gRPC): " + m.status().message();
        continue;
      }
      shape = *m;
      break;
    }
    HttpConnection c(e->cfg.host, e->cfg.port);
    auto a = c.exchange("GET", base, {}, {}, until, o.connect_timeout);
    if (!a) {
      errors += "; " + e->address + ": " + a.status().message();
      continue;
    }
    if (a->status != 200) {
      errors += "; " + e->address + ": HTTP " + std::to_string(a->status) + " " + remote::error_message(a->body);
      continue;
    }
    auto m = remote::decode_metadata(a->body);
    if (!m) {
      errors += "; " + e->address + ": " + m.status().message();
      continue;
    }
    shape = *m;
    break;
  }
  if (!shape)
    throw Error(StatusCode::kUnavailable,
                "RemoteModel '" + s.name + "': no endpoint answered the metadata of model '" + o.model + "'" + errors);
  auto& info = s.info;
  info.format = ModelFormat::kCustom;
  info.objective = "remote";
  info.booster = "remote:" + shape->platform;
  info.num_features = shape->features;
  info.features.resize(shape->features);
  info.num_outputs = shape->outputs;
  info.num_margin_outputs = shape->outputs;
  info.id = s.name;
  info.version = next_model_version();
  // content_id stays empty: OIP metadata does not carry the peer's model
  // identity, so a shared cache must not key on it across processes.

  if (o.health_interval > Duration::zero()) s.health = std::thread([st = s_.get()] { st->health_loop(); });
}

RemoteModel::~RemoteModel() {
  {
    std::lock_guard lock(s_->stop_mu);
    s_->stopping = true;
  }
  s_->stop_cv.notify_all();
  if (s_->health.joinable()) s_->health.join();
  // Hedges in flight finish (each within its attempt's deadline) before the
  // state they use can go; metrics callbacks may keep the rest alive.
  if (s_->hedger) s_->hedger->pool.reset();
}

const ModelInfo& RemoteModel::info() const noexcept { return s_->info; }

namespace {

// One infer exchange for float or float64 rows (sent as FP32 or FP64).
template <class T>
Status remote_predict(RemoteModel::State& s, std::span<const T> rows, std::size_t n_rows, std::span<float> out,
                      const PredictOptions& popts) noexcept {
  if (popts.output == OutputKind::kMargin)
    return invalid_input("RemoteModel '" + s.name + "': OIP answers transformed outputs only, not margins");
  if (n_rows == 0) return {};
  try {
    const auto& o = s.opts;
    const TimePoint start = system_clock().now();
    const Deadline deadline = popts.deadline.is_never() ? Deadline::after(o.default_timeout, start) : popts.deadline;
    thread_local Payload payload;
    payload.n_rows = n_rows;
    payload.fp64 = sizeof(T) == 8;
    if (o.transport == RemoteTransport::kGrpc) {
      payload.text.assign(reinterpret_cast<const char*>(rows.data()), n_rows * s.info.num_features * sizeof(T));
    } else if (Status enc = remote::encode_infer_request(payload.text, {}, rows, n_rows, s.info.num_features); !enc) {
      // No request id: a server keys idempotency on it, and scoring needs
      // none. Ids counted per client would collide between clients (422s),
      // and a hedge would wait on its own first copy's claim.
      return Status(enc.code(), "RemoteModel '" + s.name + "': " + enc.message());
    }
    if (s.hedger) s.hedger->deposit();
    std::vector<bool> tried(s.eps.size(), false);
    bool hedged = false;  // at most one hedge a call
    Status last = unavailable("RemoteModel '" + s.name + "': no endpoint could be tried");
    for (std::size_t attempt = 0; attempt < o.max_attempts; ++attempt) {
      const TimePoint now = system_clock().now();
      if (deadline.expired(now)) break;
      const int idx = s.pick(tried);
      if (idx < 0) break;
      tried[static_cast<std::size_t>(idx)] = true;
      auto& e = *s.eps[static_cast<std::size_t>(idx)];
      Attempt r;
      const std::int64_t delay = s.hedger && !hedged ? s.hedger->delay_ns.load(std::memory_order_relaxed) : -1;
      if (delay >= 0 && s.eps.size() > 1) {
        hedged = true;
        r = s.hedged_attempt(e, tried, payload, out, deadline, now, Duration(delay));
      } else {
        r = s.attempt(e, payload, out, deadline, now, nullptr);
      }
      if (r.verdict == Verdict::kAnswered) return {};
      if (r.verdict == Verdict::kFinal) return r.status;
      last = std::move(r.status);
    }
    if (deadline.expired(system_clock().now()))
      return deadline_exceeded("RemoteModel '" + s.name + "': deadline passed; last: " + last.message());
    return last;
  } catch (const std::exception& ex) {
    return internal_error("RemoteModel '" + s.name + "': " + ex.what());
  }
}

}  // namespace

Status RemoteModel::predict(std::span<const float> rows, std::size_t n_rows, std::span<float> out,
                            const PredictOptions& popts) const noexcept {
  if (Status st = check_shapes(rows.size(), n_rows, out.size(), popts); !st) return st;
  return remote_predict(*s_, rows, n_rows, out, popts);
}

Status RemoteModel::predict(std::span<const double> rows, std::size_t n_rows, std::span<float> out,
                            const PredictOptions& popts) const noexcept {
  if (Status st = check_shapes(rows.size(), n_rows, out.size(), popts); !st) return st;
  return remote_predict(*s_, rows, n_rows, out, popts);
}

std::vector<RemoteEndpointStats> RemoteModel::endpoint_stats() const {
  std::vector<RemoteEndpointStats> v;
  const TimePoint now = s_->clock->now();
  for (const auto& e : s_->eps) {
    RemoteEndpointStats st;
    st.address = e->address;
    st.zone = e->cfg.zone;
    st.standby = e->cfg.standby;
    st.ejected = e->ejected(now);
    st.healthy = e->healthy.load();
    st.answers = e->answers.load();
    st.failures = e->failures.load();
    st.overloaded = e->overloaded.load();
    st.ejections = e->ejections.load();
    st.in_flight = e->in_flight.load();
    st.latency_ms = s_->latency_ns(*e) / 1e6;
    v.push_back(std::move(st));
  }
  return v;
}

RemoteHedgeStats RemoteModel::hedge_stats() const {
  RemoteHedgeStats h;
  if (const Hedger* g = s_->hedger.get()) {
    h.launched = g->launched.load();
    h.won = g->won.load();
    h.no_budget = g->no_budget.load();
    const std::int64_t d = g->delay_ns.load();
    h.delay_ms = d < 0 ? -1.0 : static_cast<double>(d) / 1e6;
  }
  return h;
}

ComponentHealth RemoteModel::health() const {
  ComponentHealth h;
  h.name = "remote:" + s_->name;
  const TimePoint now = s_->clock->now();
  std::size_t avail = 0;
  for (const auto& e : s_->eps) {
    const bool a = s_->available(*e, now);
    avail += a ? 1 : 0;
    if (!h.detail.empty()) h.detail += ", ";
    h.detail += e->address + (e->cfg.zone.empty() ? "" : " zone " + e->cfg.zone) + (e->cfg.standby ? " standby" : "") +
                " " + s_->state_of(*e, now);
  }
  if (s_->hedger) {
    const RemoteHedgeStats hs = hedge_stats();
    h.detail += fmt::format("; hedge delay_ms={:.3f} launched={} won={} no_budget={}", hs.delay_ms, hs.launched, hs.won,
                            hs.no_budget);
  }
  h.ok = avail > 0;
  h.state = avail == s_->eps.size() ? "up" : avail > 0 ? "degraded" : "down";
  return h;
}

void RemoteModel::register_metrics(MetricsRegistry& reg) const {
  std::shared_ptr<State> s = s_;
  if (s->hedger) {
    auto hedges = [&](const char* result, std::atomic<std::uint64_t> Hedger::*field) {
      reg.counter_fn("keel_remote_hedges_total",
                     "Hedged attempts of a remote model: launched, won (answered first) and no_budget (due but "
                     "not sent: the hedge budget was spent).",
                     MetricLabels{{"remote", s->name}, {"result", result}},
                     [s, field] { return static_cast<double>(((*s->hedger).*field).load()); });
    };
    hedges("launched", &Hedger::launched);
    hedges("won", &Hedger::won);
    hedges("no_budget", &Hedger::no_budget);
  }
  for (std::size_t i = 0; i < s->eps.size(); ++i) {
    const MetricLabels base{{"remote", s->name}, {"endpoint", s->eps[i]->address}};
    auto with = [&](const char* k, const char* v) {
      MetricLabels l = base;
      l.push_back({k, v});
      return l;
    };
    auto answers = [&](const char* result, std::atomic<std::uint64_t> EndpointState::*field) {
      reg.counter_fn("keel_remote_answers_total",
                     "Attempts on a remote endpoint by result (overloaded: 429/503 or a degraded answer, not "
                     "counted against the endpoint).",
                     with("result", result), [s, i, field] { return static_cast<double>(((*s->eps[i]).*field).load()); });
    };
    answers("ok", &EndpointState::answers);
    answers("failure", &EndpointState::failures);
    answers("overloaded", &EndpointState::overloaded);
    reg.counter_fn("keel_remote_ejections_total", "Outlier ejections of a remote endpoint.", base,
                   [s, i] { return static_cast<double>(s->eps[i]->ejections.load()); });
    reg.gauge_fn("keel_remote_endpoint_available", "1 while a remote endpoint is neither ejected nor unhealthy.", base,
                 [s, i] { return s->available(*s->eps[i], s->clock->now()) ? 1.0 : 0.0; });
    reg.gauge_fn("keel_remote_in_flight", "Requests in flight to a remote endpoint.", base,
                 [s, i] { return static_cast<double>(s->eps[i]->in_flight.load()); });
  }
}

}  // namespace keel::net
