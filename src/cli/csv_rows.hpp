#pragma once
// The CLI's RowSource over a CSV file (for keel profile and keel drift):
// selected columns become the features, in the order given; bad rows
// (ragged, unparsable) stop the read or, with skip_bad_rows, are reported
// on stderr and counted. Plus a progress bar on stderr when it is a
// terminal. Not thread-safe.

#include "cli/csv.hpp"

#include <keel/validate/row_source.hpp>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace keel::cli {

class CsvRowSource final : public RowSource {
 public:
  // Opens `path` ("-" = stdin) and reads the header.
  [[nodiscard]] static Result<std::unique_ptr<CsvRowSource>> open(const std::string& path, bool skip_bad_rows,
                                                                  std::string command);

  [[nodiscard]] const std::vector<std::string>& columns() const noexcept { return csv_->columns(); }
  [[nodiscard]] const CsvReader& csv() const noexcept { return *csv_; }
  // Feature j is column column_of[j].
  void select(std::vector<std::size_t> column_of) { column_of_ = std::move(column_of); }
  // Every column but the excluded ones; error naming an excluded column the file lacks.
  [[nodiscard]] Result<std::vector<std::string>> select_all_but(const std::vector<std::string>& exclude);
  // The columns named `names`, in that order; error naming the first one absent.
  [[nodiscard]] Status select_names(const std::vector<std::string>& names);

  [[nodiscard]] std::size_t num_features() const noexcept override { return column_of_.size(); }
  [[nodiscard]] Result<std::size_t> read(std::span<float> out, std::size_t max_rows) override;
  [[nodiscard]] double progress() const noexcept override;
  [[nodiscard]] std::uint64_t skipped() const noexcept { return skipped_; }
  [[nodiscard]] std::uint64_t rows_read() const noexcept { return rows_; }

 private:
  CsvRowSource() = default;
  std::string path_, command_;
  std::unique_ptr<std::ifstream> file_;
  std::unique_ptr<CsvReader> csv_;
  std::vector<std::size_t> column_of_;
  std::vector<double> line_;
  double size_ = -1;  // bytes, when known
  bool skip_ = false;
  std::uint64_t rows_ = 0, skipped_ = 0;
};

// "\r<label> [#####     ]  45%  123456 rows" on stderr, at most ten times
// a second, only when stderr is a terminal. Not thread-safe.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  ~ProgressBar();
  void update(std::uint64_t rows, double fraction);

 private:
  std::string label_;
  bool tty_ = false, drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace keel::cli
