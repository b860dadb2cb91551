#pragma once
// AimdLimit: an adaptive concurrency limit (additive increase,
// multiplicative decrease), after Netflix's concurrency-limits AIMDLimit.
// Each completed call is a sample: a drop (the call was shed, timed out, or
// took longer than latency_threshold) cuts the limit to limit * backoff_ratio;
// a good sample while the limit is actually in use (in flight ≥ limit / 2)
// raises it by one. The limit so finds the concurrency at which latency
// starts to degrade and stays below it, shedding load before latency
// collapses. Thread-safe, lock-free (one CAS per sample).

#include <keel/core/clock.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace keel {

struct AimdConfig {
  std::uint32_t initial_limit = 20;
  std::uint32_t min_limit = 1;
  std::uint32_t max_limit = 1000;
  double backoff_ratio = 0.9;  // in [0.5, 1)
  // A call slower than this counts as a drop.
  Duration latency_threshold = std::chrono::milliseconds(100);
};

class AimdLimit {
 public:
  // Throws keel::Error (kInvalidInput) naming the bad field.
  explicit AimdLimit(AimdConfig config = {});

  [[nodiscard]] std::uint32_t limit() const noexcept { return limit_.load(std::memory_order_relaxed); }
  // One completed call: its latency, the calls in flight when it started,
  // and whether it was dropped (shed or failed on time).
  void on_sample(Duration latency, std::uint32_t in_flight, bool dropped) noexcept;
  [[nodiscard]] const AimdConfig& config() const noexcept { return config_; }

 private:
  AimdConfig config_;
  std::atomic<std::uint32_t> limit_;
};

}  // namespace keel
