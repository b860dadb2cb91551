#pragma once
// A seedable, thread-safe source of uniform doubles for jitter and fault
// injection: a shared atomic counter run through the splitmix64 finaliser.
// One relaxed fetch_add per draw; single-threaded use replays exactly for a
// given seed.

#include <atomic>
#include <cstdint>

namespace keel::detail {

class SplitMix {
 public:
  explicit SplitMix(std::uint64_t seed) noexcept : state_(seed) {}

  std::uint64_t next() noexcept {
    std::uint64_t z = state_.fetch_add(0x9E3779B97F4A7C15ULL, std::memory_order_relaxed) + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  void reseed(std::uint64_t seed) noexcept { state_.store(seed, std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> state_;
};

}  // namespace keel::detail
