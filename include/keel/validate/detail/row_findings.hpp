#pragma once
// RowFindings<T>: per-row lists of findings (violations, anomaly reasons)
// for a batch, in two flat vectors that keep their capacity between calls,
// so that a report reused across requests allocates nothing once warm.
// Rows are filled in order by one writer. Not thread-safe.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace keel::detail {

template <class T>
class RowFindings {
 public:
  struct Row {
    std::uint32_t begin = 0;    // index of the row's first finding
    std::uint32_t stored = 0;   // findings kept for the row
    std::uint32_t dropped = 0;  // findings beyond the per-row cap (counted, not kept)
  };

  // Starts a batch of n rows, keeping capacity. At most max_per_row findings
  // of one row are stored (a bound on memory for rows that are all bad).
  void reset(std::size_t n_rows, std::size_t max_per_row) {
    if (n_rows == 1 && rows_.size() == 1) {  // a reused list, one row: no library call
      rows_[0] = Row{};
    } else {
      rows_.assign(n_rows, Row{});
    }
    items_.clear();
    max_per_row_ = max_per_row;
  }
  // Appends a finding to `row`; rows must be filled in ascending order.
  void add(std::size_t row, const T& item) noexcept {
    Row& r = rows_[row];
    if (r.stored == 0) r.begin = static_cast<std::uint32_t>(items_.size());
    if (r.stored >= max_per_row_) {
      ++r.dropped;
      return;
    }
    items_.push_back(item);
    ++r.stored;
  }

  [[nodiscard]] std::size_t rows() const noexcept { return rows_.size(); }
  [[nodiscard]] std::span<const T> all() const noexcept { return items_; }
  [[nodiscard]] std::span<const T> of(std::size_t row) const noexcept {
    const Row& r = rows_[row];
    return std::span<const T>(items_).subspan(r.begin, r.stored);
  }
  // Findings of the row, stored and dropped.
  [[nodiscard]] std::size_t count(std::size_t row) const noexcept { return rows_[row].stored + rows_[row].dropped; }

 private:
  std::vector<Row> rows_;
  std::vector<T> items_;
  std::size_t max_per_row_ = 32;
};

}  // namespace keel::detail
