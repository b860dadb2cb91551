#include <keel/engine/event_log.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <iostream>

namespace keel {

std::string_view to_string(LogLevel l) noexcept {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
    case LogLevel::kOff: return "off";
  }
  return "unknown";
}

bool parse_log_level(std::string_view s, LogLevel& out) noexcept {
  if (s == "debug") out = LogLevel::kDebug;
  else if (s == "info") out = LogLevel::kInfo;
  else if (s == "warn" || s == "warning") out = LogLevel::kWarn;
  else if (s == "error") out = LogLevel::kError;
  else if (s == "off") out = LogLevel::kOff;
  else return false;
  return true;
}

OstreamSink::OstreamSink(std::ostream& os) : os_(&os) {}
OstreamSink::OstreamSink() : os_(&std::clog) {}

void OstreamSink::write(std::string_view line) noexcept {
  try {
    std::lock_guard lock(mu_);
    os_->write(line.data(), static_cast<std::streamsize>(line.size()));
    os_->flush();
  } catch (...) {
    // A broken log stream must not take scoring down with it.
  }
}

void MemorySink::write(std::string_view line) noexcept {
  try {
    std::lock_guard lock(mu_);
    lines_.emplace_back(line);
  } catch (...) {
  }
}

std::vector<std::string> MemorySink::lines() const {
  std::lock_guard lock(mu_);
  return lines_;
}

void MemorySink::clear() {
  std::lock_guard lock(mu_);
  lines_.clear();
}

namespace {

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

struct ValueWriter {
  std::string& out;
  void operator()(std::string_view v) const { append_json_string(out, v); }
  void operator()(std::int64_t v) const { fmt::format_to(std::back_inserter(out), "{}", v); }
  void operator()(std::uint64_t v) const { fmt::format_to(std::back_inserter(out), "{}", v); }
  void operator()(double v) const {
    if (std::isfinite(v)) {
      fmt::format_to(std::back_inserter(out), "{}", v);
    } else {
      out += "null";  // JSON has no NaN/inf
    }
  }
  void operator()(bool v) const { out += v ? "true" : "false"; }
};

}  // namespace

EventLog::EventLog(std::shared_ptr<LogSink> sink, EventLogOptions opts, const Clock& clock)
    : sink_(std::move(sink)),
      opts_(opts),
      clock_(&clock),
      level_(static_cast<std::uint8_t>(sink_ ? opts.level : LogLevel::kOff)) {}

EventLog::EventLog() : EventLog(nullptr) {}

bool EventLog::admit(std::string_view event, std::string_view key, std::uint64_t& suppressed_before) noexcept {
  if (opts_.burst == 0) return true;  // rate limiting off
  try {
    std::string k;
    k.reserve(event.size() + key.size() + 1);
    k.append(event).append(1, '\x1f').append(key);
    const TimePoint now = clock_->now();
    std::lock_guard lock(mu_);
    auto it = windows_.find(k);
    if (it == windows_.end()) {
      if (windows_.size() >= opts_.max_keys) {
        // Forget windows that have ended; if none has, share one overflow key.
        std::erase_if(windows_, [&](const auto& kv) { return now - kv.second.start >= opts_.window; });
        if (windows_.size() >= opts_.max_keys) k = "\x1f" "overflow";
      }
      it = windows_.try_emplace(std::move(k), Window{now, 0, 0}).first;
    }
    Window& w = it->second;
    if (now - w.start >= opts_.window) {
      w.start = now;
      w.count = 0;
    }
    if (w.count >= opts_.burst) {
      ++w.suppressed;
      suppressed_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    ++w.count;
    suppressed_before = w.suppressed;
    w.suppressed = 0;
    return true;
  } catch (...) {
    return true;
  }
}

void EventLog::emit(LogLevel level, std::string_view event, std::initializer_list<LogField> fields,
                    std::string_view rate_key) noexcept {
  if (!enabled(level)) return;
  std::uint64_t suppressed_before = 0;
  if (!admit(event, rate_key, suppressed_before)) return;
  try {
    std::string line;
    line.reserve(160);
    const auto wall = std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
    fmt::format_to(std::back_inserter(line), "{{\"ts\":\"{:%Y-%m-%dT%H:%M:%S}Z\",\"level\":\"{}\",\"event\":", wall,
                   to_string(level));
    append_json_string(line, event);
    for (const LogField& f : fields) {
      line += ',';
      append_json_string(line, f.key);
      line += ':';
      std::visit(ValueWriter{line}, f.value);
    }
    if (suppressed_before > 0) fmt::format_to(std::back_inserter(line), ",\"suppressed\":{}", suppressed_before);
    line += "}\n";
    sink_->write(line);
  } catch (...) {
    // Out of memory while formatting: drop the line.
  }
}

}  // namespace keel
