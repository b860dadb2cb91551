#pragma once
// Bulkhead: a limit on concurrent calls into one component, so a slow
// dependency holds at most that many of the host's threads. A full bulkhead
// rejects with kOverloaded at once, or after a bounded wait (max_wait, and
// never past the request's deadline). Optionally the limit adapts (AIMD,
// see adaptive_limit.hpp).
//
// Thread-safe. Acquiring is a CAS loop on one atomic counter; the number of
// admitted calls never exceeds the limit. Waiting callers (max_wait > 0
// only) park on a mutex+condvar; a release notifies only when someone waits.
// Tolerated: when an adaptive limit shrinks below the calls in flight,
// those calls finish; new calls are refused until in-flight < limit.

#include <keel/core/clock.hpp>
#include <keel/core/deadline.hpp>
#include <keel/core/status.hpp>
#include <keel/resilience/adaptive_limit.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace keel {

struct BulkheadConfig {
  std::uint32_t max_concurrent = 64;
  // How long a caller may wait for a slot; zero fails fast (the default,
  // since a scoring request usually has somewhere else to go).
  Duration max_wait = Duration::zero();
  // When set, the limit adapts within [min_limit, max_limit] and
  // max_concurrent is ignored.
  std::optional<AimdConfig> adaptive;
};

struct BulkheadStats {
  std::uint32_t in_flight = 0;
  std::uint32_t limit = 0;
  std::uint32_t max_in_flight = 0;  // high-water mark
  std::uint64_t admitted = 0;
  std::uint64_t rejections = 0;
  std::uint64_t waits = 0;          // admissions that had to wait
  std::uint32_t waiting = 0;        // callers waiting for a slot right now
};

class Bulkhead {
 public:
  using Config = BulkheadConfig;

  // Holds one slot; released on destruction or release(). Move-only.
  class Permit {
   public:
    Permit() = default;
    Permit(Permit&& o) noexcept : owner_(o.owner_), in_flight_(o.in_flight_) { o.owner_ = nullptr; }
    Permit& operator=(Permit&& o) noexcept {
      if (this != &o) {
        release();
        owner_ = o.owner_;
        in_flight_ = o.in_flight_;
        o.owner_ = nullptr;
      }
      return *this;
    }
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit() { release(); }

    explicit operator bool() const noexcept { return owner_ != nullptr; }
    // Releases with a sample for the adaptive limit: the call's latency and
    // whether it failed in a way that signals overload (timeout, shed).
    void release(Duration latency, bool dropped) noexcept {
      if (owner_) std::exchange(owner_, nullptr)->release_slot(latency, in_flight_, dropped, true);
    }
    void release() noexcept {
      if (owner_) std::exchange(owner_, nullptr)->release_slot(Duration::zero(), in_flight_, false, false);
    }

   private:
    friend class Bulkhead;
    Permit(Bulkhead* b, std::uint32_t in_flight) : owner_(b), in_flight_(in_flight) {}
    Bulkhead* owner_ = nullptr;
    std::uint32_t in_flight_ = 0;
  };

  // Throws keel::Error (kInvalidInput) naming the bad field.
  explicit Bulkhead(std::string name, Config config = {}, Clock& clock = system_clock());
  Bulkhead(const Bulkhead&) = delete;
  Bulkhead& operator=(const Bulkhead&) = delete;

  // The null object: never full, counts nothing, costs no atomics.
  static std::shared_ptr<Bulkhead> unlimited(std::string name = "unlimited");

  // Never waits.
  [[nodiscard]] Permit try_acquire() noexcept;
  // Waits up to min(max_wait, deadline) for a slot.
  [[nodiscard]] Permit acquire(Deadline deadline) noexcept;

  [[nodiscard]] bool adaptive() const noexcept { return aimd_.has_value(); }
  [[nodiscard]] std::uint32_t limit() const noexcept { return aimd_ ? aimd_->limit() : config_.max_concurrent; }
  [[nodiscard]] BulkheadStats stats() const noexcept;
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  // As built: max_wait > 0 means acquire() may park its caller.
  [[nodiscard]] const Config& config() const noexcept { return config_; }
  // kOverloaded naming the bulkhead, for a rejected call.
  [[nodiscard]] Status rejection() const;

 private:
  bool try_take(std::uint32_t& in_flight) noexcept;
  void release_slot(Duration latency, std::uint32_t in_flight, bool dropped, bool sampled) noexcept;

  std::string name_;
  Config config_;
  Clock& clock_;
  bool real_clock_;
  bool unlimited_ = false;
  std::optional<AimdLimit> aimd_;
  std::atomic<std::uint32_t> in_flight_{0};
  std::atomic<std::uint32_t> max_in_flight_{0};
  std::atomic<std::uint64_t> admitted_{0};
  std::atomic<std::uint64_t> rejections_{0};
  std::atomic<std::uint64_t> waits_{0};
  std::atomic<std::uint32_t> waiters_{0};
  std::mutex mu_;  // only for waiting callers
  std::condition_variable cv_;
};

}  // namespace keel
