#pragma once
// EventLog: structured events as JSON lines
//   {"ts":"2026-11-28T13:20:01.123456Z","level":"warn","event":"stage_failed","stage":"primary",...}
// written to a pluggable LogSink. Repeated events are rate limited per
// (event, key): at most `burst` lines per `window`; the next line that gets
// through carries "suppressed":N. When a level is off, KEEL_LOG costs one
// relaxed load and a compare: its arguments are not even evaluated.
// EventLog is thread-safe; sinks must be too.

#include <keel/core/clock.hpp>

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace keel {

enum class LogLevel : std::uint8_t { kDebug, kInfo, kWarn, kError, kOff };
std::string_view to_string(LogLevel l) noexcept;
// "debug", "info", "warn"/"warning", "error", "off"; false when unknown.
bool parse_log_level(std::string_view s, LogLevel& out) noexcept;

// Receives one complete JSON line (with its trailing '\n') per event.
class LogSink {
 public:
  virtual ~LogSink() = default;
  virtual void write(std::string_view line) noexcept = 0;
};

// Writes to a std::ostream (std::clog by default), one line at a time under
// a mutex. Thread-safe.
class OstreamSink final : public LogSink {
 public:
  explicit OstreamSink(std::ostream& os);
  OstreamSink();
  void write(std::string_view line) noexcept override;

 private:
  std::mutex mu_;
  std::ostream* os_;  // guarded by mu_
};

// Keeps the lines in memory (tests, a debug endpoint). Thread-safe.
class MemorySink final : public LogSink {
 public:
  void write(std::string_view line) noexcept override;
  [[nodiscard]] std::vector<std::string> lines() const;
  void clear();

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;  // guarded by mu_
};

// One key/value of an event. Views: the strings must live until emit returns.
struct LogField {
  using Value = std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool>;
  std::string_view key;
  Value value;

  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  LogField(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  LogField(std::string_view k, bool v) : key(k), value(v) {}
  LogField(std::string_view k, double v) : key(k), value(v) {}
  LogField(std::string_view k, float v) : key(k), value(double(v)) {}
  template <class I>
    requires(std::is_integral_v<I> && !std::is_same_v<I, bool>)
  LogField(std::string_view k, I v)
      : key(k), value(std::is_signed_v<I> ? Value(std::int64_t(v)) : Value(std::uint64_t(v))) {}
};

struct EventLogOptions {
  LogLevel level = LogLevel::kInfo;
  std::uint32_t burst = 5;                            // lines per key per window
  Duration window = std::chrono::seconds(10);
  std::size_t max_keys = 1024;                        // rate-limit state kept, bounded
};

class EventLog {
 public:
  // A null sink means "discard" (level forced off).
  explicit EventLog(std::shared_ptr<LogSink> sink, EventLogOptions opts = {}, const Clock& clock = system_clock());
  // Off, no sink.
  EventLog();

  [[nodiscard]] bool enabled(LogLevel l) const noexcept {
    return l != LogLevel::kOff && static_cast<std::uint8_t>(l) >= level_.load(std::memory_order_relaxed);
  }
  void set_level(LogLevel l) noexcept { level_.store(static_cast<std::uint8_t>(sink_ ? l : LogLevel::kOff)); }

  // Formats and writes one event unless its level is off or it is rate
  // limited under (event, rate_key). Never throws.
  void emit(LogLevel level, std::string_view event, std::initializer_list<LogField> fields,
            std::string_view rate_key = {}) noexcept;

  // Lines dropped by the rate limiter so far.
  [[nodiscard]] std::uint64_t suppressed() const noexcept { return suppressed_.load(std::memory_order_relaxed); }

 private:
  struct Window {
    TimePoint start{};
    std::uint32_t count = 0;
    std::uint64_t suppressed = 0;
  };
  // Returns false if rate limited; else the count suppressed since the last line.
  bool admit(std::string_view event, std::string_view key, std::uint64_t& suppressed_before) noexcept;

  std::shared_ptr<LogSink> sink_;
  EventLogOptions opts_;
  const Clock* clock_;
  std::atomic<std::uint8_t> level_;
  std::atomic<std::uint64_t> suppressed_{0};
  std::mutex mu_;
  std::unordered_map<std::string, Window> windows_;  // guarded by mu_
};

}  // namespace keel

// Evaluates nothing but the level check when the level is off:
//   KEEL_LOG(log, keel::LogLevel::kWarn, "stage_failed", {"stage", name}, {"code", code});
#define KEEL_LOG(log, lvl, event, ...)                          \
  do {                                                          \
    if ((log).enabled(lvl)) (log).emit((lvl), (event), {__VA_ARGS__}); \
  } while (0)
