#pragma once
// IdempotencyStore: a request id seen again within a TTL gets the very same
// answer back, without scoring again. The record holds a BatchResult (a
// single request is a batch of one), so a retried batch gets the same
// per-row answers. Concurrent duplicates are computed once (single flight):
// the first caller computes, the others wait for it (up to their own
// deadline, on the store's Clock: the engine's) and all get its answer. The
// same id with a different payload (model or feature bytes) is kConflict,
// never a silent overwrite. Only computations that answered are remembered
// (remembered(): ok, and at least one row answered; a batch's per-row
// errors are part of its answer): a failed one, or a batch whose every row
// failed, is handed to the callers that joined it and then forgotten, so
// that a client's retry with the same id tries again. For a batch of one
// this is "the row answered".
//
// The interface is small so that a shared backend (Redis) can implement it;
// InMemoryIdempotencyStore is the in-process one, bounded in entries and
// bytes. Both thread-safe.

#include <keel/core/batch.hpp>
#include <keel/core/clock.hpp>
#include <keel/core/deadline.hpp>
#include <keel/core/request.hpp>
#include <keel/core/result.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>

namespace keel {

struct IdempotencyKey {
  std::string_view id;
  std::string_view model;           // resolved model name: part of the payload
  std::span<const float> features;  // compared bit for bit
};

struct IdempotencyStats {
  std::uint64_t computed = 0;   // first callers that ran the computation
  std::uint64_t replayed = 0;   // answered from a completed record
  std::uint64_t joined = 0;     // waited for an in-flight computation
  std::uint64_t conflicts = 0;  // same id, other payload
  std::uint64_t evictions = 0;  // completed records dropped to respect the bounds
  std::uint64_t rejected = 0;   // store full of in-flight work: kOverloaded
  std::size_t entries = 0;
  std::size_t bytes = 0;
};

// What a record holds: immutable once computed, shared by every replay.
using StoredBatch = std::shared_ptr<const BatchResult>;

class IdempotencyStore {
 public:
  virtual ~IdempotencyStore() = default;

  // Returns the remembered result for key.id, or joins the computation in
  // flight, or runs `compute` (a callable returning Result<StoredBatch>,
  // invoked at most once, on this thread). `now` is the caller's entry
  // time; a wait for a duplicate ends at `deadline` (kDeadlineExceeded).
  template <class F>
  Result<StoredBatch> run(const IdempotencyKey& key, TimePoint now, Deadline deadline, F&& compute) noexcept {
    using Fn = std::remove_reference_t<F>;
    static_assert(std::is_nothrow_invocable_r_v<Result<StoredBatch>, Fn&>, "compute must be noexcept");
    return run_erased(
        key, now, deadline, [](void* ctx) noexcept -> Result<StoredBatch> { return (*static_cast<Fn*>(ctx))(); },
        const_cast<void*>(static_cast<const void*>(&compute)));
  }

  [[nodiscard]] virtual IdempotencyStats stats() const noexcept = 0;
  // Callers currently waiting on the computation in flight for `id` (for
  // tests and health).
  [[nodiscard]] virtual std::size_t waiting(std::string_view id) const noexcept = 0;
  virtual void clear() noexcept = 0;

 protected:
  using ComputeFn = Result<StoredBatch> (*)(void* ctx) noexcept;
  virtual Result<StoredBatch> run_erased(const IdempotencyKey& key, TimePoint now, Deadline deadline,
                                         ComputeFn fn, void* ctx) noexcept = 0;
};

struct IdempotencyOptions {
  Duration ttl = std::chrono::minutes(10);
  std::size_t max_entries = 100'000;
  std::size_t max_bytes = 64u << 20;  // approximate: ids, payloads, responses
  std::size_t shards = 8;             // rounded up to a power of two
};

// Whether a store keeps this result for replays (see above). Every store
// uses it, so that replicas agree on what is replayed.
[[nodiscard]] bool remembered(const Result<StoredBatch>& r) noexcept;

// Approximate memory a stored batch holds (for byte bounds).
[[nodiscard]] std::size_t stored_bytes(const BatchResult& b) noexcept;

// In-process store. Duplicates wait on `clock` (pass the engine's, so that a
// ManualClock test means what it says). Thread-safe.
class InMemoryIdempotencyStore final : public IdempotencyStore {
 public:
  explicit InMemoryIdempotencyStore(IdempotencyOptions opts = {}, Clock& clock = system_clock());
  ~InMemoryIdempotencyStore() override;
  InMemoryIdempotencyStore(const InMemoryIdempotencyStore&) = delete;
  InMemoryIdempotencyStore& operator=(const InMemoryIdempotencyStore&) = delete;

  [[nodiscard]] IdempotencyStats stats() const noexcept override;
  [[nodiscard]] std::size_t waiting(std::string_view id) const noexcept override;
  void clear() noexcept override;

 protected:
  Result<StoredBatch> run_erased(const IdempotencyKey& key, TimePoint now, Deadline deadline, ComputeFn fn,
                                 void* ctx) noexcept override;

 private:
  struct Shard;
  struct Record;
  Shard& shard_for(std::string_view id) const noexcept;

  IdempotencyOptions opts_;
  Clock& clock_;
  std::size_t mask_ = 0;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace keel
