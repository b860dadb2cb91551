// The engine demo (./scripts/demo): scores the bundled sample rows through
// a chain whose primary model has a fault injected, and prints what
// happened: the answers, the degraded ones, the breaker's transitions, a
// corrupt reload that is refused, and an excerpt of the metrics.
//
// Time is a ManualClock, so the breaker's wait in open passes when the demo
// says so: the output is the same on every run.
//
//   ./example_engine_demo [examples/data]

#include "example_rows.hpp"

#include <keel/engine/scoring_engine.hpp>
#include <keel/model/loaders.hpp>
#include <keel/resilience/fault_injector.hpp>
#include <keel/validate/schema_validator.hpp>

#include <cstdio>
#include <sstream>
#include <string>

using namespace std::chrono_literals;

namespace {

keel::ModelPtr load_or_die(const std::filesystem::path& p) {
  auto m = keel::load_model(p);
  if (!m.ok()) {
    std::fprintf(stderr, "cannot load %s: %s\n", p.string().c_str(), m.status().to_string().c_str());
    std::exit(1);
  }
  return *m;
}

void show(std::size_t i, const keel::Result<keel::Response>& r) {
  if (!r.ok()) {
    std::printf("  row %2zu  ERROR     %s\n", i, r.status().to_string().c_str());
    return;
  }
  std::printf("  row %2zu  %.4f    %-8s%s%s%s\n", i, r->scores[0], r->stage.c_str(), r->cache_hit ? " [cache]" : "",
              r->degraded ? " [degraded: " : "", r->degraded ? (r->degraded_reason + "]").c_str() : "");
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path data = argc > 1 ? argv[1] : "examples/data";
  keel::ManualClock clock;

  auto xgb = load_or_die(data / "model.json");
  auto faulty = std::make_shared<keel::FaultInjector>(xgb, keel::FaultConfig{}, /*seed=*/7, clock);
  auto backup = load_or_die(data / "backup_linear.json");

  keel::CircuitBreakerConfig bc;
  bc.window_size = 10;
  bc.minimum_calls = 4;
  bc.failure_rate_threshold = 0.5;
  bc.wait_in_open = 2s;
  bc.half_open_probes = 2;
  auto breaker = std::make_shared<keel::CircuitBreaker>("primary", bc, clock);
  breaker->add_listener([&clock](const keel::CircuitBreaker& b, keel::BreakerState from, keel::BreakerState to) {
    std::printf("  >> breaker '%s': %s -> %s at t=%.1fs\n", b.name().c_str(), std::string(to_string(from)).c_str(),
                std::string(to_string(to)).c_str(),
                std::chrono::duration<double>(clock.now().time_since_epoch() - std::chrono::hours(1)).count());
  });
  keel::StageOptions primary;
  primary.breaker = breaker;

  keel::Schema schema = keel::Schema::from_model(xgb->info());  // rejects ±inf, accepts missing
  auto log_stream = std::make_shared<std::ostringstream>();
  auto engine = keel::EngineBuilder()
                    .name("demo")
                    .clock(clock)
                    .model("primary", faulty)
                    .model("backup", backup)
                    .stage("primary", primary)
                    .stage("backup", {}, "fallback")
                    .default_scores({0.5f})
                    .validator(std::make_shared<keel::SchemaValidator>(schema))
                    .cache(std::make_shared<keel::LruCache>())
                    .log(std::make_shared<keel::EventLog>(std::make_shared<keel::OstreamSink>(*log_stream),
                                                          keel::EventLogOptions{}, clock))
                    .build();

  const auto rows = example::read_rows(data / "rows.csv");
  auto score = [&](std::size_t i) {
    keel::Request r;
    r.features = rows[i];
    return engine->score(r);
  };

  std::printf("keel engine demo: %zu sample rows, chain primary (XGBoost, fault-injected) -> fallback (linear) -> "
              "default 0.5\n\n", rows.size());

  std::printf("1. healthy primary:\n");
  for (std::size_t i = 0; i < 7; ++i) show(i, score(i));
  std::printf("   again, from the cache:\n");
  show(0, score(0));
  std::printf("   a NaN answer counts as a failure of the stage:\n");
  faulty->nan_next(1);
  show(7, score(7));

  std::printf("\n2. fault injected: the primary fails every call\n");
  keel::FaultConfig broken;
  broken.error_rate = 1.0;
  broken.error_code = keel::StatusCode::kModelError;
  faulty->set_config(broken);
  for (std::size_t i = 8; i < 16; ++i) show(i, score(i));

  std::printf("\n3. the fault is fixed, but the breaker stays open until its wait (2s) has passed:\n");
  faulty->set_config(keel::FaultConfig{});
  show(16, score(16));
  clock.advance(2s);
  std::printf("   2s later: two probes go through and the breaker closes\n");
  for (std::size_t i = 17; i < 22; ++i) show(i, score(i));

  std::printf("\n4. hot reload of a corrupt file is refused; the old model keeps serving\n");
  const auto corrupt = std::filesystem::temp_directory_path() / "keel_demo_corrupt.json";
  {
    std::ofstream(corrupt) << "{\"learner\": {";
  }
  auto rl = engine->reload("primary", corrupt);
  std::printf("  reload: %s\n", rl.ok() ? "ok?!" : rl.status().to_string().c_str());
  std::filesystem::remove(corrupt);
  show(22, score(22));

  std::printf("\n5. a batch of all %zu rows in one call per stage:\n", rows.size());
  std::vector<float> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  keel::BatchResult batch;
  if (engine->score_batch({flat, rows.size(), engine->num_features()}, batch).is_ok()) {
    std::printf("  %zu rows: %zu answered by the primary, %zu degraded, %zu failed (first failure: %s)\n", batch.rows,
                batch.rows - batch.degraded - batch.failed, batch.degraded, batch.failed,
                [&] {
                  for (const auto& s : batch.status) {
                    if (!s.is_ok()) return s.to_string();
                  }
                  return std::string("none");
                }()
                    .c_str());
  }

  std::printf("\nhealth: %s\n", engine->health().to_json().c_str());
  std::printf("\nmetrics excerpt:\n");
  std::istringstream metrics(engine->metrics_text());
  for (std::string line; std::getline(metrics, line);) {
    const bool wanted = line.starts_with("keel_requests_total") || line.starts_with("keel_stage_answers_total") ||
                        line.starts_with("keel_breaker_state") || line.starts_with("keel_cache_hits_total") ||
                        line.starts_with("keel_reloads_total") || line.starts_with("keel_batch_rows_total");
    if (wanted && !line.ends_with(" 0")) std::printf("  %s\n", line.c_str());
  }
  std::printf("\nlog (JSON lines, repeated errors rate limited):\n%s", log_stream->str().c_str());
  return 0;
}
