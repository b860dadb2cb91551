// A fallback chain keeping answers coming while its primary model fails:
// the primary (wrapped in a FaultInjector, isolated with a 20 ms per-attempt
// timeout) starts failing, its breaker opens and a simpler fallback model
// answers (degraded); when the faults stop, the breaker probes, closes, and
// the primary answers again. Breaker transitions are printed as they happen.
// Runs on the real clock in well under a second.

#include <keel/model/reference_evaluator.hpp>
#include <keel/model/tree_spec.hpp>
#include <keel/resilience/fallback_chain.hpp>
#include <keel/resilience/fault_injector.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// x0 < 0.5 ? (x1 < 2 ? a : b) : c, sigmoid output.
keel::ModelPtr tree_model(const char* id, double a, double b, double c) {
  keel::TreeEnsembleSpec spec;
  spec.info.objective = "binary:logistic";
  spec.info.num_features = 2;
  spec.info.features = {{"x0", keel::FeatureType::kNumeric}, {"x1", keel::FeatureType::kNumeric}};
  spec.info.id = id;
  spec.base_margin = {0.0};
  spec.transform = keel::Transform::kSigmoid;
  auto split = [](int f, double thr, int l, int r) {
    keel::TreeNode n;
    n.kind = keel::SplitKind::kNumericLess;
    n.feature = f;
    n.threshold = thr;
    n.left = l;
    n.right = r;
    n.default_left = true;
    return n;
  };
  auto leaf = [](double v) {
    keel::TreeNode n;
    n.leaf_value = v;
    return n;
  };
  keel::Tree t;
  t.nodes = {split(0, 0.5, 1, 2), split(1, 2.0, 3, 4), leaf(c), leaf(a), leaf(b)};
  spec.trees.push_back(t);
  auto m = keel::make_reference_model(spec);
  if (!m.ok()) {
    std::fprintf(stderr, "model: %s\n", m.status().to_string().c_str());
    std::exit(1);
  }
  return *m;
}

int request_no = 0;

void phase(const char* title, keel::FallbackChain& chain, int n) {
  std::printf("-- %s\n", title);
  std::map<std::string, int> by_stage;
  std::string last_reason;
  const std::vector<float> row = {0.2f, 3.0f};
  std::vector<float> out(chain.width());
  for (int i = 0; i < n; ++i) {
    ++request_no;
    auto r = chain.run(row, out, keel::Deadline::after(200ms));
    if (!r.ok()) {
      std::printf("   request %d failed: %s\n", request_no, r.status().to_string().c_str());
      continue;
    }
    ++by_stage[std::string(r->stage_name)];
    if (r->degraded) last_reason = r->reason();
  }
  for (const auto& [stage, count] : by_stage) std::printf("   %-8s answered %d\n", stage.c_str(), count);
  if (!last_reason.empty()) std::printf("   last degraded reason: %s\n", last_reason.c_str());
}

}  // namespace

int main() {
  auto primary = std::make_shared<keel::FaultInjector>(tree_model("gbm-v2", -1.0, 1.0, 3.0));
  auto fallback = tree_model("gbm-v1", -0.5, 0.5, 2.0);

  keel::CircuitBreakerConfig bc;
  bc.window_size = 10;
  bc.minimum_calls = 5;
  bc.failure_rate_threshold = 0.5;
  bc.wait_in_open = 50ms;
  bc.half_open_probes = 2;
  auto breaker = std::make_shared<keel::CircuitBreaker>("gbm-v2", bc);
  breaker->add_listener([](const keel::CircuitBreaker& b, keel::BreakerState from, keel::BreakerState to) {
    std::printf("   [breaker '%s' %s -> %s during request %d]\n", b.name().c_str(),
                std::string(keel::to_string(from)).c_str(), std::string(keel::to_string(to)).c_str(),
                request_no);
  });

  keel::RetryConfig rc;
  rc.max_attempts = 2;
  rc.initial_backoff = 1ms;
  rc.max_backoff = 5ms;

  keel::StageOptions opts;
  opts.breaker = breaker;
  opts.retry = std::make_shared<keel::RetryPolicy>(rc, std::make_shared<keel::RetryBudget>());
  opts.isolation = keel::Isolation::kIsolated;
  opts.executor = std::make_shared<keel::BoundedExecutor>(keel::ExecutorConfig{2, 16});
  opts.attempt_timeout = 20ms;

  keel::FallbackChain chain({keel::model_stage("primary", primary, opts), keel::model_stage("fallback", fallback),
                             keel::default_stage({0.5f})});

  phase("healthy", chain, 20);

  keel::FaultConfig failing;
  failing.error_rate = 1.0;
  primary->set_config(failing);
  phase("primary failing (injected errors)", chain, 20);

  primary->set_config({});
  primary->hang_next(1);
  std::this_thread::sleep_for(60ms);  // past the breaker's wait: the next call probes
  phase("faults stopped; the first probe hangs and times out", chain, 3);
  primary->release_hangs();
  std::this_thread::sleep_for(60ms);
  phase("recovered", chain, 20);

  const keel::ChainStats s = chain.stats();
  std::printf("-- totals: %llu requests, %llu degraded, %llu failed\n",
              static_cast<unsigned long long>(s.requests), static_cast<unsigned long long>(s.degraded),
              static_cast<unsigned long long>(s.failed));
  for (const keel::StageStats& st : s.stages) {
    std::printf("   %-8s entered %llu answered %llu (breaker rejections %llu, attempt timeouts %llu, errors %llu)\n",
                st.name.c_str(), static_cast<unsigned long long>(st.entered),
                static_cast<unsigned long long>(st.answered), static_cast<unsigned long long>(st.breaker_rejections),
                static_cast<unsigned long long>(st.isolation.timeouts), static_cast<unsigned long long>(st.errors));
  }
  return 0;
}
