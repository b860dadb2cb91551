#pragma once
// CircuitBreaker: stops calling a dependency that keeps failing, then lets
// exactly N probe calls through to test whether it recovered.
//
//   closed ──(failure rate or slow-call rate ≥ threshold, once the window
//             holds minimum_calls)──▶ open ──(wait_in_open)──▶ half-open
//   half-open ──(all N probes succeed)──▶ closed
//   half-open ──(any probe fails or is slow)──▶ open (the wait grows by
//             wait_multiplier on each consecutive trip, up to max_wait_in_open)
//   forced-open rejects everything; disabled lets everything through
//   uncounted. Both are left only by reset().
//
// Thread-safe. The closed path takes no lock: try_acquire() is one atomic
// load, recording a success two relaxed RMWs in the window plus a counter.
// Transitions (rare) take a mutex and run the listeners under it, in
// order. Every transition bumps a generation; an outcome whose permit was
// issued in an earlier generation is counted in the stats but not in the
// window, so results from before a trip never decide the next state.
//
// Time: the breaker reads its Clock only when it must (open-state expiry,
// a trip). Callers that already hold `now` pass it in.

#include <keel/core/clock.hpp>
#include <keel/core/status.hpp>
#include <keel/resilience/detail/window.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace keel {

enum class BreakerState : std::uint8_t { kClosed, kOpen, kHalfOpen, kForcedOpen, kDisabled };
std::string_view to_string(BreakerState s) noexcept;

// A set of StatusCodes as a bit mask.
constexpr std::uint32_t code_mask(std::initializer_list<StatusCode> codes) noexcept {
  std::uint32_t m = 0;
  for (StatusCode c : codes) m |= 1U << static_cast<unsigned>(c);
  return m;
}
constexpr bool in_mask(std::uint32_t mask, StatusCode c) noexcept { return (mask >> static_cast<unsigned>(c)) & 1U; }

// Defaults are chosen for in-process and near-process models answering in
// micro- to milliseconds: trip fast, probe a few calls, back off on
// repeated trips.
struct CircuitBreakerConfig {
  enum class Window : std::uint8_t { kCount, kTime };
  // Count window: the last `window_size` calls. Time window: the calls of
  // the last `window_size` seconds (1 s buckets).
  Window window = Window::kCount;
  std::uint32_t window_size = 100;
  // Calls the window must hold before a rate can trip the breaker.
  std::uint32_t minimum_calls = 20;
  // Trip when failures / calls ≥ this, in (0, 1].
  double failure_rate_threshold = 0.5;
  // Trip when slow calls / calls ≥ this, in (0, 1]. A call is slow when it
  // takes ≥ slow_call_duration. Off by default (Duration::max()), since
  // measuring costs two clock reads per call.
  double slow_call_rate_threshold = 1.0;
  Duration slow_call_duration = Duration::max();
  // Time spent open before probing. wait_multiplier > 1 grows it on each
  // consecutive trip (open → half-open → open) up to max_wait_in_open.
  Duration wait_in_open = std::chrono::seconds(5);
  double wait_multiplier = 1.0;
  Duration max_wait_in_open = std::chrono::seconds(60);
  // Probe calls admitted in half-open (exactly this many, 1..65535).
  std::uint32_t half_open_probes = 3;
  // Codes that count as failures. Codes in `ignored_codes` count as
  // neither (a caller's bad input says nothing about the model's health).
  // Any other code counts as a success.
  std::uint32_t failure_codes = code_mask({StatusCode::kModelError, StatusCode::kDeadlineExceeded,
                                           StatusCode::kUnavailable, StatusCode::kOverloaded,
                                           StatusCode::kInternal});
  std::uint32_t ignored_codes = code_mask({StatusCode::kInvalidInput, StatusCode::kNotFound, StatusCode::kConflict,
                                           StatusCode::kCancelled});
};

// Counters for metrics; a snapshot, not atomic as a whole.
struct BreakerStats {
  BreakerState state = BreakerState::kClosed;
  std::uint64_t calls = 0;        // permitted calls whose outcome was recorded
  std::uint64_t successes = 0;
  std::uint64_t failures = 0;
  std::uint64_t slow_calls = 0;
  std::uint64_t ignored = 0;
  std::uint64_t rejections = 0;   // calls refused while open / forced open / out of probes
  std::uint64_t transitions = 0;
  std::int64_t window_calls = 0;  // what the window holds now
  std::int64_t window_failures = 0;
  std::int64_t window_slow = 0;
};

class CircuitBreaker {
 public:
  using Config = CircuitBreakerConfig;
  // A permission to make one call. Record its outcome (record/on_success)
  // or give it back (release) exactly once.
  class Permit {
   public:
    Permit() = default;
    explicit operator bool() const noexcept { return kind_ != Kind::kRejected; }
    [[nodiscard]] bool probe() const noexcept { return kind_ == Kind::kProbe; }

