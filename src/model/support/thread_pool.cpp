#include "model/support/thread_pool.hpp"

#include <algorithm>
#include <atomic>

namespace keel::detail {

struct ThreadPool::Job {
  TaskFn fn = nullptr;
  void* ctx = nullptr;
  std::size_t n = 0;
  std::atomic<std::size_t> next{0};
  unsigned helpers_wanted = 0;  // guarded by ThreadPool::mu_, as the two below
  unsigned helpers_joined = 0;
  unsigned helpers_done = 0;
};

ThreadPool& ThreadPool::instance() {
  static ThreadPool pool;
  return pool;
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::work(Job& job) noexcept {
  for (std::size_t i = job.next.fetch_add(1, std::memory_order_relaxed); i < job.n;
       i = job.next.fetch_add(1, std::memory_order_relaxed)) {
    job.fn(job.ctx, i);
  }
}

void ThreadPool::worker_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    Job* job = queue_.front();
    if (++job->helpers_joined == job->helpers_wanted) queue_.pop_front();
    lock.unlock();
    work(*job);
    lock.lock();
    ++job->helpers_done;
    done_.notify_all();
  }
}

void ThreadPool::run(std::size_t n, unsigned threads, TaskFn fn, void* ctx) noexcept {
  Job job;
  job.fn = fn;
  job.ctx = ctx;
  job.n = n;
  const unsigned helpers = static_cast<unsigned>(std::min<std::size_t>(threads > 0 ? threads - 1 : 0, n > 0 ? n - 1 : 0));
  if (helpers > 0) {
    std::lock_guard lock(mu_);
    try {
      while (workers_.size() < helpers && !stop_) workers_.emplace_back([this] { worker_loop(); });
    } catch (...) {
      // Could not start a thread: run with the workers there are.
    }
    job.helpers_wanted = static_cast<unsigned>(std::min<std::size_t>(helpers, workers_.size()));
    if (job.helpers_wanted > 0) {
      try {
        queue_.push_back(&job);
      } catch (...) {
        job.helpers_wanted = 0;
      }
    }
  }
  if (job.helpers_wanted > 0) {
    shared_runs_.fetch_add(1, std::memory_order_relaxed);
    wake_.notify_all();
  }
  work(job);
  if (job.helpers_wanted == 0) return;
  std::unique_lock lock(mu_);
  // Helpers that have not joined yet are no longer needed.
  if (job.helpers_joined < job.helpers_wanted) {
    queue_.erase(std::find(queue_.begin(), queue_.end(), &job));
  }
  done_.wait(lock, [&] { return job.helpers_done == job.helpers_joined; });
}

}  // namespace keel::detail
