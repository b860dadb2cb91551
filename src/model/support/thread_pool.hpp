#pragma once
// A small persistent pool for batch prediction: workers are created on first
// use (up to the largest count asked for) and live until exit. run() splits
// [0, n) tasks among the caller and up to threads - 1 workers; the caller
// always works too, so a busy pool only slows a batch down, never stalls it.
// Thread-safe: any number of callers may run() concurrently.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace keel::detail {

class ThreadPool {
 public:
  using TaskFn = void (*)(void* ctx, std::size_t task) noexcept;

  static ThreadPool& instance();

  ThreadPool() = default;
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Runs fn(ctx, i) for every i in [0, n) and returns when all are done.
  void run(std::size_t n, unsigned threads, TaskFn fn, void* ctx) noexcept;
  // run() calls so far that handed tasks to at least one worker (tests use
  // it to know a batch really went parallel).
  std::size_t shared_runs() const noexcept { return shared_runs_.load(std::memory_order_relaxed); }

 private:
  struct Job;
  void worker_loop();
  static void work(Job& job) noexcept;

  std::mutex mu_;
  std::condition_variable wake_;   // workers: a job was queued, or stop
  std::condition_variable done_;   // callers: a helper finished
  std::deque<Job*> queue_;         // guarded by mu_
  std::vector<std::thread> workers_;  // guarded by mu_
  bool stop_ = false;                 // guarded by mu_
  std::atomic<std::size_t> shared_runs_{0};
};

}  // namespace keel::detail
