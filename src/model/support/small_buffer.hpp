#pragma once
// A scratch array on the stack when small, on the heap otherwise; for
// per-row buffers sized by a model's output count. Not thread-safe (one per
// call). Heap allocation may throw std::bad_alloc.

#include <cstddef>
#include <vector>

namespace keel::detail {

template <class T, std::size_t N>
class SmallBuffer {
 public:
  explicit SmallBuffer(std::size_t n) {
    if (n > N) {
      heap_.resize(n);
      data_ = heap_.data();
    }
  }
  SmallBuffer(const SmallBuffer&) = delete;
  SmallBuffer& operator=(const SmallBuffer&) = delete;

  [[nodiscard]] T* data() noexcept { return data_; }
  T& operator[](std::size_t i) noexcept { return data_[i]; }

 private:
  T stack_[N]{};  // value-initialised: GCC 12 -O2 -Wmaybe-uninitialized cannot see that reads follow writes
  std::vector<T> heap_;
  T* data_ = stack_;
};

}  // namespace keel::detail