   private:
    friend class CircuitBreaker;
    enum class Kind : std::uint8_t { kRejected, kClosed, kProbe, kPassThrough };
    Permit(std::uint32_t gen, Kind k) : gen_(gen), kind_(k) {}
    std::uint32_t gen_ = 0;
    Kind kind_ = Kind::kRejected;
  };
  // Called on every transition, under the breaker's transition lock, in
  // order. Must not call force_open/disable/reset on the same breaker.
  using Listener = std::function<void(const CircuitBreaker&, BreakerState from, BreakerState to)>;

  // Throws keel::Error (kInvalidInput) naming the bad field.
  explicit CircuitBreaker(std::string name, Config config = {}, Clock& clock = system_clock());
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // The null object: a breaker that is disabled, so it never opens and
  // counts nothing but calls.
  static std::shared_ptr<CircuitBreaker> never_open(std::string name = "never_open");

  [[nodiscard]] Permit try_acquire(TimePoint now) noexcept { return acquire(&now); }
  [[nodiscard]] Permit try_acquire() noexcept { return acquire(nullptr); }

  // A success that was not timed (fine when measures_duration() is false).
  void on_success(Permit p, TimePoint now) noexcept {
    if (p.kind_ == Permit::Kind::kClosed) {
      successes_.fetch_add(1, std::memory_order_relaxed);
      if (generation(word_.load(std::memory_order_acquire)) == p.gen_) window_record(detail::kRecorded, now);
      return;
    }
    record_slow_path(p, StatusCode::kOk, Duration::zero(), now);
  }
  // Any outcome, with the call's duration (for the slow-call rate).
  void record(Permit p, StatusCode code, Duration elapsed, TimePoint now) noexcept {
    if (code == StatusCode::kOk && elapsed < config_.slow_call_duration) {
      on_success(p, now);
      return;
    }
    record_slow_path(p, code, elapsed, now);
  }
  // The permitted call never ran (e.g. a bulkhead shed it): hands a probe
  // back so half-open cannot starve.
  void release(Permit p) noexcept;

  // Whether outcomes need a duration (slow-call detection on).
  [[nodiscard]] bool measures_duration() const noexcept { return config_.slow_call_duration != Duration::max(); }
  [[nodiscard]] BreakerState state() const noexcept { return state_of(word_.load(std::memory_order_acquire)); }
  [[nodiscard]] BreakerStats stats() const;
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const Config& config() const noexcept { return config_; }
  // kUnavailable naming the breaker and its state, for a rejected call.
  [[nodiscard]] Status rejection() const;

  void add_listener(Listener l);
  void force_open();
  void disable();
  void reset();  // to closed, window emptied

 private:
  // word_ layout: state (8 bits) | probes left (16) | probe successes (16) | generation (24).
  static constexpr BreakerState state_of(std::uint64_t w) noexcept { return static_cast<BreakerState>(w & 0xFF); }
  static constexpr std::uint32_t probes_left(std::uint64_t w) noexcept { return (w >> 8) & 0xFFFF; }
  static constexpr std::uint32_t probe_ok(std::uint64_t w) noexcept { return (w >> 24) & 0xFFFF; }
  static constexpr std::uint32_t generation(std::uint64_t w) noexcept { return static_cast<std::uint32_t>(w >> 40); }
  static constexpr std::uint64_t make_word(BreakerState s, std::uint32_t probes, std::uint32_t ok,
                                           std::uint32_t gen) noexcept {
    return static_cast<std::uint64_t>(s) | (static_cast<std::uint64_t>(probes) << 8) |
           (static_cast<std::uint64_t>(ok) << 24) | (static_cast<std::uint64_t>(gen & 0xFFFFFF) << 40);
  }

  Permit acquire(const TimePoint* now) noexcept;
  void record_slow_path(Permit p, StatusCode code, Duration elapsed, TimePoint now) noexcept;
  void window_record(std::uint8_t outcome, TimePoint now) noexcept {
    if (count_window_) {
      count_window_->record(outcome);
    } else {
      time_window_->record(outcome, now);
    }
  }
  [[nodiscard]] detail::WindowCounts window_counts(TimePoint now) const noexcept {
    return count_window_ ? count_window_->counts() : time_window_->counts(now);
  }
  // Moves to `to` if the generation is still `gen` (or unconditionally when
  // gen is nullopt). Returns whether it moved.
  bool transition(std::optional<std::uint32_t> gen, BreakerState to, TimePoint now) noexcept;

  std::string name_;
  Config config_;
  Clock& clock_;
  std::atomic<std::uint64_t> word_;
  std::unique_ptr<detail::CountWindow> count_window_;
  std::unique_ptr<detail::TimeWindow> time_window_;
  std::atomic<std::int64_t> open_until_ns_{0};

  std::atomic<std::uint64_t> successes_{0};
  std::atomic<std::uint64_t> failures_{0};
  std::atomic<std::uint64_t> slow_{0};
  std::atomic<std::uint64_t> ignored_{0};
  std::atomic<std::uint64_t> rejections_{0};
  std::atomic<std::uint64_t> transitions_{0};

  std::mutex mu_;                    // guards the members below and serialises transitions
  std::uint32_t consecutive_trips_ = 0;
  std::vector<Listener> listeners_;
};

}  // namespace keel
