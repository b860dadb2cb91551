// RemoteModel against real `keel serve` replicas on loopback: answers
// identical to scoring the same file in process, failover and ejection when
// a replica is SIGKILLed or SIGSTOPped under load (counts printed: sent,
// answered, failed, late, wrong), readmission after it comes back, zone
// preference and active-passive switchover and switchback.

#include <keel/model/loaders.hpp>
#include <keel/net/remote/remote_model.hpp>

#include "net/support/keel_serve_process.hpp"
#include "unit/lightgbm_threshold_rows.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>

using namespace std::chrono_literals;
using keel::Deadline;
using keel::Duration;
using keel::StatusCode;
using namespace keel::net;
using keel::test::KeelServe;

namespace {

const std::string kData = KEEL_TEST_DATA_DIR;


std::unique_ptr<KeelServe> replica(const std::string& model_file) {
  keel::test::KeelServeOptions o;
  o.keel_binary = keel::test::keel_binary(KEEL_BINARY_DIR);
  o.model_file = model_file;
  return std::make_unique<KeelServe>(o);
}

RemoteEndpoint endpoint(const KeelServe& r, std::string zone = {}, bool standby = false) {
  RemoteEndpoint e;
  e.port = r.port();
  e.zone = std::move(zone);
  e.standby = standby;
  return e;
}

// Rows of `n` features: uniform in [-3, 3], about one value in ten missing.
std::vector<float> random_rows(std::size_t rows, std::size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(-3.f, 3.f);
  std::vector<float> v(rows * n);
  for (auto& x : v) x = (g() % 10 == 0) ? std::nanf("") : u(g);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct LoadCounts {
  std::atomic<std::uint64_t> sent{0}, answered{0}, failed{0}, late{0}, wrong{0};
  std::string first_error;
  std::mutex mu;
  void print(const std::string& scenario) const {
    fmt::print("{}: sent {} answered {} failed {} late {} wrong {}\n", scenario, sent.load(), answered.load(),
               failed.load(), late.load(), wrong.load());
  }
};

// Calls predict_row from `threads` threads until `stop`, each call with
// `timeout` as its deadline, checking every answer against `local`.
class Load {
 public:
  Load(const keel::Model& remote, const keel::Model& local, Duration timeout, int threads = 2)
      : remote_(remote), local_(local), timeout_(timeout) {
    for (int t = 0; t < threads; ++t) threads_.emplace_back([this, t] { run(static_cast<unsigned>(t)); });
  }
  ~Load() { finish(); }
  void finish() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  LoadCounts counts;

 private:
  void run(unsigned seed) {
    const std::size_t nf = local_.info().num_features;
    const std::size_t w = local_.info().num_outputs;
    const auto rows = random_rows(64, nf, 100 + seed);
    std::vector<float> want(64 * w), got(w);
    REQUIRE(local_.predict(rows, 64, want));
    for (std::size_t i = 0; !stop_; i = (i + 1) % 64) {
      keel::PredictOptions po;
      po.deadline = Deadline::after(timeout_);
      counts.sent++;
      const auto s = remote_.predict_row(std::span(rows).subspan(i * nf, nf), got, po);
      if (po.deadline.expired()) counts.late++;
      if (!s) {
        counts.failed++;
        std::lock_guard lock(counts.mu);
        if (counts.first_error.empty()) counts.first_error = s.to_string();
        continue;
      }
      counts.answered++;
      if (std::memcmp(got.data(), want.data() + i * w, w * sizeof(float)) != 0) counts.wrong++;
    }
  }
  const keel::Model& remote_;
  const keel::Model& local_;
  Duration timeout_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// The model file in process and three replicas serving it.
struct Three {
  explicit Three(const std::string& file)
      : local(keel::load_model(file)), r0(replica(file)), r1(replica(file)), r2(replica(file)) {
    REQUIRE(local.ok());
  }
  keel::Result<keel::ModelPtr> local;
  std::unique_ptr<KeelServe> r0, r1, r2;
};

std::uint64_t answers(const RemoteModel& m, std::size_t i) { return m.endpoint_stats().at(i).answers; }

// Scores `n` single rows one after another; returns how many failed.
int score_rows(const RemoteModel& m, int n, Duration timeout = 2s) {
  const auto rows = random_rows(1, m.info().num_features, 7);
  std::vector<float> out(m.info().num_outputs);
  int failed = 0;
  for (int i = 0; i < n; ++i) {
    keel::PredictOptions po;
    po.deadline = Deadline::after(timeout);
    if (!m.predict_row(rows, out, po)) ++failed;
  }
  return failed;
}

// Batches of each size (random rows, about one value in ten missing) score
// the same bits remotely as in process.
void same_answers(const RemoteModel& remote, const keel::Model& local, std::initializer_list<std::size_t> sizes,
                  unsigned seed) {
  const auto& li = local.info();
  REQUIRE(remote.info().num_features == li.num_features);
  REQUIRE(remote.info().num_outputs == li.num_outputs);
  for (std::size_t rows : sizes) {
    const auto x = random_rows(rows, li.num_features, static_cast<unsigned>(rows) + seed);
    std::vector<float> want(rows * li.num_outputs), got(rows * li.num_outputs, -1.f);
    REQUIRE(local.predict(x, rows, want));
    keel::PredictOptions po;
    po.deadline = Deadline::after(5s);
    const auto s = remote.predict(x, rows, got, po);
    INFO(s.to_string());
    REQUIRE(s);
    CHECK(same_bits(got, want));
  }
}

// One call with a 300 ms deadline while every replica hangs: it ends by the
// deadline, as kDeadlineExceeded, whatever the attempt timeout.
void deadline_holds(const RemoteModel& remote, const std::string& label) {
  const auto rows = random_rows(1, remote.info().num_features, 3);
  std::vector<float> out(remote.info().num_outputs);
  keel::PredictOptions po;
  po.deadline = Deadline::after(300ms);
  const auto t0 = std::chrono::steady_clock::now();
  const auto s = remote.predict_row(rows, out, po);
  const auto took = std::chrono::steady_clock::now() - t0;
  fmt::print("deadline 300 ms, {}: {} after {} ms\n", label, s.to_string(),
             std::chrono::duration_cast<std::chrono::milliseconds>(took).count());
  CHECK(s.code() == StatusCode::kDeadlineExceeded);
  CHECK(took < 1s);
}

}  // namespace

TEST_CASE("RemoteModel answers exactly what the model file answers in process", "[remote]") {
  for (const char* name : {"multi_softprob.json", "binary_logistic.json", "missing_nan.json"}) {
    const std::string file = kData + "/xgboost/" + name;
    auto local = keel::load_model(file);
    REQUIRE(local.ok());
    auto r1 = replica(file);
    auto r2 = replica(file);
    RemoteModelOptions o;
    o.model = "m";
    o.endpoints = {endpoint(*r1), endpoint(*r2)};
    RemoteModel remote(o);
    INFO(name);
    const auto& li = (*local)->info();
    same_answers(remote, **local, {1, 7, 300}, 0);
    // Shapes are checked locally; margins are refused by name.
    std::vector<float> out(li.num_outputs);
    std::vector<float> short_row(li.num_features - 1);
    CHECK(remote.predict_row(short_row, out).code() == StatusCode::kInvalidInput);
    keel::PredictOptions margin;
    margin.output = keel::OutputKind::kMargin;
    const auto m = remote.predict_row(random_rows(1, li.num_features, 1), out, margin);
    CHECK(m.code() == StatusCode::kInvalidInput);
    CHECK_THAT(m.message(), Catch::Contains("margin"));
  }
}

TEST_CASE("RemoteModel sends float64 rows as FP64: a LightGBM replica answers on the doubles", "[remote][float64]") {
  // Rows on the model's thresholds: narrowed to float they take other
  // branches, so only doubles end to end (RemoteModel's FP64 body, the
  // server's codec, the engine's float64 path) give the local answers.
  const std::string file = kData + "/lightgbm/binary.model.txt";
  const keel::testing::ThresholdRows e = keel::testing::threshold_rows(file);
  REQUIRE(e.differ > 0);
  auto r1 = replica(file);
  RemoteModelOptions o;
  o.model = "m";
  o.endpoints = {endpoint(*r1)};
  RemoteModel remote(o);
  keel::PredictOptions po;
  po.deadline = Deadline::after(5s);
  std::vector<float> got(e.n, -1.f);
  const auto s = remote.predict(std::span<const double>(e.rows64), e.n, std::span<float>(got), po);
  INFO(s.to_string());
  REQUIRE(s);
  CHECK(same_bits(got, e.want64));
  std::vector<float> got32(e.n, -1.f);
  REQUIRE(remote.predict(std::span<const float>(e.narrowed), e.n, std::span<float>(got32), po));
  CHECK(same_bits(got32, e.want32));
  // JSON has no infinity: refused by name instead of sent as null (missing).
  std::vector<double> inf_row(e.rows64.begin(), e.rows64.begin() + static_cast<std::ptrdiff_t>(e.F));
  inf_row[2] = std::numeric_limits<double>::infinity();
  std::vector<float> one(1);
  const auto bad = remote.predict(std::span<const double>(inf_row), 1, std::span<float>(one), po);
  CHECK(bad.code() == StatusCode::kInvalidInput);
  CHECK_THAT(bad.message(), Catch::Contains("row 0, feature 2"));
}

TEST_CASE("RemoteModel construction names what it could not reach", "[remote]") {
  const std::string file = kData + "/xgboost/binary_logistic.json";
  auto r = replica(file);
  RemoteModelOptions o;
  o.model = "absent";
  o.endpoints = {endpoint(*r)};
  o.metadata_timeout = 2s;
  try {
    RemoteModel m(o);
    FAIL("constructed against a model nobody serves");
  } catch (const keel::Error& e) {
    CHECK(e.status().code() == StatusCode::kUnavailable);
    CHECK_THAT(std::string(e.what()), Catch::Contains("'absent'") && Catch::Contains("404"));
  }
  o.model = "m";
  o.endpoints = {RemoteEndpoint{"127.0.0.1", keel::test::free_port(), "", false}};
  CHECK_THROWS_WITH(RemoteModel(o), Catch::Contains("127.0.0.1:" + std::to_string(o.endpoints[0].port)));
  o.endpoints.clear();
  CHECK_THROWS_WITH(RemoteModel(o), Catch::Contains("endpoints"));
}

TEST_CASE("RemoteModel stops at the caller's deadline when every replica hangs", "[remote]") {
  const std::string file = kData + "/xgboost/binary_logistic.json";
  auto r1 = replica(file);
  auto r2 = replica(file);
  RemoteModelOptions o;
  o.model = "m";
  o.endpoints = {endpoint(*r1), endpoint(*r2)};
  o.attempt_timeout = 10s;  // only the call's deadline bounds the wait
  o.health_interval = Duration::zero();
  RemoteModel remote(o);
  REQUIRE(score_rows(remote, 5) == 0);
  r1->pause();
  r2->pause();
  std::this_thread::sleep_for(100ms);  // SIGSTOP is asynchronous
  deadline_holds(remote, "both replicas SIGSTOPped");  // not the 10 s attempt timeout
  // Cut short by the caller, not the replicas' fault: nothing counted against them.
  for (const auto& e : remote.endpoint_stats()) CHECK(e.failures == 0);
  r1->resume();
  r2->resume();
  CHECK(score_rows(remote, 5) == 0);
}

TEST_CASE("RemoteModel under load: a replica SIGKILLed and one SIGSTOPped, ejected and readmitted", "[remote]") {
  Three three(kData + "/xgboost/multi_softprob.json");
  auto& [local, r0, r1, r2] = three;
  RemoteModelOptions o;
  o.model = "m";
  o.endpoints = {endpoint(*r0), endpoint(*r1), endpoint(*r2)};
  o.attempt_timeout = 150ms;
  o.outlier.consecutive_failures = 3;
  o.outlier.base_ejection = 500ms;
  o.outlier.max_ejection = 2s;
  o.outlier.max_ejection_percent = 67;  // two of three may be out at once
  o.health_interval = 200ms;
  o.health_timeout = 100ms;
  o.ewma_decay = 1s;
  RemoteModel remote(o);

  {
    Load load(remote, **local, 1500ms);
    std::this_thread::sleep_for(500ms);
    r0->kill();
    std::this_thread::sleep_for(1s);
    r1->pause();
    std::this_thread::sleep_for(1500ms);
    const auto st = remote.endpoint_stats();
    CHECK((st[0].ejected || !st[0].healthy));
    CHECK((st[1].ejected || !st[1].healthy));
    load.finish();
    load.counts.print("3 replicas, one SIGKILLed, one SIGSTOPped, deadline 1500 ms");
    INFO(load.counts.first_error);
    CHECK(load.counts.sent > 100);
    CHECK(load.counts.failed == 0);
    CHECK(load.counts.late == 0);
    CHECK(load.counts.wrong == 0);
    CHECK(st[2].answers > 0);
    CHECK_FALSE(remote.health().detail.empty());
  }
  // Back: the killed one restarted on its port, the paused one resumed.
  r0->start();
  r1->resume();
  const auto a0 = answers(remote, 0), a1 = answers(remote, 1);
  const bool back = keel::test::wait_until(
      [&] {
        if (score_rows(remote, 20) != 0) return false;
        return answers(remote, 0) > a0 && answers(remote, 1) > a1;
      },
      15000ms);
  const auto st = remote.endpoint_stats();
  INFO(remote.health().detail);
  CHECK(back);
  fmt::print("readmitted: answers {} / {} / {}, ejections {} / {} / {}\n", st[0].answers, st[1].answers,
             st[2].answers, st[0].ejections, st[1].ejections, st[2].ejections);
  CHECK(remote.health().state == "up");
}

TEST_CASE("RemoteModel prefers its own zone and uses the others only when too few local ones are left",
          "[remote]") {
  const std::string file = kData + "/xgboost/binary_logistic.json";
  auto a1 = replica(file);
  auto a2 = replica(file);
  auto b1 = replica(file);
  RemoteModelOptions o;
  o.model = "m";
  o.local_zone = "a";
  o.endpoints = {endpoint(*a1, "a"), endpoint(*a2, "a"), endpoint(*b1, "b")};
  o.health_interval = 100ms;
  o.health_timeout = 100ms;
  o.outlier.max_ejection_percent = 67;
  RemoteModel remote(o);
  REQUIRE(score_rows(remote, 200) == 0);
  auto st = remote.endpoint_stats();
  fmt::print("zone a, a/a/b healthy: answers {} / {} / {}\n", st[0].answers, st[1].answers, st[2].answers);
  CHECK(st[0].answers > 0);
  CHECK(st[1].answers > 0);
  CHECK(st[2].answers == 0);

  a1->kill();
  CHECK(score_rows(remote, 100) == 0);
  st = remote.endpoint_stats();
  fmt::print("a1 killed: answers {} / {} / {}\n", st[0].answers, st[1].answers, st[2].answers);
  const auto b_before = st[2].answers;
  // One local replica is still enough (min_local_available = 1), once a1 is known down.
  REQUIRE(keel::test::wait_until([&] { return !remote.endpoint_stats()[0].healthy; }, 5000ms));
  CHECK(score_rows(remote, 100) == 0);
  CHECK(remote.endpoint_stats()[2].answers == b_before);

  a2->kill();
  CHECK(score_rows(remote, 100) == 0);
  st = remote.endpoint_stats();
  fmt::print("a1, a2 killed: answers {} / {} / {}\n", st[0].answers, st[1].answers, st[2].answers);
  CHECK(st[2].answers >= b_before + 100);
}

TEST_CASE("RemoteModel active-passive: the standby takes over and gives the traffic back", "[remote]") {
  const std::string file = kData + "/xgboost/binary_logistic.json";
  auto active = replica(file);
  auto standby = replica(file);
  RemoteModelOptions o;
  o.model = "m";
  o.endpoints = {endpoint(*active), endpoint(*standby, "", true)};
  o.outlier.base_ejection = 300ms;
  o.health_interval = 100ms;
  o.health_timeout = 100ms;
  RemoteModel remote(o);
  REQUIRE(score_rows(remote, 100) == 0);
  CHECK(answers(remote, 1) == 0);

  active->kill();
  CHECK(score_rows(remote, 100) == 0);  // failover inside each call, then the standby by selection
  const auto s_after = answers(remote, 1);
  fmt::print("active killed: answers {} / {}\n", answers(remote, 0), s_after);
  CHECK(s_after == 100);

  active->start();
  REQUIRE(keel::test::wait_until([&] { return remote.endpoint_stats()[0].healthy && !remote.endpoint_stats()[0].ejected; },
                                 5000ms));
  const auto a_before = answers(remote, 0);
  const auto s_before = answers(remote, 1);
  CHECK(score_rows(remote, 100) == 0);
  fmt::print("active back: answers {} / {}\n", answers(remote, 0), answers(remote, 1));
  CHECK(answers(remote, 0) == a_before + 100);
  CHECK(answers(remote, 1) == s_before);
}

TEST_CASE("RemoteModel ejects a failing replica for a growing time, at most the allowed share, and takes it back",
          "[remote]") {
  const std::string file = kData + "/xgboost/binary_logistic.json";
  auto r0 = replica(file);
  auto r1 = replica(file);
  auto r2 = replica(file);
  keel::ManualClock clock;  // ejection times only; sockets use real time
  RemoteModelOptions o;
  o.model = "m";
  o.endpoints = {endpoint(*r0), endpoint(*r1), endpoint(*r2)};
  o.outlier.consecutive_failures = 3;
  o.outlier.base_ejection = 10s;
  o.outlier.max_ejection = 25s;
  o.health_interval = Duration::zero();  // passive detection alone
  o.ewma_decay = 1us;  // forget the failure penalty at once: keep picking the failing ones
  o.clock = &clock;
  RemoteModel remote(o);
  REQUIRE(score_rows(remote, 30) == 0);

  r0->kill();
  CHECK(score_rows(remote, 60) == 0);  // each failure failed over inside its call
  auto st = remote.endpoint_stats();
  CHECK(st[0].ejected);
  CHECK(st[0].ejections == 1);
  CHECK(st[0].failures == 3);  // ejected at the third failure in a row, then left alone

  // Envoy's cap: 10% of 3 hosts still allows one ejection, not two.
  r1->kill();
  CHECK(score_rows(remote, 60) == 0);
  st = remote.endpoint_stats();
  fmt::print("r0, r1 killed: failures {} / {} / {}, ejections {} / {} / {}\n", st[0].failures, st[1].failures,
             st[2].failures, st[0].ejections, st[1].ejections, st[2].ejections);
  CHECK(st[1].failures > 3);
  CHECK(st[1].ejections == 0);
  CHECK_FALSE(st[1].ejected);
  CHECK(remote.health().state == "degraded");

  // The ejection ends after base_ejection; the replica is back.
  r0->start();
  r1->start();
  clock.advance(10s);
  CHECK_FALSE(remote.endpoint_stats()[0].ejected);
  const auto a0 = answers(remote, 0);
  CHECK(score_rows(remote, 60) == 0);
  CHECK(answers(remote, 0) > a0);

  // Ejected again: for twice as long (10 s x 2).
  r0->kill();
  CHECK(score_rows(remote, 60) == 0);
  st = remote.endpoint_stats();
  CHECK(st[0].ejections == 2);
  clock.advance(15s);
  CHECK(remote.endpoint_stats()[0].ejected);
  clock.advance(5s);
  CHECK_FALSE(remote.endpoint_stats()[0].ejected);
}

namespace {

struct Timed {
  int fast = 0, slow = 0, failed = 0, wrong = 0;
  double max_ms = 0;
};

// `n` calls one after another, each checked against `local`: fast (under
// 100 ms) or slow.
Timed timed_calls(const RemoteModel& remote, const keel::Model& local, int n, unsigned seed) {
  const std::size_t nf = local.info().num_features;
  const auto rows = random_rows(16, nf, seed);
  std::vector<float> want(16), got(1);
  REQUIRE(local.predict(rows, 16, want));
  Timed t;
  for (int i = 0; i < n; ++i) {
    keel::PredictOptions po;
    po.deadline = Deadline::after(3s);
    const auto t0 = std::chrono::steady_clock::now();
    const auto s = remote.predict_row(std::span(rows).subspan(static_cast<std::size_t>(i % 16) * nf, nf), got, po);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    t.max_ms = std::max(t.max_ms, ms);
    if (!s) {
      if (t.failed++ == 0) fmt::print("first failure: {}\n", s.to_string());
      continue;
    }
    if (got[0] != want[static_cast<std::size_t>(i % 16)]) ++t.wrong;
    (ms < 100 ? t.fast : t.slow)++;
  }
  return t;
}

// `stopped` (endpoint 0) SIGSTOPped, then 100 calls: every one answered,
// right, and fast (hedged around it after the p95, never waiting out the
// attempt timeout), with no hedge refused and no failure counted.
void hedged_around(const RemoteModel& remote, const keel::Model& local, KeelServe& stopped, const std::string& label) {
  const RemoteHedgeStats h0 = remote.hedge_stats();
  stopped.pause();
  std::this_thread::sleep_for(100ms);
  const Timed hot = timed_calls(remote, local, 100, 2);
  const RemoteHedgeStats h1 = remote.hedge_stats();
  fmt::print("{} hedge: 100 calls, one of 3 replicas SIGSTOPped: fast {} slow {} failed {} wrong {}, max {:.1f} ms, "
             "delay {:.3f} ms, hedges launched {} won {} no_budget {}\n",
             label, hot.fast, hot.slow, hot.failed, hot.wrong, hot.max_ms, h1.delay_ms, h1.launched - h0.launched,
             h1.won - h0.won, h1.no_budget - h0.no_budget);
  CHECK(hot.failed == 0);
  CHECK(hot.wrong == 0);
  CHECK(hot.slow == 0);         // none waited for the attempt timeout
  CHECK(h1.won - h0.won >= 1);  // the stopped replica was picked and hedged around
  CHECK(h1.no_budget == h0.no_budget);
  CHECK(remote.endpoint_stats()[0].failures == 0);  // a hedged-around attempt is no failure
}

RemoteModelOptions hedged_options(const std::vector<RemoteEndpoint>& eps, double budget_percent, double burst) {
  RemoteModelOptions o;
  o.model = "m";
  o.endpoints = eps;
  o.attempt_timeout = 600ms;  // a SIGSTOPped replica costs this without a hedge
  o.health_interval = Duration::zero();  // only hedging gets around the stopped one
  o.outlier.consecutive_failures = 1'000'000;
  o.ewma_decay = 50ms;  // P2C forgets quickly, so the stopped replica keeps being picked
  o.hedge.enabled = true;
  o.hedge.min_samples = 20;
  o.hedge.budget_percent = budget_percent;
  o.hedge.burst = burst;
  return o;
}

}  // namespace

TEST_CASE("RemoteModel hedges a SIGSTOPped replica after the observed p95, within its budget", "[remote][hedge]") {
  Three three(kData + "/xgboost/binary_logistic.json");
  auto& [local, r0, r1, r2] = three;
  const std::vector<RemoteEndpoint> eps{endpoint(*r0), endpoint(*r1), endpoint(*r2)};

  // A generous budget: every call that meets the stopped replica is hedged.
  RemoteModel generous(hedged_options(eps, 100, 10));
  const Timed warm = timed_calls(generous, **local, 60, 1);
  REQUIRE(warm.failed == 0);
  const RemoteHedgeStats h0 = generous.hedge_stats();
  INFO(generous.health().detail);
  CHECK(h0.delay_ms > 0);
  CHECK(h0.delay_ms < 100);  // the p95 of loopback answers
  hedged_around(generous, **local, *r0, "REST");

  // A spent budget: 0 % a call and one saved hedge. The first call that
  // meets the stopped replica is hedged; the later ones wait it out.
  r0->resume();
  RemoteModel tight(hedged_options(eps, 0, 1));
  REQUIRE(timed_calls(tight, **local, 40, 3).failed == 0);
  const RemoteHedgeStats t0 = tight.hedge_stats();
  r0->pause();
  std::this_thread::sleep_for(100ms);
  // Until a call met the stopped replica with the budget spent (P2C avoids
  // it while its latency estimate decays, so rounds are spaced out).
  Timed spent;
  int calls = 0;
  const auto give_up = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < give_up && (spent.slow == 0 || tight.hedge_stats().no_budget == 0)) {
    if (calls > 0) std::this_thread::sleep_for(20ms);
    const Timed t = timed_calls(tight, **local, 10, 4 + static_cast<unsigned>(calls));
    calls += 10;
    spent.fast += t.fast;
    spent.slow += t.slow;
    spent.failed += t.failed;
    spent.wrong += t.wrong;
  }
  const RemoteHedgeStats t1 = tight.hedge_stats();
  fmt::print("hedge, budget 0% + 1: {} calls, one SIGSTOPped: fast {} slow {} failed {}, hedges launched {} "
             "(before: {}) won {} no_budget {}\n",
             calls, spent.fast, spent.slow, spent.failed, t1.launched, t0.launched, t1.won, t1.no_budget);
  CHECK(spent.failed == 0);
  CHECK(spent.wrong == 0);
  CHECK(t1.launched <= 1);  // the budget: burst 1, nothing deposited
  CHECK(t1.no_budget > 0);  // hedges were due and not sent
  CHECK(spent.slow > 0);    // ... so those calls waited for the attempt timeout
  r0->resume();
}

TEST_CASE("Two clients' RemoteModels on one replica never share a request id", "[remote]") {
  // The server keys idempotency on the OIP id: ids a client counts from 1
  // made the second client's different rows a 422 (found by the hedge test).
  const std::string file = kData + "/xgboost/binary_logistic.json";
  auto local = keel::load_model(file);
  REQUIRE(local.ok());
  auto r = replica(file);
  RemoteModelOptions o;
  o.model = "m";
  o.endpoints = {endpoint(*r)};
  o.health_interval = Duration::zero();
  RemoteModel a(o), b(o);
  const Timed ta = timed_calls(a, **local, 20, 11);
  const Timed tb = timed_calls(b, **local, 20, 12);
  CHECK(ta.failed == 0);
  CHECK(tb.failed == 0);
  CHECK(ta.wrong + tb.wrong == 0);
}

namespace {

// A replica with a gRPC port of its own (kept across restarts).
std::unique_ptr<KeelServe> grpc_replica(const std::string& model_file, int& grpc_port) {
  keel::test::KeelServeOptions o;
  o.keel_binary = keel::test::keel_binary(KEEL_BINARY_DIR);
  o.model_file = model_file;
  grpc_port = keel::test::free_port();
  o.extra = {"--grpc-port", std::to_string(grpc_port)};
  return std::make_unique<KeelServe>(o);
}

RemoteModelOptions grpc_options(const std::vector<int>& ports) {
  RemoteModelOptions o;
  o.model = "m";
  o.transport = RemoteTransport::kGrpc;
  for (int p : ports) {
    RemoteEndpoint e;
    e.port = p;
    o.endpoints.push_back(e);
  }
  return o;
}

}  // namespace

TEST_CASE("RemoteModel over gRPC answers exactly what the model file answers, on floats and doubles",
          "[remote][grpc]") {
  for (const char* name : {"xgboost/multi_softprob.json", "xgboost/missing_nan.json"}) {
    const std::string file = kData + "/" + name;
    auto local = keel::load_model(file);
    REQUIRE(local.ok());
    int p1 = 0, p2 = 0;
    auto r1 = grpc_replica(file, p1);
    auto r2 = grpc_replica(file, p2);
    RemoteModel remote(grpc_options({p1, p2}));
    INFO(name);
    same_answers(remote, **local, {1, 300}, 40);
    for (const auto& e : remote.endpoint_stats()) CHECK(e.failures == 0);
  }
  // LightGBM on threshold rows: only doubles end to end give the local answers.
  const std::string lgb = kData + "/lightgbm/binary.model.txt";
  const keel::testing::ThresholdRows e = keel::testing::threshold_rows(lgb);
  REQUIRE(e.differ > 0);
  int p = 0;
  auto r = grpc_replica(lgb, p);
  RemoteModel remote(grpc_options({p}));
  keel::PredictOptions po;
  po.deadline = Deadline::after(5s);
  std::vector<float> got(e.n, -1.f);
  REQUIRE(remote.predict(std::span<const double>(e.rows64), e.n, std::span<float>(got), po));
  CHECK(same_bits(got, e.want64));
  // A wrong-length row is the request's fault: refused at once, not failed over.
  std::vector<float> out(1);
  CHECK(remote.predict_row(std::vector<float>(e.F + 1), out).code() == StatusCode::kInvalidInput);
}

TEST_CASE("RemoteModel over gRPC: a SIGSTOPped replica is hedged around, and the caller's deadline holds",
          "[remote][grpc][hedge]") {
  const std::string file = kData + "/xgboost/binary_logistic.json";
  auto local = keel::load_model(file);
  REQUIRE(local.ok());
  int p0 = 0, p1 = 0, p2 = 0;
  auto r0 = grpc_replica(file, p0);
  auto r1 = grpc_replica(file, p1);
  auto r2 = grpc_replica(file, p2);
  RemoteModelOptions o = grpc_options({p0, p1, p2});
  o.attempt_timeout = 600ms;
  o.health_interval = Duration::zero();
  o.outlier.consecutive_failures = 1'000'000;
  o.ewma_decay = 50ms;
  o.hedge.enabled = true;
  o.hedge.budget_percent = 100;
  RemoteModel remote(o);
  REQUIRE(timed_calls(remote, **local, 60, 21).failed == 0);
  hedged_around(remote, **local, *r0, "gRPC");

  // Every replica stopped: the call's deadline, not the 600 ms attempt timeout, bounds it.
  r1->pause();
  r2->pause();
  std::this_thread::sleep_for(100ms);
  deadline_holds(remote, "gRPC, every replica SIGSTOPped");
  r0->resume();
  r1->resume();
  r2->resume();
  CHECK(score_rows(remote, 5) == 0);
}
