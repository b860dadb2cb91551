#include <catch2/catch.hpp>

#include <keel/core/status.hpp>
#include <keel/engine/metrics.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace {

struct PromtoolResult {
  bool available = false;
  int exit_code = -1;
  std::string output;
};

// Feeds `text` to `promtool check metrics` (a real Prometheus parser and
// linter) and returns its verdict.
PromtoolResult promtool_check(const std::string& text) {
  PromtoolResult r;
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) return r;
  r.available = true;
  const auto log = std::filesystem::temp_directory_path() /
                   ("keel_promtool_" + std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id())));
  const std::string cmd = "promtool check metrics >" + log.string() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "w");
  REQUIRE(p != nullptr);
  std::fwrite(text.data(), 1, text.size(), p);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  r.output = ss.str();
  std::filesystem::remove(log);
  return r;
}

}  // namespace

TEST_CASE("metrics: counters sum their per-thread cells", "[metrics]") {
  keel::MetricsRegistry reg;
  auto& c = reg.counter("keel_test_total", "Test counter.");
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 10'000; ++i) c.inc();
    });
  }
  for (auto& t : ts) t.join();
  c.inc(5);
  CHECK(c.value() == 40'005);
  // The same name and labels give the same counter.
  CHECK(&reg.counter("keel_test_total", "Test counter.") == &c);
}

TEST_CASE("metrics: histogram buckets are cumulative with +Inf = count", "[metrics]") {
  const double bounds[] = {0.001, 0.01, 0.1};
  keel::HistogramMetric h(bounds);
  h.observe(0.0005);
  h.observe(0.001);  // on the bound: le is inclusive
  h.observe(0.05);
  h.observe(5.0);
  h.observe(std::chrono::microseconds(20));
  auto s = h.snapshot();
  REQUIRE(s.cumulative.size() == 4);
  CHECK(s.cumulative[0] == 3);  // 0.0005, 0.001, 20 us
  CHECK(s.cumulative[1] == 3);
  CHECK(s.cumulative[2] == 4);
  CHECK(s.cumulative[3] == 5);
  CHECK(s.count == 5);
  CHECK(s.sum == Approx(0.0005 + 0.001 + 0.05 + 5.0 + 20e-6));
}

TEST_CASE("metrics: bad names, type clashes and label explosions are refused", "[metrics]") {
  keel::MetricsRegistry reg(3);
  CHECK_THROWS_AS(reg.counter("1bad", "x"), keel::Error);
  CHECK_THROWS_AS(reg.counter("ok_total", "x", {{"bad-label", "v"}}), keel::Error);
  CHECK_THROWS_AS(reg.counter("ok_total", "x", {{"le", "v"}}), keel::Error);
  reg.counter("keel_x_total", "x");
  CHECK_THROWS_AS(reg.gauge("keel_x_total", "x"), keel::Error);
  for (int i = 0; i < 2; ++i) reg.counter("keel_y_total", "y", {{"outcome", std::to_string(i)}});
  reg.counter("keel_y_total", "y", {{"outcome", "2"}});
  CHECK_THROWS_WITH(reg.counter("keel_y_total", "y", {{"outcome", "3"}}), Catch::Contains("low-cardinality"));
  const double bad_bounds[] = {1.0, 0.5};
  CHECK_THROWS_AS(reg.histogram("keel_h_seconds", "h", bad_bounds), keel::Error);
}

TEST_CASE("metrics: exposition text has HELP, TYPE, escaped labels and histogram series", "[metrics]") {
  keel::MetricsRegistry reg;
  reg.counter("keel_requests_total", "Requests by outcome.", {{"outcome", "ok"}}).inc(3);
  reg.counter("keel_requests_total", "Requests by outcome.", {{"outcome", "invalid_input"}}).inc();
  reg.gauge("keel_breaker_state", "Breaker state.", {{"stage", "pri\"mary\\x\ny"}}).set(2);
  reg.gauge_fn("keel_cache_entries", "Cache entries.", {}, [] { return 17.0; });
  const double bounds[] = {0.001, 0.01};
  reg.histogram("keel_request_duration_seconds", "Latency.", bounds).observe(0.002);
  const std::string text = reg.render();
  CHECK_THAT(text, Catch::Contains("# HELP keel_requests_total Requests by outcome.\n"));
  CHECK_THAT(text, Catch::Contains("# TYPE keel_requests_total counter\n"));
  CHECK_THAT(text, Catch::Contains("keel_requests_total{outcome=\"ok\"} 3\n"));
  CHECK_THAT(text, Catch::Contains("keel_requests_total{outcome=\"invalid_input\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("keel_breaker_state{stage=\"pri\\\"mary\\\\x\\ny\"} 2\n"));
  CHECK_THAT(text, Catch::Contains("keel_cache_entries 17\n"));
  CHECK_THAT(text, Catch::Contains("keel_request_duration_seconds_bucket{le=\"0.001\"} 0\n"));
  CHECK_THAT(text, Catch::Contains("keel_request_duration_seconds_bucket{le=\"0.01\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("keel_request_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("keel_request_duration_seconds_count 1\n"));
}

TEST_CASE("metrics: promtool parses and lints the exposition text", "[metrics][promtool]") {
  keel::MetricsRegistry reg;
  reg.counter("keel_requests_total", "Requests by outcome.", {{"model", "m"}, {"outcome", "ok"}}).inc(10);
  reg.counter("keel_requests_total", "Requests by outcome.", {{"model", "m"}, {"outcome", "degraded"}}).inc(2);
  reg.counter_fn("keel_cache_hits_total", "Cache hits.", {}, [] { return 4.0; });
  reg.gauge("keel_breaker_state", "0 closed, 1 open, 2 half-open.", {{"stage", "a\"b"}}).set(1);
  reg.gauge_fn("keel_feature_psi", "Drift.", {{"feature", "age"}}, [] { return 0.31; });
  auto& h = reg.histogram("keel_request_duration_seconds", "Latency of score().", keel::default_latency_buckets(),
                          {{"model", "m"}});
  for (int i = 1; i < 100; ++i) h.observe(std::chrono::microseconds(i * 37));
  const std::string text = reg.render();
  const PromtoolResult r = promtool_check(text);
  if (!r.available) {
    WARN("promtool not found: exposition text not checked by a real parser");
    return;
  }
  INFO(text);
  INFO(r.output);
  CHECK(r.exit_code == 0);

  // And the checker is not a rubber stamp: broken text fails.
  const PromtoolResult bad = promtool_check("keel_x{le=\"1\" 3\n");
  CHECK(bad.exit_code != 0);
}
