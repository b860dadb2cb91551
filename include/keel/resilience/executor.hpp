#pragma once
// BoundedExecutor: a fixed pool of worker threads with a bounded queue,
// for stages marked isolated (a model that may hang). Submitting to a full
// queue fails at once instead of growing a backlog: nothing waits without
// bound. Thread-safe.
//
// The destructor stops accepting work, drops queued tasks that have not
// started, and joins the workers; a task that hangs forever therefore
// blocks destruction (tests release their hung fakes first).

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace keel {

struct ExecutorConfig {
  unsigned threads = 4;
  std::size_t queue_capacity = 64;
};

struct ExecutorStats {
  std::uint64_t submitted = 0;
  std::uint64_t rejected = 0;  // queue full or shutting down
  std::uint64_t completed = 0;
  std::size_t queued = 0;
  unsigned busy = 0;
};

class BoundedExecutor {
 public:
  // Throws keel::Error (kInvalidInput) for zero threads or capacity.
  explicit BoundedExecutor(ExecutorConfig config = {});
  ~BoundedExecutor();
  BoundedExecutor(const BoundedExecutor&) = delete;
  BoundedExecutor& operator=(const BoundedExecutor&) = delete;

  // False when the queue is full or the executor is stopping.
  [[nodiscard]] bool try_submit(std::function<void()> task) noexcept;
  [[nodiscard]] ExecutorStats stats() const;
  [[nodiscard]] const ExecutorConfig& config() const noexcept { return config_; }

 private:
  void work();

  ExecutorConfig config_;
  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::atomic<std::size_t> queued_{0};  // queue_.size(), for workers looking before they sleep
  bool stopping_ = false;
  unsigned busy_ = 0;
  std::uint64_t submitted_ = 0;
  std::uint64_t rejected_ = 0;
  std::uint64_t completed_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace keel
