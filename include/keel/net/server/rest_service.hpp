#pragma once
// RestService: the OIP REST endpoints over a ModelRepository, and the one
// request path (admission → queue → deadline → score → answer) that the gRPC
// front end shares through infer().
//
//   GET  /v2                                  server metadata
//   GET  /v2/health/live | /v2/health/ready   {"live"|"ready": bool}; ready 503 while not ready or draining
//   GET  /v2/models/{m}[/versions/{v}]        model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready  {"name", "ready"}
//   POST /v2/models/{m}[/versions/{v}]/infer  inference (codec.hpp)
//   GET  /v2/models[/{m}[/versions/{v}]]/stats  Triton's statistics extension
//   GET  /metrics                             Prometheus text: engines and server
//   POST /v2/repository/index                 Triton's repository extension: every model and its state
//   POST /v2/repository/models/{m}/load|unload  load (or re-read) / stop serving; bearer token required
//
// Admission is a Bulkhead with an adaptive (AIMD) limit, never waiting: past
// it a request is shed with 503 + Retry-After. The limit adapts to queue
// wait plus scoring time, so a backed-up scoring pool lowers it: one rule. The deadline is
// Keel-Timeout-Ms, capped by max_timeout, default_timeout when absent; a
// request whose deadline has passed before scoring is answered 504 unscored.
// Thread-safe.

#include <keel/core/clock.hpp>
#include <keel/core/deadline.hpp>
#include <keel/net/oip/infer.hpp>
#include <keel/net/server/http_server.hpp>
#include <keel/net/server/model_repository.hpp>
#include <keel/net/status_map.hpp>
#include <keel/resilience/adaptive_limit.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace keel::net {

struct ServiceConfig {
  Duration default_timeout = std::chrono::milliseconds(1000);
  Duration max_timeout = std::chrono::milliseconds(30000);
  AimdConfig admission{.initial_limit = 64, .min_limit = 4, .max_limit = 4096, .backoff_ratio = 0.9,
                       .latency_threshold = std::chrono::milliseconds(100)};
  // Threads that score, apart from the I/O threads, so that a slow model
  // holds no connection's thread. Its queue is bounded by the admission
  // limit (a queued call holds its admission permit). 0: score on the I/O
  // thread.
  unsigned scoring_threads = 2;
  // Run to completion (off by default): a call of at most inline_rows rows
  // is scored on the thread that decoded it, with no hand-off to the pool
  // and back, when its engine never waits (ServedModel::waits) and its
  // rows, at the model's recent time per row, take at most inline_budget.
  // Anything else goes to the pool. Measured on 2 cores (README): at 4
  // connections it saves 40 % of the server's CPU per call and a third of p99;
  // at 64 the one I/O thread becomes the limit (-22 % req/s), and two I/O
  // threads give back the rate but double p99. 0: every call to the pool.
  std::size_t inline_rows = 0;
  Duration inline_budget = std::chrono::microseconds(200);
  int retry_after_s = 1;
  bool access_log = true;  // JSON lines on stdout
  // Bearer token: required for the repository endpoints (which are
  // disabled, 403, without one) and, with auth_infer, for infer too.
  std::string auth_token;
  bool auth_infer = false;
};

// One call on the shared path: the decoded request, where it goes, and its
// answer. The front end owns it (shared) until `done` has run.
struct InferCall {
  oip::InferRequest request;
  oip::InferResult result;
  std::string_view model;            // must outlive the call
  std::string_view version;
  std::string_view idempotency_key;  // must outlive the call
  Deadline deadline;
  std::function<bool()> cancelled;   // the client went away (optional)
};

class RestService final : public HttpHandler {
 public:
  RestService(ModelRepository& models, MetricsRegistry& metrics, ServiceConfig config);
  ~RestService() override;

  void handle(const HttpRequest& request, Reply reply) override;

  // The shared request path. Admission is decided at once on the caller's
  // thread; an admitted call is scored on the scoring pool (inline when
  // scoring_threads is 0) and `done` runs there with its Status, which maps
  // to HTTP/gRPC through status_map.hpp. A call still queued at its deadline
  // is answered kDeadlineExceeded unscored; one whose client went away,
  // kCancelled. `done` runs exactly once, possibly before infer() returns.
  void infer(std::shared_ptr<InferCall> call, std::function<void(Status)> done);

  // The pieces a second front end (gRPC) shares, so that both answer alike.
  // A model by checked name and version: 400 for a name a URL must not
  // carry, 404 for an unknown model or version.
  [[nodiscard]] Result<const ServedModel*> lookup(std::string_view model, std::string_view version) const;
  // Every version of `name`, lowest first.
  [[nodiscard]] std::vector<const ServedModel*> versions(std::string_view name) const;
  // The call's deadline: `requested` (absent: default_timeout) capped by max_timeout.
  [[nodiscard]] Deadline deadline(std::optional<Duration> requested, TimePoint now) const;
  // Server and model readiness (false while draining).
  [[nodiscard]] bool ready() const;
  [[nodiscard]] bool ready(const ServedModel& model) const;
  // Whether `authorization` (the Authorization header or gRPC metadata,
  // "Bearer <token>") may call an infer (repository false) or repository
  // endpoint: nullopt when it may, else kUnauthorized or kForbidden.
  [[nodiscard]] std::optional<HttpLimit> authorize(std::string_view authorization, bool repository) const;
  // One JSON line of the access log (when enabled); `status` is the HTTP
  // status or, for gRPC, the gRPC code.
  struct Access {
    std::string_view protocol = "http";  // "http" | "grpc"
    std::string_view method;             // HTTP method or RPC name
    std::string_view path;
    int status = 0;
    std::string_view request_id;
    std::string_view traceparent;
    std::string_view model;
    std::size_t bytes_in = 0, bytes_out = 0;
    TimePoint received{};
  };
  void log_access(const Access& entry);

  // Readiness false at once (SIGTERM); in-flight requests still finish.
  void set_draining();
  [[nodiscard]] std::size_t in_flight() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::net
