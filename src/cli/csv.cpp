// Streaming numeric CSV reader; see csv.hpp for the accepted dialect.

#include "cli/csv.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <limits>

namespace keel::cli {

namespace {

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_blank(std::string_view s) noexcept { return trim(s).empty(); }

// A field for an error message: at most 40 characters.
std::string shown(std::string_view s) {
  return s.size() <= 40 ? std::string(s) : std::string(s.substr(0, 37)) + "...";
}

}  // namespace

bool parse_csv_double(std::string_view field, double& out) noexcept {
  std::string_view s = trim(field);
  if (s.empty()) {
    out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (s.front() == '+') {
    s.remove_prefix(1);
    if (s.empty() || s.front() == '-' || s.front() == '+') return false;
  }
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (p != s.data() + s.size()) return false;
  if (ec == std::errc::result_out_of_range) {
    // Over- or underflow: strtod's answer (+-inf, or 0 / the nearest subnormal).
    char buf[64];
    if (s.size() >= sizeof buf) return false;
    s.copy(buf, s.size());
    buf[s.size()] = '\0';
    out = std::strtod(buf, nullptr);
    return true;
  }
  return ec == std::errc{};
}

CsvReader::CsvReader(std::istream& in, std::unique_ptr<std::istream> owned, const Options& opts)
    : owned_(std::move(owned)), in_(in), opts_(opts) {
  if (opts_.chunk_bytes == 0) opts_.chunk_bytes = 1;
}

Result<std::unique_ptr<CsvReader>> CsvReader::open(const std::filesystem::path& path, const Options& opts) {
  std::unique_ptr<CsvReader> r;
  if (path == "-") {
    r.reset(new CsvReader(std::cin, nullptr, opts));
  } else {
    auto file = std::make_unique<std::ifstream>(path, std::ios::binary);
    if (!file->is_open()) return invalid_input(fmt::format("cannot open '{}'", path.string()));
    std::istream& ref = *file;
    r.reset(new CsvReader(ref, std::move(file), opts));
  }
  if (Status s = r->read_header(); !s) return s;
  return r;
}

Result<std::unique_ptr<CsvReader>> CsvReader::from_stream(std::istream& in, const Options& opts) {
  std::unique_ptr<CsvReader> r(new CsvReader(in, nullptr, opts));
  if (Status s = r->read_header(); !s) return s;
  return r;
}

bool CsvReader::read_line(std::string_view& line, Status& error) {
  while (true) {
    const std::size_t nl = buf_.find('\n', scan_);
    if (nl != std::string::npos) {
      line = std::string_view(buf_).substr(pos_, nl - pos_);
      pos_ = scan_ = nl + 1;
      break;
    }
    scan_ = buf_.size();
    if (buf_.size() - pos_ > opts_.max_line_bytes) {
      error = invalid_input(fmt::format("line {}: longer than {} bytes", line_ + 1, opts_.max_line_bytes));
      return false;
    }
    if (eof_) {
      if (pos_ >= buf_.size()) return false;
      line = std::string_view(buf_).substr(pos_);  // a last line without '\n'
      pos_ = scan_ = buf_.size();
      break;
    }
    // Drop what was consumed, then append one chunk.
    buf_.erase(0, pos_);
    scan_ -= pos_;
    pos_ = 0;
    const std::size_t old = buf_.size();
    buf_.resize(old + opts_.chunk_bytes);
    in_.read(buf_.data() + old, static_cast<std::streamsize>(opts_.chunk_bytes));
    buf_.resize(old + static_cast<std::size_t>(in_.gcount()));
    if (in_.gcount() == 0) eof_ = true;
  }
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  ++line_;
  return true;
}

Status CsvReader::split(std::string_view line) {
  fields_.clear();
  const char d = opts_.delimiter;
  if (line.find('"') == std::string_view::npos) {
    std::size_t start = 0;
    while (true) {
      const std::size_t end = line.find(d, start);
      fields_.push_back(line.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
      if (end == std::string_view::npos) return Status::ok();
      start = end + 1;
    }
  }
  // Quoted fields: unescape into unquoted_, then view it.
  unquoted_.clear();
  spans_.clear();
  std::size_t i = 0;
  while (true) {
    const std::size_t begin = unquoted_.size();
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i < line.size() && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            unquoted_ += '"';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        unquoted_ += line[i++];
      }
      if (!closed) return invalid_input(fmt::format("line {}: unterminated quoted field", line_));
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      if (i < line.size() && line[i] != d) {
        return invalid_input(fmt::format("line {}: text after a closing quote in field {}", line_, spans_.size() + 1));
      }
    } else {
      while (i < line.size() && line[i] != d) unquoted_ += line[i++];
    }
    spans_.emplace_back(begin, unquoted_.size() - begin);
    if (i >= line.size()) break;
    ++i;  // the delimiter
  }
  for (const auto& [off, len] : spans_) fields_.push_back(std::string_view(unquoted_).substr(off, len));
  return Status::ok();
}

Status CsvReader::read_header() {
  std::string_view line;
  Status error;
  if (!read_line(line, error)) return error.is_ok() ? invalid_input("line 1: empty input, expected a header row") : error;
  if (line.size() >= 3 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);  // UTF-8 BOM
  if (is_blank(line)) return invalid_input("line 1: empty header row");
  if (Status s = split(line); !s) return s;
  columns_.reserve(fields_.size());
  for (const std::string_view f : fields_) columns_.emplace_back(trim(f));
  return Status::ok();
}

std::optional<std::size_t> CsvReader::find_column(std::string_view name) const noexcept {
  for (std::size_t j = 0; j < columns_.size(); ++j) {
    if (columns_[j] == name) return j;
  }
  return std::nullopt;
}

CsvReader::Row CsvReader::next(std::span<double> values) {
  std::string_view line;
  Status error;
  do {
    if (!read_line(line, error)) {
      if (!error.is_ok()) return {Row::Kind::kError, line_ + 1, std::move(error)};
      return {Row::Kind::kEnd, line_, {}};
    }
  } while (columns_.size() > 1 && is_blank(line));
  if (Status s = split(line); !s) return {Row::Kind::kError, line_, std::move(s)};
  if (fields_.size() != columns_.size()) {
    return {Row::Kind::kError, line_,
            invalid_input(fmt::format("line {}: {} fields, expected {} (the header's columns)", line_, fields_.size(),
                                      columns_.size()))};
  }
  if (values.size() < columns_.size()) {
    return {Row::Kind::kError, line_,
            invalid_input(fmt::format("line {}: output span holds {} values for {} columns", line_, values.size(),
                                      columns_.size()))};
  }
  for (std::size_t j = 0; j < fields_.size(); ++j) {
    if (!parse_csv_double(fields_[j], values[j])) {
      if (text_field_) {
        Result<double> v = text_field_(j, trim(fields_[j]));
        if (v.ok()) {
          values[j] = *v;
          continue;
        }
        return {Row::Kind::kError, line_,
                invalid_input(fmt::format("line {}, column '{}': {}", line_, columns_[j], v.status().message()))};
      }
      return {Row::Kind::kError, line_,
              invalid_input(fmt::format("line {}, column '{}': '{}' is not a number", line_, columns_[j],
                                        shown(fields_[j])))};
    }
  }
  return {Row::Kind::kValues, line_, {}};
}

}  // namespace keel::cli
