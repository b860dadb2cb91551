#include <catch2/catch.hpp>

#include <keel/engine/event_log.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <sstream>

using namespace std::chrono_literals;

namespace {

nlohmann::json parse_line(const std::string& line) {
  REQUIRE(!line.empty());
  REQUIRE(line.back() == '\n');
  REQUIRE(line.find('\n') == line.size() - 1);  // exactly one line
  return nlohmann::json::parse(line);
}

}  // namespace

TEST_CASE("event log: one JSON object per line with typed fields", "[log]") {
  keel::ManualClock clock;
  auto sink = std::make_shared<keel::MemorySink>();
  keel::EventLog log(sink, {}, clock);
  std::string stage = "primary \"quoted\"\n\x01";
  KEEL_LOG(log, keel::LogLevel::kWarn, "stage_failed", {"stage", stage}, {"attempts", 3}, {"ratio", 0.5},
           {"degraded", true}, {"version", std::uint64_t{7}}, {"nan", std::numeric_limits<double>::quiet_NaN()});
  auto lines = sink->lines();
  REQUIRE(lines.size() == 1);
  auto j = parse_line(lines[0]);
  CHECK(j["level"] == "warn");
  CHECK(j["event"] == "stage_failed");
  CHECK(j["stage"] == stage);
  CHECK(j["attempts"] == 3);
  CHECK(j["ratio"] == 0.5);
  CHECK(j["degraded"] == true);
  CHECK(j["version"] == 7);
  CHECK(j["nan"].is_null());
  CHECK(j["ts"].get<std::string>().back() == 'Z');
}

TEST_CASE("event log: levels below the threshold cost no argument evaluation", "[log]") {
  auto sink = std::make_shared<keel::MemorySink>();
  keel::EventLogOptions o;
  o.level = keel::LogLevel::kWarn;
  keel::EventLog log(sink, o);
  int evaluated = 0;
  auto expensive = [&] {
    ++evaluated;
    return std::string("x");
  };
  KEEL_LOG(log, keel::LogLevel::kInfo, "scored", {"detail", expensive()});
  KEEL_LOG(log, keel::LogLevel::kDebug, "scored", {"detail", expensive()});
  CHECK(evaluated == 0);
  CHECK(sink->lines().empty());
  KEEL_LOG(log, keel::LogLevel::kError, "failed", {"detail", expensive()});
  CHECK(evaluated == 1);
  CHECK(sink->lines().size() == 1);
  log.set_level(keel::LogLevel::kOff);
  KEEL_LOG(log, keel::LogLevel::kError, "failed", {"detail", expensive()});
  CHECK(evaluated == 1);
}

TEST_CASE("event log: repeated events are rate limited and the suppressed count is reported", "[log]") {
  keel::ManualClock clock;
  auto sink = std::make_shared<keel::MemorySink>();
  keel::EventLogOptions o;
  o.burst = 3;
  o.window = 10s;
  keel::EventLog log(sink, o, clock);
  for (int i = 0; i < 10; ++i) log.emit(keel::LogLevel::kError, "model_error", {{"i", i}}, "primary");
  CHECK(sink->lines().size() == 3);
  CHECK(log.suppressed() == 7);
  // Another key is limited separately.
  log.emit(keel::LogLevel::kError, "model_error", {}, "fallback");
  CHECK(sink->lines().size() == 4);
  clock.advance(10s);
  log.emit(keel::LogLevel::kError, "model_error", {{"i", 10}}, "primary");
  auto lines = sink->lines();
  REQUIRE(lines.size() == 5);
  auto j = parse_line(lines.back());
  CHECK(j["suppressed"] == 7);
  CHECK(j["i"] == 10);
  log.emit(keel::LogLevel::kError, "model_error", {}, "primary");
  CHECK_FALSE(parse_line(sink->lines().back()).contains("suppressed"));
}

TEST_CASE("event log: rate-limit state is bounded", "[log]") {
  keel::ManualClock clock;
  auto sink = std::make_shared<keel::MemorySink>();
  keel::EventLogOptions o;
  o.burst = 1;
  o.max_keys = 4;
  keel::EventLog log(sink, o, clock);
  for (int i = 0; i < 100; ++i) log.emit(keel::LogLevel::kError, "e", {}, std::to_string(i));
  // Four distinct keys, then all others share one overflow window (one line).
  CHECK(sink->lines().size() == 5);
}

TEST_CASE("event log: no sink means off; ostream sink writes lines", "[log]") {
  keel::EventLog off;
  CHECK_FALSE(off.enabled(keel::LogLevel::kError));
  std::ostringstream os;
  keel::EventLog log(std::make_shared<keel::OstreamSink>(os));
  log.emit(keel::LogLevel::kInfo, "model_loaded", {{"model", "m"}});
  auto j = parse_line(os.str());
  CHECK(j["model"] == "m");
  keel::LogLevel l{};
  CHECK(keel::parse_log_level("warning", l));
  CHECK(l == keel::LogLevel::kWarn);
  CHECK_FALSE(keel::parse_log_level("loud", l));
}
