#pragma once
// RowSource: rows arriving in chunks (a CSV file, a database cursor, a
// buffer), so that profiling and drift reports stream inputs larger than
// memory. SpanRowSource serves rows already in memory. Not thread-safe.

#include <keel/core/result.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>

namespace keel {

class RowSource {
 public:
  virtual ~RowSource() = default;
  [[nodiscard]] virtual std::size_t num_features() const noexcept = 0;
  // Reads up to max_rows rows into out (at least max_rows * num_features()
  // floats, row-major, NaN = missing). Returns the rows read, 0 at the end;
  // an error names the line or row that could not be read.
  [[nodiscard]] virtual Result<std::size_t> read(std::span<float> out, std::size_t max_rows) = 0;
  // Fraction of the input consumed, in [0, 1]; negative when unknown.
  [[nodiscard]] virtual double progress() const noexcept { return -1.0; }
};

class SpanRowSource final : public RowSource {
 public:
  SpanRowSource(std::span<const float> rows, std::size_t num_features) noexcept
      : rows_(rows), n_(num_features) {}
  [[nodiscard]] std::size_t num_features() const noexcept override { return n_; }
  [[nodiscard]] Result<std::size_t> read(std::span<float> out, std::size_t max_rows) override {
    const std::size_t total = n_ == 0 ? 0 : rows_.size() / n_;
    const std::size_t k = std::min({max_rows, total - pos_, n_ == 0 ? 0 : out.size() / n_});
    if (k > 0) std::memcpy(out.data(), rows_.data() + pos_ * n_, k * n_ * sizeof(float));
    pos_ += k;
    return k;
  }
  [[nodiscard]] double progress() const noexcept override {
    const std::size_t total = n_ == 0 ? 0 : rows_.size() / n_;
    return total == 0 ? 1.0 : static_cast<double>(pos_) / static_cast<double>(total);
  }

 private:
  std::span<const float> rows_;
  std::size_t n_;
  std::size_t pos_ = 0;
};

}  // namespace keel
