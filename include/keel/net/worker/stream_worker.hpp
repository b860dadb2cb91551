#pragma once
// StreamWorker: scores requests taken off a Redis Stream, for callers that
// do not wait (`keel worker`).
//
// A request is a stream entry with the fields
//   id        the request's idempotency key (default: the entry id)
//   features  a JSON array of numbers, null for a missing value
// Each worker is one consumer of a consumer group. A round:
//   - XREADGROUP ... > reads at most `batch` new entries (the bound on
//     entries this worker holds unacknowledged);
//   - the entries' rows are scored in one ScoringEngine::score_batch, with
//     score_timeout as its deadline (a RemoteModel stage gets one request);
//   - every result and dead letter goes to Redis in one pipeline of Lua
//     scripts, one per entry, each atomic: the result is written once per
//     request id (SET <done_prefix>:<id> <fingerprint> NX PX done_ttl, and
//     only then XADD to `results` with id, entry, scores, stage, degraded),
//     and the entry is XACKed in the same script. So a round costs two
//     round trips, whatever its size. A crash before a script runs leaves
//     its entry pending: it is redelivered, and the marker keeps its result
//     from being written twice (at-least-once delivery, exactly once in
//     effect: a request id has one result, the first);
//   - the marker holds a fingerprint of the row (XXH3 of its doubles): the
//     same request id with other features is a conflict (the IETF
//     idempotency draft's 422), dead-lettered with that error;
//   - every claim_interval, XAUTOCLAIM takes over entries pending on any
//     consumer for longer than claim_idle (a crashed worker's);
//   - a poison entry (no features, not JSON, wrong length, a request the
//     engine refuses for good) goes at once to the `dead_letter` stream
//     with its error and is acknowledged; an entry failing for a retryable
//     reason is left pending, and once delivered more than max_deliveries
//     times it is dead-lettered with the last error seen here.
//
// Not thread-safe: one thread runs a worker (run more workers, or more
// processes, to scale). stats() may be read from any thread.

#include <keel/core/result.hpp>
#include <keel/engine/metrics.hpp>
#include <keel/engine/scoring_engine.hpp>
#include <keel/net/redis/redis_client.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace keel::net {

struct StreamWorkerOptions {
  std::string stream = "keel:requests";
  std::string group = "keel";
  std::string consumer;  // unique per worker; required
  std::string results = "keel:results";
  std::string dead_letter = "keel:dead";
  std::string done_prefix = "keel:done";
  Duration done_ttl = std::chrono::hours(24);  // how long a request id's result is remembered
  std::size_t batch = 32;
  Duration block = std::chrono::milliseconds(200);  // XREADGROUP BLOCK
  Duration claim_idle = std::chrono::seconds(30);
  Duration claim_interval = std::chrono::seconds(1);
  std::uint32_t max_deliveries = 5;
  Duration score_timeout = std::chrono::seconds(1);
  std::string start_id = "0";  // where a group created here starts reading
};

struct StreamWorkerStats {
  std::uint64_t read = 0;          // entries read new
  std::uint64_t claimed = 0;       // entries taken over by XAUTOCLAIM
  std::uint64_t written = 0;       // results written
  std::uint64_t already_written = 0;  // redelivered entries whose result was already there
  std::uint64_t dead_lettered = 0;
  std::uint64_t left_pending = 0;  // retryable failures, to be redelivered
  std::uint64_t redis_errors = 0;  // rounds that could not reach Redis
};

class StreamWorker {
 public:
  // Throws keel::Error (kInvalidInput) for a bad option.
  StreamWorker(std::shared_ptr<RedisClient> redis, ScoringEngine& engine, StreamWorkerOptions opts);
  ~StreamWorker();
  StreamWorker(const StreamWorker&) = delete;
  StreamWorker& operator=(const StreamWorker&) = delete;

  // XGROUP CREATE ... MKSTREAM (an existing group is fine).
  [[nodiscard]] Status ensure_group();
  // One round: claims stale entries when due, reads new ones (blocking up
  // to `block`), handles them. Returns how many entries were handled.
  [[nodiscard]] Result<std::size_t> poll_once();
  // Rounds until `stop`; backs off (up to 1 s) while Redis is unreachable.
  void run(const std::atomic<bool>& stop);

  [[nodiscard]] StreamWorkerStats stats() const noexcept;
  [[nodiscard]] std::string stats_json() const;
  // keel_worker_entries_total{stream,result} (read, claimed, written,
  // already_written, dead_lettered, left_pending) and
  // keel_worker_redis_errors_total{stream}. The registry may outlive the worker.
  void register_metrics(MetricsRegistry& registry) const;

  struct State;

 private:
  std::shared_ptr<State> s_;
};

}  // namespace keel::net
