#pragma once
// RemoteModel: a keel::Model that scores on other `keel serve` replicas (or
// any Open Inference Protocol server, over REST or gRPC) so that a FallbackChain stage can
// be "the replicas in another zone".
//
// Per call:
//   - the call's deadline (PredictOptions::deadline; default_timeout when it
//     has none) bounds everything; each attempt gets min(attempt_timeout,
//     time left) and passes it on (REST: Keel-Timeout-Ms; gRPC: the call's
//     deadline, sent as grpc-timeout), so the server gives up when the
//     caller would;
//   - an endpoint is chosen by power-of-two-choices over a peak-EWMA cost
//     (latency estimate x (in flight + 1), after Finagle; a failure counts
//     as attempt_timeout of latency), among the
//     endpoints available in the first tier that has enough of them:
//     active endpoints of the local zone (while at least min_local_available
//     are available), then active endpoints of every zone, then standbys
//     (active-passive: a standby takes traffic only when no active one is
//     available, and is given up as soon as one is). With none available at
//     all, any untried endpoint is tried (Envoy's panic mode);
//   - requests carry no OIP id: a server takes the id as an idempotency key,
//     and ids counted by each client would collide across clients;
//   - with hedging on (HedgeOptions), an attempt still unanswered after the
//     p95 of recent answers gets a copy on another endpoint, within a budget;
//   - a failed attempt (connect/IO error, timeout, 5xx, 404) fails over to an
//     untried endpoint, up to max_attempts. A peer's own overload (429, 503)
//     and a degraded answer (the peer's fallback) fail over too but do not
//     count against the endpoint. The request's own fault (400, 409, 422, a
//     failed row) is returned at once.
//
// Outlier ejection (Envoy's consecutive-5xx): `consecutive_failures` failures
// in a row eject an endpoint for base_ejection x times ejected (at most
// max_ejection); at most max_ejection_percent of the endpoints are ejected
// at once, but at least one may be, and never the last one not ejected.
// The ejection ends by itself; a success at any time resets the count, and
// each health check passed outside an ejection lowers the multiplier by
// one. Active health checks (GET /v2/models/<m>/ready every
// health_interval, on a thread of its own) mark an endpoint unhealthy, and
// so unavailable, until one passes.
//
// Connections: REST keeps a keep-alive pool per endpoint (max_idle kept),
// gRPC one channel; either way at most max_connections calls are in flight
// to an endpoint at once (beyond: it is skipped for the call, not failed).
//
// Metadata (features, outputs) comes from the first endpoint that answers
// GET /v2/models/<model> at construction; every endpoint must serve the same
// model. The answer is transformed outputs only (OIP has no margin).
//
// Thread-safe: predict() and the accessors may be called concurrently.

#include <keel/core/clock.hpp>
#include <keel/engine/metrics.hpp>
#include <keel/engine/scoring_engine.hpp>
#include <keel/model/model.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace keel::net {

struct RemoteEndpoint {
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string zone;      // compared with RemoteModelOptions::local_zone
  bool standby = false;  // passive: used only when no active endpoint is available
};

// Envoy's outlier detection defaults.
struct OutlierOptions {
  std::uint32_t consecutive_failures = 5;
  Duration base_ejection = std::chrono::seconds(30);
  Duration max_ejection = std::chrono::seconds(300);
  std::uint32_t max_ejection_percent = 10;
};

// Hedging (Dean & Barroso, "The Tail at Scale"): an attempt that has not
// answered after the observed `quantile` of this model's answer times (at
// least min_delay) gets a second copy on another endpoint, and the first
// good answer wins; the loser's connection is closed. Off unless enabled.
// The budget, after Finagle's RetryBudget: each call deposits
// budget_percent/100 of a hedge, up to `burst` saved; a hedge spends one.
// So hedges stay below budget_percent of calls plus `burst`, however slow
// the endpoints get. Until min_samples answers are seen there is no delay
// to derive and no hedge. Hedges run on `threads` threads of their own.
struct HedgeOptions {
  bool enabled = false;
  double quantile = 0.95;
  Duration min_delay = std::chrono::milliseconds(1);
  std::size_t min_samples = 20;
  double budget_percent = 10;
  double burst = 10;
  unsigned threads = 4;
};

