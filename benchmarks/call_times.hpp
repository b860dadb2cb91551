#pragma once
// Per-call wall times for a benchmark's p50_us and p99_us counters: the
// mean hides the tail, and the tail is what a call over the network costs.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace keel::bench {

class CallTimes {
 public:
  CallTimes() { us_.reserve(1 << 16); }
  void start() { t0_ = std::chrono::steady_clock::now(); }
  void stop() { us_.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0_).count()); }
  void report(benchmark::State& state) {
    if (us_.empty()) return;
    std::sort(us_.begin(), us_.end());
    state.counters["p50_us"] = us_[us_.size() / 2];
    state.counters["p99_us"] = us_[std::min(us_.size() - 1, us_.size() * 99 / 100)];
  }

 private:
  std::vector<double> us_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace keel::bench
