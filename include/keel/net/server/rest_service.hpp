#pragma once
// RestService: the OIP REST endpoints over a ModelRepository, and the one
// request path (admission → deadline → score → answer) that a gRPC front
// end can reuse through infer().
//
//   GET  /v2                                  server metadata
//   GET  /v2/health/live | /v2/health/ready   {"live"|"ready": bool}; ready 503 while not ready or draining
//   GET  /v2/models/{m}[/versions/{v}]        model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready  {"name", "ready"}
//   POST /v2/models/{m}[/versions/{v}]/infer  inference (codec.hpp)
//   GET  /v2/models[/{m}[/versions/{v}]]/stats  Triton's statistics extension
//   GET  /metrics                             Prometheus text: engines and server
//
// Admission is a Bulkhead with an adaptive (AIMD) limit, never waiting: past
// it a request is shed with 503 + Retry-After. The deadline is
// Keel-Timeout-Ms, capped by max_timeout, default_timeout when absent; a
// request whose deadline has passed before scoring is answered 504 unscored.
// Thread-safe.

#include <keel/core/clock.hpp>
#include <keel/core/deadline.hpp>
#include <keel/net/oip/infer.hpp>
#include <keel/net/server/http_server.hpp>
#include <keel/net/server/model_repository.hpp>
#include <keel/resilience/adaptive_limit.hpp>

#include <atomic>
#include <memory>
#include <string>

namespace keel::net {

struct ServiceConfig {
  Duration default_timeout = std::chrono::milliseconds(1000);
  Duration max_timeout = std::chrono::milliseconds(30000);
  AimdConfig admission{.initial_limit = 64, .min_limit = 4, .max_limit = 4096, .backoff_ratio = 0.9,
                       .latency_threshold = std::chrono::milliseconds(100)};
  int retry_after_s = 1;
  bool access_log = true;  // JSON lines on stdout
};

// What infer() needs besides the decoded request.
struct CallContext {
  std::string_view model;
  std::string_view version;
  std::string_view idempotency_key;
  Deadline deadline;
  const std::atomic<bool>* cancelled = nullptr;
};

class RestService final : public HttpHandler {
 public:
  RestService(ModelRepository& models, MetricsRegistry& metrics, ServiceConfig config);
  ~RestService() override;

  void handle(const HttpRequest& request, Reply reply) override;

  // The shared request path: admission, deadline, scoring. The Status maps
  // to HTTP/gRPC through status_map.hpp.
  [[nodiscard]] Status infer(const oip::InferRequest& request, const CallContext& ctx, oip::InferResult& result);

  // Readiness false at once (SIGTERM); in-flight requests still finish.
  void set_draining();
  [[nodiscard]] std::size_t in_flight() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::net
