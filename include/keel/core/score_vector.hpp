#pragma once
// ScoreVector: a Response's scores. Most models answer one to four floats
// a row (regression, binary, small multiclass), so up to four are held in
// the object itself and a single-row answer costs no allocation; more go
// to the heap. It reads like a std::vector<float> (size, data, iteration,
// indexing, assign, push_back, resize), converts to a span, and compares
// equal to a vector or another ScoreVector holding the same values.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <span>
#include <stdexcept>
#include <vector>

namespace keel {

class ScoreVector {
 public:
  using value_type = float;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using reference = float&;
  using const_reference = const float&;
  using pointer = float*;
  using const_pointer = const float*;
  using iterator = float*;
  using const_iterator = const float*;

  static constexpr std::size_t kInline = 4;

  ScoreVector() noexcept = default;
  ScoreVector(std::initializer_list<float> v) { assign(v.begin(), v.end()); }
  ScoreVector(std::size_t n, float x) { assign(n, x); }
  explicit ScoreVector(std::span<const float> v) { assign(v.begin(), v.end()); }
  explicit ScoreVector(const std::vector<float>& v) { assign(v.begin(), v.end()); }
  ScoreVector(const ScoreVector& o) { assign(o.begin(), o.end()); }
  ScoreVector(ScoreVector&& o) noexcept { steal(o); }
  ScoreVector& operator=(const ScoreVector& o) {
    if (this != &o) assign(o.begin(), o.end());
    return *this;
  }
  ScoreVector& operator=(ScoreVector&& o) noexcept {
    if (this != &o) {
      heap_.reset();
      cap_ = kInline;
      steal(o);
    }
    return *this;
  }
  ScoreVector& operator=(std::initializer_list<float> v) {
    assign(v.begin(), v.end());
    return *this;
  }
  ScoreVector& operator=(const std::vector<float>& v) {
    assign(v.begin(), v.end());
    return *this;
  }
  ~ScoreVector() = default;

  template <class It>
  void assign(It first, It last) {
    const auto n = static_cast<std::size_t>(std::distance(first, last));
    make_room(n, false);
    std::copy(first, last, data());
    size_ = static_cast<std::uint32_t>(n);
  }
  void assign(std::size_t n, float x) {
    make_room(n, false);
    std::fill_n(data(), n, x);
    size_ = static_cast<std::uint32_t>(n);
  }
  void assign(std::span<const float> v) { assign(v.begin(), v.end()); }

  void reserve(std::size_t n) { make_room(n, true); }
  void resize(std::size_t n, float x = 0.0f) {
    make_room(n, true);
    if (n > size_) std::fill(data() + size_, data() + n, x);
    size_ = static_cast<std::uint32_t>(n);
  }
  void push_back(float x) {
    if (size_ == cap_) make_room(std::size_t{cap_} * 2, true);
    data()[size_++] = x;
  }
  void clear() noexcept { size_ = 0; }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return cap_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] float* data() noexcept { return heap_ ? heap_.get() : inline_; }
  [[nodiscard]] const float* data() const noexcept { return heap_ ? heap_.get() : inline_; }
  [[nodiscard]] iterator begin() noexcept { return data(); }
  [[nodiscard]] iterator end() noexcept { return data() + size_; }
  [[nodiscard]] const_iterator begin() const noexcept { return data(); }
  [[nodiscard]] const_iterator end() const noexcept { return data() + size_; }
  [[nodiscard]] const_iterator cbegin() const noexcept { return begin(); }
  [[nodiscard]] const_iterator cend() const noexcept { return end(); }
  float& operator[](std::size_t i) noexcept { return data()[i]; }
  const float& operator[](std::size_t i) const noexcept { return data()[i]; }
  [[nodiscard]] const float& at(std::size_t i) const {
    if (i >= size_) throw std::out_of_range("ScoreVector::at");
    return data()[i];
  }
  [[nodiscard]] float& at(std::size_t i) {
    if (i >= size_) throw std::out_of_range("ScoreVector::at");
    return data()[i];
  }
  [[nodiscard]] float& front() noexcept { return data()[0]; }
  [[nodiscard]] const float& front() const noexcept { return data()[0]; }
  [[nodiscard]] float& back() noexcept { return data()[size_ - 1]; }
  [[nodiscard]] const float& back() const noexcept { return data()[size_ - 1]; }

  operator std::span<const float>() const noexcept { return {data(), size_}; }  // NOLINT: reads like a vector
  operator std::span<float>() noexcept { return {data(), size_}; }              // NOLINT
  [[nodiscard]] std::vector<float> to_vector() const { return {begin(), end()}; }

  // Equal values (so NaN != NaN, as for std::vector<float>).
  friend bool operator==(const ScoreVector& a, const ScoreVector& b) noexcept {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }
  friend bool operator==(const ScoreVector& a, const std::vector<float>& b) noexcept {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  // Capacity for n floats; `keep` copies the current values over.
  void make_room(std::size_t n, bool keep) {
    if (n <= cap_) return;
    if (n > UINT32_MAX) throw std::length_error("ScoreVector: too many scores");
    auto fresh = std::make_unique<float[]>(n);
    if (keep) std::copy(begin(), end(), fresh.get());
    heap_ = std::move(fresh);
    cap_ = static_cast<std::uint32_t>(n);
  }
  void steal(ScoreVector& o) noexcept {
    size_ = o.size_;
    if (o.heap_) {
      heap_ = std::move(o.heap_);
      cap_ = o.cap_;
    } else {
      std::copy(o.inline_, o.inline_ + o.size_, inline_);
    }
    o.size_ = 0;
    o.cap_ = kInline;
  }

  std::unique_ptr<float[]> heap_;
  std::uint32_t size_ = 0;
  std::uint32_t cap_ = kInline;
  float inline_[kInline] = {};
};

}  // namespace keel
