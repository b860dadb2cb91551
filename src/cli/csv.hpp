#pragma once
// A streaming reader for numeric CSV tables, shared by the CLI commands
// (score, profile, drift, bench). The first line is a header of column
// names; every other line is a row of numbers.
//
//  - Reads fixed-size chunks, so a file larger than memory streams; one line
//    may not exceed Options::max_line_bytes.
//  - Values parse as double exactly (strtod semantics): an empty field is
//    NaN (missing); "nan", "inf", "-inf", "infinity" are accepted in any
//    case; surrounding spaces and a leading '+' are allowed.
//  - Fields may be double-quoted ("" is a quote inside quotes); a quoted
//    field cannot span lines.
//  - A line with only whitespace is skipped when the table has more than one
//    column (with one column it is a missing value).
//  - Errors name the 1-based file line and, for a bad value, the column; a
//    bad row does not stop the reader, so a caller may skip it and go on.
//
// Not thread-safe: one reader per thread.

#include <keel/core/result.hpp>
#include <keel/core/status.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <istream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel::cli {

class CsvReader {
 public:
  struct Options {
    char delimiter = ',';
    std::size_t chunk_bytes = std::size_t{1} << 16;
    std::size_t max_line_bytes = std::size_t{1} << 24;
  };

  // Outcome of next(): a row of values, the end of the input, or a bad row
  // (error names line and column; the reader has moved past it).
  struct Row {
    enum class Kind : std::uint8_t { kValues, kEnd, kError };
    Kind kind = Kind::kEnd;
    std::size_t line = 0;  // 1-based file line of this row
    Status error;          // set when kind == kError
  };

  // Opens a file ("-" reads standard input) and reads its header. Errors
  // (kInvalidInput): the file cannot be opened, it is empty, or the header
  // is malformed.
  [[nodiscard]] static Result<std::unique_ptr<CsvReader>> open(const std::filesystem::path& path,
                                                               const Options& opts);
  [[nodiscard]] static Result<std::unique_ptr<CsvReader>> open(const std::filesystem::path& path) {
    return open(path, Options{});
  }
  // Reads from a stream the caller keeps alive.
  [[nodiscard]] static Result<std::unique_ptr<CsvReader>> from_stream(std::istream& in, const Options& opts);
  [[nodiscard]] static Result<std::unique_ptr<CsvReader>> from_stream(std::istream& in) {
    return from_stream(in, Options{});
  }

  // The header's column names, in file order.
  [[nodiscard]] const std::vector<std::string>& columns() const noexcept { return columns_; }
  // Index of a column by exact name; nullopt when absent.
  [[nodiscard]] std::optional<std::size_t> find_column(std::string_view name) const noexcept;

  // Reads the next row into `values` (columns().size() doubles).
  [[nodiscard]] Row next(std::span<double> values);

  // A field that is not a number goes to `handler(column, field)` instead of
  // being an error (keel score maps category strings with it); an error it
  // returns is the row's error, with the line and column added.
  using TextField = std::function<Result<double>(std::size_t column, std::string_view field)>;
  void set_text_field_handler(TextField handler) { text_field_ = std::move(handler); }

 private:
  CsvReader(std::istream& in, std::unique_ptr<std::istream> owned, const Options& opts);
  Status read_header();
  // The next line (without "\n" or "\r\n"), valid until the next call; false at the end.
  // Sets `error` when the line exceeds max_line_bytes.
  bool read_line(std::string_view& line, Status& error);
  // Splits a line into fields_; error on an unterminated quote.
  Status split(std::string_view line);

  std::unique_ptr<std::istream> owned_;
  std::istream& in_;
  Options opts_;
  std::string buf_;
  std::size_t pos_ = 0;   // start of the unread part of buf_
  std::size_t scan_ = 0;  // where to continue looking for '\n'
  bool eof_ = false;
  std::size_t line_ = 0;  // lines consumed so far
  std::vector<std::string> columns_;
  std::vector<std::string_view> fields_;
  std::string unquoted_;  // a quoted line's fields, unescaped
  std::vector<std::pair<std::size_t, std::size_t>> spans_;  // (offset, length) in unquoted_
  TextField text_field_;
};

// Parses one CSV value as described above; false when it is not a number.
[[nodiscard]] bool parse_csv_double(std::string_view field, double& out) noexcept;

}  // namespace keel::cli
