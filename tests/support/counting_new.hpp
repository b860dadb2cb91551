#pragma once
// Replaces the global operator new (every form: plain, array, nothrow,
// aligned) with one that counts calls while armed, for tests that prove a
// path allocates nothing. Include it from exactly one file of a test
// executable: it defines the replacements.

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

// GCC 12 at -O2/-O3 inlines std::allocator into the replaced operator delete
// and reports malloc/free as a mismatched pair (they match).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace keel::test {

inline std::atomic<bool> g_alloc_armed{false};
inline std::atomic<long> g_allocs{0};

// Counts the allocations made while one is alive, on any thread.
class AllocationCounter {
 public:
  AllocationCounter() noexcept {
    g_allocs = 0;
    g_alloc_armed = true;
  }
  ~AllocationCounter() { g_alloc_armed = false; }
  AllocationCounter(const AllocationCounter&) = delete;
  AllocationCounter& operator=(const AllocationCounter&) = delete;
  [[nodiscard]] long count() const noexcept { return g_allocs.load(); }
};

inline void* counted_alloc(std::size_t n, std::size_t align) noexcept {
  if (g_alloc_armed.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (n == 0) n = 1;
  if (align <= alignof(std::max_align_t)) return std::malloc(n);
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}

}  // namespace keel::test

void* operator new(std::size_t n) {
  if (void* p = keel::test::counted_alloc(n, 0)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return keel::test::counted_alloc(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return keel::test::counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = keel::test::counted_alloc(n, static_cast<std::size_t>(a))) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return ::operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

// Under ASan, objects allocated before main through the sanitizer's
// operator new are released through this delete at exit; the mismatch
// report is about that hand-over, not about the code under test.
extern "C" const char* __asan_default_options() { return "alloc_dealloc_mismatch=0"; }