struct RemoteHedgeStats {
  std::uint64_t launched = 0;  // second copies started
  std::uint64_t won = 0;       // ... that answered first
  std::uint64_t no_budget = 0; // hedges due but not sent: the budget was spent
  double delay_ms = -1;        // the current delay; -1: too few samples yet
};

// How a RemoteModel talks to its endpoints: OIP REST (JSON bodies over
// keep-alive HTTP/1.1) or OIP gRPC (raw FP32/FP64 tensors over one HTTP/2
// channel per endpoint; the endpoints' ports are then their gRPC ports).
// Metadata, health checks and infer all go over the one chosen.
enum class RemoteTransport : std::uint8_t { kRest, kGrpc };

struct RemoteModelOptions {
  std::vector<RemoteEndpoint> endpoints;
  RemoteTransport transport = RemoteTransport::kRest;
  std::string model;           // the served model's name
  std::string version;         // empty: the server's default version
  std::string local_zone;
  std::size_t min_local_available = 1;  // fewer local ones available: use other zones too
  Duration connect_timeout = std::chrono::milliseconds(100);
  Duration attempt_timeout = std::chrono::milliseconds(250);
  Duration default_timeout = std::chrono::seconds(1);  // calls without a deadline (canaries)
  std::size_t max_attempts = 3;
  std::size_t max_connections = 64;  // per endpoint, in use at once
  std::size_t max_idle = 16;         // per endpoint, kept open
  OutlierOptions outlier;
  HedgeOptions hedge;
  Duration health_interval = std::chrono::seconds(1);  // zero: no active health checks
  Duration health_timeout = std::chrono::milliseconds(200);
  Duration metadata_timeout = std::chrono::seconds(2);
  Duration ewma_decay = std::chrono::seconds(10);  // peak-EWMA time constant
  Clock* clock = nullptr;  // ejection times; nullptr: system_clock(). Sockets use real time.
  std::string name;        // metrics label and ModelInfo::id; empty: the model name
};

struct RemoteEndpointStats {
  std::string address;  // "host:port"
  std::string zone;
  bool standby = false;
  bool ejected = false;
  bool healthy = true;
  std::uint64_t answers = 0;    // 2xx answers
  std::uint64_t failures = 0;   // counted against the endpoint
  std::uint64_t overloaded = 0;  // 429/503 and degraded answers (not counted)
  std::uint64_t ejections = 0;
  std::size_t in_flight = 0;
  double latency_ms = 0;  // the peak-EWMA estimate
};

class RemoteModel final : public Model {
 public:
  // Reads the model's metadata; throws keel::Error (kUnavailable) when no
  // endpoint answers it within metadata_timeout, kInvalidInput for a bad
  // option (naming it). Starts the health checker.
  explicit RemoteModel(RemoteModelOptions opts);
  ~RemoteModel() override;
  RemoteModel(const RemoteModel&) = delete;
  RemoteModel& operator=(const RemoteModel&) = delete;

  [[nodiscard]] const ModelInfo& info() const noexcept override;
  [[nodiscard]] Status predict(std::span<const float> rows, std::size_t n_rows, std::span<float> out,
                               const PredictOptions& opts = {}) const noexcept override;
  // float64 rows are sent as FP64: the remote model gets the same doubles.
  [[nodiscard]] Status predict(std::span<const double> rows, std::size_t n_rows, std::span<float> out,
                               const PredictOptions& opts = {}) const noexcept override;
  using Model::predict;

  [[nodiscard]] std::vector<RemoteEndpointStats> endpoint_stats() const;
  [[nodiscard]] RemoteHedgeStats hedge_stats() const;
  // ok while some endpoint is available; detail lists each endpoint's state.
  [[nodiscard]] ComponentHealth health() const;
  [[nodiscard]] std::optional<ComponentHealth> component_health() const override { return health(); }
  // keel_remote_answers_total{remote,endpoint,result}, keel_remote_ejections_total,
  // keel_remote_hedges_total{remote,result=launched|won|no_budget},
  // keel_remote_endpoint_available and keel_remote_in_flight {remote,endpoint}.
  // The registry may outlive the model.
  void register_metrics(MetricsRegistry& registry) const;

  struct State;

 private:
  std::shared_ptr<State> s_;
};

}  // namespace keel::net
