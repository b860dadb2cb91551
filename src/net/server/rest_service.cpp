#include <keel/net/server/rest_service.hpp>

#include <keel/engine/scoring_engine.hpp>

#include <keel/engine/metrics.hpp>
#include <keel/net/oip/codec.hpp>
#include <keel/net/status_map.hpp>
#include <keel/resilience/bulkhead.hpp>
#include <keel/resilience/executor.hpp>
#include <keel/version.hpp>

#include <openssl/crypto.h>

#include <array>
#include <charconv>
#include <cstdio>
#include <mutex>

namespace keel::net {
namespace {

enum Endpoint : std::uint8_t { kInfer, kHealth, kMetadata, kMetrics, kStats, kRepository, kOther, kEndpoints };
constexpr std::array<std::string_view, kEndpoints> kEndpointNames{"infer",  "health",     "metadata", "metrics",
                                                                  "stats",  "repository", "other"};
constexpr std::array<double, 16> kPhaseBounds{1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4,
                                              5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2, 0.25, 1.0};

std::uint64_t ns(Duration d) { return static_cast<std::uint64_t>(std::chrono::nanoseconds(d).count()); }

// A W3C traceparent's trace id ("00-<32 hex>-<16 hex>-<2 hex>"), or empty.
std::string_view trace_id(std::string_view tp) {
  if (tp.size() < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return {};
  const auto id = tp.substr(3, 32);
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return {};
  return id == "00000000000000000000000000000000" ? std::string_view{} : id;
}

// Splits "/v2/models/m/versions/v/infer" into parts.
struct Route {
  Endpoint endpoint = kOther;
  std::string_view model, version, action;  // action: "", "ready", "health", "infer", "stats"
  bool valid = false;
};

Route route(std::string_view path) {
  Route r;
  if (const auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (path == "/metrics") return {kMetrics, {}, {}, {}, true};
  if (path == "/v2" || path == "/v2/") return {kMetadata, {}, {}, "server", true};
  if (path == "/v2/health/live" || path == "/v2/health/ready") return {kHealth, {}, {}, path.substr(11), true};
  if (path == "/v2/models/stats") return {kStats, {}, {}, "stats", true};
  if (path == "/v2/repository/index") return {kRepository, {}, {}, "index", true};
  constexpr std::string_view kRepo = "/v2/repository/models/";
  if (path.starts_with(kRepo)) {
    const std::string_view rest = path.substr(kRepo.size());
    const auto slash = rest.rfind('/');
    if (slash == std::string_view::npos || slash == 0) return r;
    const std::string_view action = rest.substr(slash + 1);
    if (action != "load" && action != "unload") return r;
    return {kRepository, rest.substr(0, slash), {}, action, true};
  }
  constexpr std::string_view kModels = "/v2/models/";
  if (!path.starts_with(kModels)) return r;
  std::string_view rest = path.substr(kModels.size());
  auto next = [&rest]() {
    const auto s = rest.find('/');
    const auto part = rest.substr(0, s);
    rest = s == std::string_view::npos ? std::string_view{} : rest.substr(s + 1);
    return part;
  };
  r.model = next();
  std::string_view part = next();
  if (part == "versions") {
    r.version = next();
    if (r.version.empty()) return r;
    part = next();
  }
  if (!rest.empty()) return r;
  r.action = part;
  r.endpoint = part.empty() || part == "ready" || part == "health" ? kMetadata : part == "infer" ? kInfer : part == "stats" ? kStats : kOther;
  r.valid = r.endpoint != kOther && !r.model.empty();
  return r;
}

}  // namespace

struct RestService::Impl {
  ModelRepository& models;
  MetricsRegistry& metrics;
  ServiceConfig config;
  std::shared_ptr<Bulkhead> admission;
  std::unique_ptr<BoundedExecutor> pool;  // null: score inline
  std::atomic<bool> draining{false};
  std::array<std::array<std::atomic<Counter*>, 600>, kEndpoints> requests{};
  std::mutex register_mu;
  Counter* shed_limit;
  Counter* shed_deadline;
  Counter* shed_draining;
  HistogramMetric* phase_queue;
  HistogramMetric* phase_parse;
  HistogramMetric* phase_score;
  Counter* scored_inline;
  Counter* scored_pool;
  std::atomic<std::uint64_t> next_id{1};
  std::mutex log_mu;

  Impl(ModelRepository& m, MetricsRegistry& reg, ServiceConfig c)
      : models(m), metrics(reg), config(std::move(c)) {
    BulkheadConfig bc;
    bc.adaptive = config.admission;
    admission = std::make_shared<Bulkhead>("admission", bc);
    if (config.scoring_threads > 0)
      pool = std::make_unique<BoundedExecutor>(ExecutorConfig{
          .threads = config.scoring_threads, .queue_capacity = std::max<std::size_t>(config.admission.max_limit, 1)});
    const auto shed = [&](const char* reason) {
      return &reg.counter("keel_server_shed_total", "Requests or connections refused, by reason.",
                          {{"reason", reason}});
    };
    shed_limit = shed("limit");
    shed_deadline = shed("deadline");
    shed_draining = shed("draining");
    const auto phase = [&](const char* p) {
      return &reg.histogram("keel_server_request_phase_seconds",
                            "Time per request phase: queue wait, body parse, scoring, response write.", kPhaseBounds,
                            {{"phase", p}});
    };
    phase_queue = phase("queue");
    phase_parse = phase("parse");
    phase_score = phase("score");
    const auto scored = [&](const char* on) {
      return &reg.counter("keel_server_scored_total",
                          "Infer calls scored, by thread: on the I/O thread that decoded them (run to completion) or "
                          "on the scoring pool.",
                          {{"on", on}});
    };
    scored_inline = scored("io_thread");
    scored_pool = scored("pool");
    reg.gauge_fn("keel_server_in_flight", "Infer requests admitted and not yet answered.", {},
                 [this] { return static_cast<double>(admission->stats().in_flight); });
    reg.gauge_fn("keel_server_ready", "1 while the server reports ready.", {},
                 [this] { return ready() ? 1.0 : 0.0; });
    reg.gauge_fn("keel_server_admission_limit", "The adaptive admission limit.", {},
                 [this] { return static_cast<double>(admission->limit()); });
  }

  // The run-to-completion rule (ServiceConfig::inline_rows).
  bool on_this_thread(const ServedModel& m, std::size_t rows) const noexcept {
    if (!pool) return true;
    if (rows > config.inline_rows || m.waits.load(std::memory_order_relaxed)) return false;
    return m.stats.recent_row_ns.load(std::memory_order_relaxed) * rows <= ns(config.inline_budget);
  }

  void count(Endpoint e, int code) {
    if (code < 100 || code >= 700) code = 500;
    auto& slot = requests[e][static_cast<std::size_t>(code - 100)];
    Counter* c = slot.load(std::memory_order_acquire);
    if (!c) {
      std::lock_guard lock(register_mu);
      c = &metrics.counter("keel_http_requests_total", "HTTP requests by endpoint and status code.",
                           {{"endpoint", std::string(kEndpointNames[e])}, {"code", std::to_string(code)}});
      slot.store(c, std::memory_order_release);
    }
    c->inc();
  }

  void access_log(const HttpRequest& req, int status, std::size_t bytes_out, std::string_view request_id,
                  std::string_view model) {
    log_access({.protocol = "http", .method = req.method, .path = req.target, .status = status,
                .request_id = request_id, .traceparent = req.traceparent, .model = model,
                .bytes_in = req.body.size(), .bytes_out = bytes_out, .received = req.received});
  }

  void log_access(const RestService::Access& a) {
    if (!config.access_log) return;
    std::string line = "{\"event\":\"access\",\"protocol\":";
    oip::append_json_string(line, a.protocol);
    line += ",\"method\":";
    oip::append_json_string(line, a.method);
    line += ",\"path\":";
    oip::append_json_string(line, a.path.substr(0, std::min<std::size_t>(a.path.size(), 256)));
    line += ",\"status\":" + std::to_string(a.status);
    line += ",\"request_id\":";
    oip::append_json_string(line, a.request_id);
    line += ",\"trace_id\":";
    oip::append_json_string(line, trace_id(a.traceparent));
    if (!a.model.empty()) {
      line += ",\"model\":";
      oip::append_json_string(line, a.model);
    }
    line += ",\"bytes_in\":" + std::to_string(a.bytes_in) + ",\"bytes_out\":" + std::to_string(a.bytes_out);
    line += ",\"duration_us\":" +
            std::to_string(
                std::chrono::duration_cast<std::chrono::microseconds>(system_clock().now() - a.received).count());
    line += "}\n";
    // stdout is fully buffered when not a terminal; flushed by the CLI.
    std::fwrite(line.data(), 1, line.size(), stdout);
  }

  HttpResponse error(int status, std::string_view message) {
    HttpResponse r;
    r.status = status;
    r.body = oip::error_json(message);
    return r;
  }
  HttpResponse denied(HttpLimit why) {
    HttpResponse r = error(http_status(why), why == HttpLimit::kForbidden
                                                 ? "repository endpoints are disabled: no auth token is configured"
                                                 : "missing or wrong bearer token");
    if (why == HttpLimit::kUnauthorized) r.headers = "WWW-Authenticate: Bearer realm=\"keel\"\r\n";
    return r;
  }

  // One JSON line of the event log (load, unload).
  void event(const std::string& what, std::string_view model) {
    std::string line = "{\"event\":";
    oip::append_json_string(line, what);
    line += ",\"model\":";
    oip::append_json_string(line, model);
    line += "}\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
  }

  HttpResponse error(const Status& s) {
    HttpResponse r = error(http_status(s), s.message());
    if (mapping(s).retry_after) r.retry_after_s = config.retry_after_s;
    return r;
  }

  Status run(Bulkhead::Permit& permit, const ServedModel& m, InferCall& call, TimePoint queued);

  Result<const ServedModel*> lookup(const Route& r) const { return lookup(r.model, r.version); }
  Result<const ServedModel*> lookup(std::string_view model, std::string_view version) const {
    if (!ModelRepository::valid_name(model))
      return invalid_input("model name '" + std::string(model.substr(0, 128)) + "': use [A-Za-z0-9_.-]");
    if (!version.empty() && !ModelRepository::valid_name(version))
      return invalid_input("model version '" + std::string(version.substr(0, 128)) + "': use [A-Za-z0-9_.-]");
    if (const auto* m = models.find(model, version)) return m;
    if (!models.find(model)) return not_found("unknown model '" + std::string(model) + "'");
    return not_found("model '" + std::string(model) + "' has no version '" + std::string(version) + "'");
  }

  bool ready() const { return !draining.load() && models.all_ready(); }

  std::vector<const ServedModel*> versions(std::string_view name) const {
    std::vector<const ServedModel*> out;
    for (const auto* v : models.all())
      if (v->name == name) out.push_back(v);
    return out;
  }

  HttpResponse metadata(const ServedModel& m) {
    std::string b = "{\"name\":";
    oip::append_json_string(b, m.name);
    b += ",\"versions\":[";
    bool first = true;
    for (const auto* v : versions(m.name)) {
      if (!first) b.push_back(',');
      first = false;
      oip::append_json_string(b, v->version);
    }
    b += "],\"platform\":\"keel\",\"inputs\":[{\"name\":\"input-0\",\"datatype\":\"FP32\",\"shape\":[-1," +
         std::to_string(m.features) + "]}],\"outputs\":[{\"name\":";
    oip::append_json_string(b, oip::kScoresOutput);
    b += ",\"datatype\":\"FP32\",\"shape\":[-1," + std::to_string(m.width) + "]}]}";
    HttpResponse r;
    r.body = std::move(b);
    return r;
  }

  HttpResponse stats(const std::vector<const ServedModel*>& list) {
    std::string b = "{\"model_stats\":[";
    bool first = true;
    const auto dur = [](std::uint64_t count, std::uint64_t nsec) {
      return "{\"count\":" + std::to_string(count) + ",\"ns\":" + std::to_string(nsec) + "}";
    };
    for (const auto* m : list) {
      const auto& s = m->stats;
      if (!first) b.push_back(',');
      first = false;
      const auto ok = s.success_count.load();
      b += "{\"name\":";
      oip::append_json_string(b, m->name);
      b += ",\"version\":";
      oip::append_json_string(b, m->version);
      b += ",\"last_inference\":" + std::to_string(s.last_inference_ms.load());
      b += ",\"inference_count\":" + std::to_string(s.inference_count.load());
      b += ",\"execution_count\":" + std::to_string(s.execution_count.load());
      b += ",\"inference_stats\":{\"success\":" + dur(ok, s.success_ns.load());
      b += ",\"fail\":" + dur(s.fail_count.load(), s.fail_ns.load());
      b += ",\"queue\":" + dur(s.queue_count.load(), s.queue_ns.load());
      b += ",\"compute_input\":" + dur(ok, s.parse_ns.load());
      b += ",\"compute_infer\":" + dur(ok, s.score_ns.load());
      b += ",\"compute_output\":" + dur(ok, s.write_ns.load()) + "}}";
    }
    b += "]}";
    HttpResponse r;
    r.body = std::move(b);
    return r;
  }

  Result<Deadline> deadline_of(std::string_view header, TimePoint now) {
    Duration t = config.default_timeout;
    if (!header.empty()) {
      std::uint64_t ms = 0;
      const auto [p, ec] = std::from_chars(header.data(), header.data() + header.size(), ms);
      if (ec != std::errc{} || p != header.data() + header.size())
        return invalid_input("Keel-Timeout-Ms: '" + std::string(header.substr(0, 32)) +
                             "' is not a whole number of milliseconds");
      t = std::chrono::milliseconds(std::min<std::uint64_t>(ms, 1000ull * 3600 * 24 * 365));
    }
    return deadline(t, now);
  }
  Deadline deadline(std::optional<Duration> requested, TimePoint now) const {
    return Deadline::after(std::min(requested.value_or(config.default_timeout), config.max_timeout), now);
  }
};

RestService::RestService(ModelRepository& models, MetricsRegistry& metrics, ServiceConfig config)
    : impl_(std::make_unique<Impl>(models, metrics, std::move(config))) {}
RestService::~RestService() = default;

Result<const ServedModel*> RestService::lookup(std::string_view model, std::string_view version) const {
  return impl_->lookup(model, version);
}
Deadline RestService::deadline(std::optional<Duration> requested, TimePoint now) const {
  return impl_->deadline(requested, now);
}
std::vector<const ServedModel*> RestService::versions(std::string_view name) const {
  return impl_->versions(name);
}
bool RestService::ready() const { return impl_->ready(); }
bool RestService::ready(const ServedModel& model) const { return model.ready() && !impl_->draining.load(); }
void RestService::log_access(const Access& entry) { impl_->log_access(entry); }

std::optional<HttpLimit> RestService::authorize(std::string_view authorization, bool repository) const {
  const std::string& token = impl_->config.auth_token;
  if (token.empty()) return repository ? std::optional(HttpLimit::kForbidden) : std::nullopt;
  if (!repository && !impl_->config.auth_infer) return std::nullopt;
  constexpr std::string_view kBearer = "bearer ";  // the scheme is case-insensitive (RFC 9110)
  if (authorization.size() != kBearer.size() + token.size()) return HttpLimit::kUnauthorized;
  for (std::size_t i = 0; i < kBearer.size(); ++i)
    if ((authorization[i] | 0x20) != kBearer[i]) return HttpLimit::kUnauthorized;
  // Constant time: the comparison does not tell how much of a guess was right.
  if (CRYPTO_memcmp(authorization.data() + kBearer.size(), token.data(), token.size()) != 0)
    return HttpLimit::kUnauthorized;
  return std::nullopt;
}

void RestService::set_draining() { impl_->draining.store(true); }
std::size_t RestService::in_flight() const noexcept { return impl_->admission->stats().in_flight; }

// Scores an admitted call: the deadline and the client are checked when it
// leaves the queue, so a late call is never scored.
Status RestService::Impl::run(Bulkhead::Permit& permit, const ServedModel& m, InferCall& call, TimePoint queued) {
  const TimePoint start = system_clock().now();
  phase_queue->observe(start - queued);
  auto& st = m.stats;
  st.queue_count.fetch_add(1, std::memory_order_relaxed);
  st.queue_ns.fetch_add(ns(start - queued), std::memory_order_relaxed);
  if (call.deadline.expired(start)) {
    shed_deadline->inc();
    permit.release(start - queued, true);
    return deadline_exceeded("deadline passed before scoring");
  }
  if (call.cancelled && call.cancelled()) {
    permit.release();
    return cancelled("client went away before scoring");
  }
  Status s = m.score(call.request, call.idempotency_key, call.deadline, call.result);
  const TimePoint end = system_clock().now();
  // The limit adapts to queue wait plus scoring: a backed-up pool lowers it.
  permit.release(end - queued, s.code() == StatusCode::kDeadlineExceeded || s.code() == StatusCode::kOverloaded);
  phase_score->observe(end - start);
  // Failed calls count too: a model whose calls run past their deadline
  // must leave the I/O threads. A racy read-modify-write is fine for an
  // average: a lost update loses one sample.
  const std::uint64_t per_row = ns(end - start) / std::max<std::size_t>(call.request.rows, 1);
  const std::uint64_t avg = st.recent_row_ns.load(std::memory_order_relaxed);
  st.recent_row_ns.store(avg - avg / 8 + per_row / 8, std::memory_order_relaxed);
  st.execution_count.fetch_add(1, std::memory_order_relaxed);
  st.last_inference_ms.store(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count(),
                             std::memory_order_relaxed);
  if (!s) {
    st.fail_count.fetch_add(1, std::memory_order_relaxed);
    st.fail_ns.fetch_add(ns(end - start), std::memory_order_relaxed);
    return s;
  }
  st.inference_count.fetch_add(call.request.rows, std::memory_order_relaxed);
  st.success_count.fetch_add(1, std::memory_order_relaxed);
  st.score_ns.fetch_add(ns(end - start), std::memory_order_relaxed);
  call.result.model_name = m.name;
  call.result.model_version = m.version;
  call.result.id = call.request.id;
  return {};
}

void RestService::infer(std::shared_ptr<InferCall> call, std::function<void(Status)> done) {
  auto& im = *impl_;
  const ServedModel* m = im.models.find(call->model, call->version);
  if (!m) return done(not_found("unknown model '" + std::string(call->model) + "'"));
  if (call->request.cols != m->features)
    return done(invalid_input("inputs[0].shape: " + std::to_string(call->request.cols) + " features, but model '" +
                              m->name + "' takes " + std::to_string(m->features)));
  auto permit = im.admission->try_acquire();
  if (!permit) {
    im.shed_limit->inc();
    return done(overloaded("admission limit (" + std::to_string(im.admission->limit()) + " in flight) reached"));
  }
  const TimePoint queued = system_clock().now();
  if (im.on_this_thread(*m, call->request.rows)) {
    im.scored_inline->inc();
    return done(im.run(permit, *m, *call, queued));
  }
  im.scored_pool->inc();
  auto held = std::make_shared<Bulkhead::Permit>(std::move(permit));
  auto task = [&im, m, call, done, held, queued] { done(im.run(*held, *m, *call, queued)); };
  if (!im.pool->try_submit(std::move(task))) {
    held->release();
    im.shed_limit->inc();
    done(overloaded("scoring queue full"));
  }
}

void RestService::handle(const HttpRequest& req, Reply reply) {
  auto& im = *impl_;
  const Route r = route(req.target);
  std::string generated;
  std::string_view request_id = req.request_id;
  if (request_id.empty()) {
    generated = std::to_string(im.next_id.fetch_add(1, std::memory_order_relaxed));
    request_id = generated;
  }
  HttpResponse resp;
  const auto finish = [&](HttpResponse&& out, std::string_view model = {}) {
    im.count(r.endpoint, out.status);
    im.access_log(req, out.status, out.body.size(), request_id, model);
    reply.send(std::move(out));
  };
  if (!r.valid) {
    finish(im.error(404, "no route for " + std::string(req.method) + " " +
                             std::string(req.target.substr(0, 256))));
    return;
  }
  const bool post = req.method == "POST";
  if ((r.endpoint == kInfer || r.endpoint == kRepository) != post || (!post && req.method != "GET")) {
    resp = im.error(http_status(HttpLimit::kMethodNotAllowed),
                    std::string(req.method) + " is not allowed on " + std::string(req.target.substr(0, 256)));
    finish(std::move(resp));
    return;
  }
  switch (r.endpoint) {
    case kMetrics:
      resp.content_type = "text/plain; version=0.0.4";
      resp.body = im.models.metrics_text();
      finish(std::move(resp));
      return;
    case kHealth: {
      if (r.action == "live") {
        resp.body = "{\"live\":true}";
      } else {
        const bool ready = im.ready();
        resp.status = ready ? 200 : 503;
        resp.body = ready ? "{\"ready\":true}" : "{\"ready\":false}";
      }
      finish(std::move(resp));
      return;
    }
    case kStats: {
      if (r.model.empty()) {
        finish(im.stats(im.models.all()));
        return;
      }
      auto m = im.lookup(r);
      finish(m ? im.stats({*m}) : im.error(m.status()), r.model);
      return;
    }
    case kMetadata: {
      if (r.action == "server") {
        resp.body = "{\"name\":\"keel\",\"version\":\"" + std::string(keel::version()) +
                    "\",\"extensions\":[\"binary_tensor_data\",\"statistics\"]}";
        finish(std::move(resp));
        return;
      }
      auto m = im.lookup(r);
      if (!m) {
        finish(im.error(m.status()), r.model);
        return;
      }
      if (r.action == "health") {  // Keel's extension: the engine's components, RemoteModel endpoints included
        resp.status = this->ready(**m) ? 200 : 503;
        resp.body = (*m)->engine()->health().to_json();
        finish(std::move(resp), r.model);
        return;
      }
      if (r.action == "ready") {
        const bool ready = this->ready(**m);
        resp.status = ready ? 200 : 503;
        resp.body = "{\"name\":";
        oip::append_json_string(resp.body, (*m)->name);
        resp.body += ready ? ",\"ready\":true}" : ",\"ready\":false}";
        finish(std::move(resp), r.model);
        return;
      }
      finish(im.metadata(**m), r.model);
      return;
    }
    case kRepository: {
      if (const auto denied = authorize(req.authorization, true)) {
        finish(im.denied(*denied), r.model);
        return;
      }
      if (r.action == "index") {
        resp.body = "[";
        bool first = true;
        for (const auto& e : im.models.index()) {
          if (!first) resp.body.push_back(',');
          first = false;
          resp.body += "{\"name\":";
          oip::append_json_string(resp.body, e.name);
          resp.body += ",\"version\":";
          oip::append_json_string(resp.body, e.version);
          resp.body += ",\"state\":";
          oip::append_json_string(resp.body, e.state);
          resp.body += ",\"reason\":";
          oip::append_json_string(resp.body, e.reason);
          resp.body.push_back('}');
        }
        resp.body.push_back(']');
        finish(std::move(resp));
        return;
      }
      const Status s = r.action == "load" ? im.models.load(r.model) : im.models.unload(r.model);
      if (!s) {
        finish(im.error(s), r.model);
        return;
      }
      resp.body = "{}";
      im.event(std::string(r.action), r.model);
      finish(std::move(resp), r.model);
      return;
    }
    case kInfer: break;
    default: finish(im.error(404, "no route")); return;
  }

  // Infer: authorize, validate the path, decode, run the shared path, encode.
  if (const auto denied = authorize(req.authorization, false)) {
    finish(im.denied(*denied), r.model);
    return;
  }
  auto m = im.lookup(r);
  if (!m) {
    finish(im.error(m.status()), r.model);
    return;
  }
  auto deadline = im.deadline_of(req.timeout_ms, req.received);
  if (!deadline) {
    finish(im.error(deadline.status()), r.model);
    return;
  }
  std::optional<std::size_t> json_length;
  if (!req.inference_header_length.empty()) {
    std::size_t v = 0;
    const auto& h = req.inference_header_length;
    const auto [p, ec] = std::from_chars(h.data(), h.data() + h.size(), v);
    if (ec != std::errc{} || p != h.data() + h.size()) {
      finish(im.error(400, "Inference-Header-Content-Length: not a byte count"), r.model);
      return;
    }
    json_length = v;
  }
  thread_local oip::RequestDecoder decoder;
  auto call = std::make_shared<InferCall>();
  const TimePoint t0 = system_clock().now();
  if (Status s = decoder.decode(req.body, req.body_capacity, json_length, call->request); !s) {
    finish(im.error(s), r.model);
    return;
  }
  const TimePoint t1 = system_clock().now();
  im.phase_parse->observe(t1 - t0);
  const ServedModel& model = **m;
  model.stats.parse_ns.fetch_add(ns(t1 - t0), std::memory_order_relaxed);
  call->model = model.name;
  call->version = model.version;
  call->idempotency_key = req.idempotency_key.empty() ? std::string_view(call->request.id) : req.idempotency_key;
  call->deadline = *deadline;
  call->cancelled = [reply] { return reply.cancelled(); };
  // The request's views stay valid until the reply is sent (HttpRequest).
  infer(call, [this, &model, req, call, reply = std::move(reply), request_id = std::string(request_id),
               endpoint = r.endpoint](Status s) mutable {
    auto& im = *impl_;
    HttpResponse resp;
    if (!s) {
      resp = im.error(s);
    } else {
      const TimePoint w0 = system_clock().now();
      const std::size_t jl = oip::encode_infer_response(call->result, call->request, resp.body);
      if (jl != resp.body.size()) {
        resp.inference_header_length = jl;
        resp.content_type = "application/octet-stream";
      }
      model.stats.write_ns.fetch_add(ns(system_clock().now() - w0), std::memory_order_relaxed);
    }
    im.count(endpoint, resp.status);
    im.access_log(req, resp.status, resp.body.size(), request_id, model.name);
    reply.send(std::move(resp));
  });
}

}  // namespace keel::net
