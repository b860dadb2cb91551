#include <keel/resilience/executor.hpp>
#include <keel/core/status.hpp>

namespace keel {

BoundedExecutor::BoundedExecutor(ExecutorConfig config) : config_(config) {
  if (config_.threads == 0) throw Error(StatusCode::kInvalidInput, "executor: threads must be >= 1");
  if (config_.queue_capacity == 0) throw Error(StatusCode::kInvalidInput, "executor: queue_capacity must be >= 1");
  threads_.reserve(config_.threads);
  for (unsigned i = 0; i < config_.threads; ++i) threads_.emplace_back([this] { work(); });
}

BoundedExecutor::~BoundedExecutor() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

bool BoundedExecutor::try_submit(std::function<void()> task) noexcept {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || queue_.size() >= config_.queue_capacity) {
      ++rejected_;
      return false;
    }
    queue_.push_back(std::move(task));
    ++submitted_;
  }
  cv_.notify_one();
  return true;
}

void BoundedExecutor::work() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping and nothing left
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    ++busy_;
    lock.unlock();
    task();
    task = nullptr;  // destroy captures outside the lock
    lock.lock();
    --busy_;
    ++completed_;
  }
}

ExecutorStats BoundedExecutor::stats() const {
  std::lock_guard lock(mu_);
  return {submitted_, rejected_, completed_, queue_.size(), busy_};
}

}  // namespace keel
