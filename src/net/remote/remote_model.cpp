#include <keel/net/remote/remote_model.hpp>

#include "net/remote/http_connection.hpp"
#include "net/remote/oip_wire.hpp"

#include <keel/net/status_map.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
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

  [[nodiscard]] bool ejected(TimePoint now) const noexcept {
    return ticks(now) < ejected_until.load(std::memory_order_acquire);
  }
};

struct RemoteModel::State {
  RemoteModelOptions opts;
  Clock* clock;
  std::vector<std::unique_ptr<EndpointState>> eps;
  ModelInfo info;
  std::string infer_target, ready_target, name;
  std::mutex eject_mu;
  std::atomic<std::uint64_t> next_id{1};

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
        if (!e->health_conn) e->health_conn = std::make_unique<HttpConnection>(e->cfg.host, e->cfg.port);
        const TimePoint until = system_clock().now() + opts.health_timeout;
        auto a = e->health_conn->exchange("GET", ready_target, {}, {}, until, opts.health_timeout);
        const bool ok = a && a->status == 200;
        if (!a) e->health_conn.reset();
        if (ok && !e->healthy.load(std::memory_order_relaxed)) reset_latency(*e);
        e->healthy.store(ok, std::memory_order_relaxed);
        if (ok) {
          std::lock_guard lock(eject_mu);
          if (!e->ejected(clock->now()) && e->multiplier > 0) --e->multiplier;
        }
      }
    }
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
    thread_local std::string body;
    thread_local std::string reason;
    if (Status enc = remote::encode_infer_request(
            body, std::to_string(s.next_id.fetch_add(1, std::memory_order_relaxed)), rows, n_rows, s.info.num_features);
        !enc)
      return Status(enc.code(), "RemoteModel '" + s.name + "': " + enc.message());
    std::vector<bool> tried(s.eps.size(), false);
    Status last = unavailable("RemoteModel '" + s.name + "': no endpoint could be tried");
    for (std::size_t attempt = 0; attempt < o.max_attempts; ++attempt) {
      const TimePoint now = system_clock().now();
      if (deadline.expired(now)) break;
      const int idx = s.pick(tried);
      if (idx < 0) break;
      tried[static_cast<std::size_t>(idx)] = true;
      auto& e = *s.eps[static_cast<std::size_t>(idx)];
      if (e.in_flight.fetch_add(1, std::memory_order_relaxed) >= o.max_connections) {
        e.in_flight.fetch_sub(1, std::memory_order_relaxed);
        last = overloaded("RemoteModel '" + s.name + "': " + e.address + " has " +
                          std::to_string(o.max_connections) + " requests in flight");
        continue;
      }
      const Duration left = deadline.remaining(now);
      const bool full_budget = left >= o.attempt_timeout;
      const Duration budget = std::min(left, o.attempt_timeout);
      const auto budget_ms = std::max<long long>(1, std::chrono::duration_cast<std::chrono::milliseconds>(budget).count());
      const remote::HeaderList headers{{"Keel-Timeout-Ms", std::to_string(budget_ms)}};
      auto conn = s.acquire(e);
      auto answer = conn->exchange("POST", s.infer_target, headers, body, now + budget, o.connect_timeout);
      const Duration rtt = system_clock().now() - now;
      s.release(e, std::move(conn));
      e.in_flight.fetch_sub(1, std::memory_order_relaxed);
      const std::string where = "RemoteModel '" + s.name + "' " + e.address + ": ";
      if (!answer) {
        // A timeout on a budget cut short by the caller's deadline is not the endpoint's fault.
        if (answer.status().code() != StatusCode::kDeadlineExceeded || full_budget) s.failure(e, rtt);
        last = Status(answer.status().code(), where + answer.status().message(), true);
        continue;
      }
      if (answer->status == 200) {
        bool degraded = false;
        Status d = remote::decode_infer_response(answer->body, n_rows, s.info.num_outputs, out, degraded, reason);
        if (d.code() == StatusCode::kInvalidInput) {
          s.success(e, rtt);
          return Status(d.code(), where + d.message());
        }
        if (!d) {
          s.failure(e, rtt);
          last = Status(d.code(), where + d.message(), true);
          continue;
        }
        if (degraded) {  // the peer's own fallback answered: another peer may do better
          e.overloaded.fetch_add(1, std::memory_order_relaxed);
          e.consecutive.store(0, std::memory_order_relaxed);
          last = unavailable(where + "answered degraded (" + reason + ")");
          continue;
        }
        s.success(e, rtt);
        return {};
      }
      const StatusCode code = from_http_status(answer->status);
      const std::string msg = where + "HTTP " + std::to_string(answer->status) + ": " +
                              remote::error_message(answer->body);
      switch (code) {
        case StatusCode::kOverloaded:
          e.overloaded.fetch_add(1, std::memory_order_relaxed);
          last = Status(code, msg, true);
          continue;
        case StatusCode::kInvalidInput:
        case StatusCode::kConflict:
        case StatusCode::kCancelled:
          e.consecutive.store(0, std::memory_order_relaxed);
          return Status(code, msg);
        case StatusCode::kDeadlineExceeded:
          if (full_budget) s.failure(e, rtt);
          last = Status(code, msg, true);
          continue;
        default:
          s.failure(e, rtt);
          last = Status(code, msg, true);
          continue;
      }
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
  h.ok = avail > 0;
  h.state = avail == s_->eps.size() ? "up" : avail > 0 ? "degraded" : "down";
  return h;
}

void RemoteModel::register_metrics(MetricsRegistry& reg) const {
  std::shared_ptr<State> s = s_;
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
