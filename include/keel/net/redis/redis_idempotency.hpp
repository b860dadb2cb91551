#pragma once
// RedisIdempotencyStore: keel's IdempotencyStore shared by replicas through
// Redis, with Stripe's replay semantics and the IETF Idempotency-Key
// draft's codes.
//
// - The first caller of an id claims it atomically (SET key pending NX PX
//   claim_ttl, the pending record naming a random owner token), computes,
//   and replaces the claim with the result (a Lua script that writes only
//   while the caller still owns the claim). A failed computation releases
//   the claim (again only as its owner), so a retry computes again. A
//   crashed owner's claim expires after claim_ttl.
// - A later caller with the same id and payload gets the stored BatchResult
//   (replay). While the first is in flight it polls for the result until
//   its deadline (or max_wait without one), then gets kConflict marked
//   retryable: 409 "in flight", retry later.
// - The same id with another payload (model or exact feature bytes) is
//   kConflict, not retryable: 422 (net/status_map.hpp tells them apart).
// - Duplicates inside one process are joined first by an in-memory store
//   (single flight), so Redis sees one claim per process and id.
// - Redis down, slow or its breaker open: local-only idempotency (the
//   in-memory store), counted in the client's fallbacks ("idempotency").
// - deadline_share < 1: the claim ends by t0 + share x (deadline - t0) (t0:
//   the caller's `now`), so that Redis leaves the rest of the request's
//   time to the computation; past it the request is local-only (fallback
//   reason "budget"). Waiting for another replica's result and publishing
//   one keep the whole deadline (the waiter will not compute; a result not
//   published leaves the claim to expire after claim_ttl).
//
// Thread-safe.

#include <keel/net/redis/redis_client.hpp>
#include <keel/resilience/idempotency.hpp>

#include <atomic>
#include <memory>
#include <string>

namespace keel::net {

struct RedisIdempotencyOptions {
  std::string prefix = "keel:idem";
  Duration ttl = std::chrono::minutes(10);        // how long a completed result is replayed
  Duration claim_ttl = std::chrono::seconds(30);  // a crashed owner's claim lives this long
  Duration max_wait = std::chrono::seconds(10);   // waiting on another replica, without a deadline
  Duration poll_interval = std::chrono::milliseconds(2);  // first poll; doubles up to 16x
  double deadline_share = 1.0;                    // of each request's time, for the claim and the polls
  IdempotencyOptions local;                       // the in-process store in front
};

class RedisIdempotencyStore final : public IdempotencyStore {
 public:
  RedisIdempotencyStore(std::shared_ptr<RedisClient> client, RedisIdempotencyOptions opts = {});
  ~RedisIdempotencyStore() override;

  [[nodiscard]] IdempotencyStats stats() const noexcept override;
  [[nodiscard]] std::size_t waiting(std::string_view id) const noexcept override;
  // Clears the local store and deletes this prefix's records in Redis.
  void clear() noexcept override;

  [[nodiscard]] bool degraded() const noexcept { return !client_->up(); }
  [[nodiscard]] RedisClient& client() noexcept { return *client_; }
  // Times the computation ran here (not replayed, not joined).
  [[nodiscard]] std::uint64_t computed() const noexcept { return computed_.load(); }

 protected:
  Result<StoredBatch> run_erased(const IdempotencyKey& key, TimePoint now, Deadline deadline, ComputeFn fn,
                              void* ctx) noexcept override;

 private:
  Result<StoredBatch> shared(const IdempotencyKey& key, TimePoint now, Deadline deadline, ComputeFn fn,
                             void* ctx) noexcept;
  Result<StoredBatch> local_only(RedisFailure why, ComputeFn fn, void* ctx) noexcept;

  std::shared_ptr<RedisClient> client_;
  RedisIdempotencyOptions opts_;
  std::string ttl_ms_, claim_ms_;
  std::unique_ptr<InMemoryIdempotencyStore> local_;
  std::atomic<std::uint64_t> computed_{0}, replayed_{0}, joined_{0}, conflicts_{0}, in_flight_conflicts_{0};
};

}  // namespace keel::net
