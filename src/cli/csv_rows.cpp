#include "cli/csv_rows.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <unistd.h>

namespace keel::cli {

namespace {
constexpr std::uint64_t kMaxReported = 20;  // skipped rows named on stderr; the rest are counted
}

Result<std::unique_ptr<CsvRowSource>> CsvRowSource::open(const std::string& path, bool skip_bad_rows,
                                                         std::string command) {
  std::unique_ptr<CsvRowSource> src(new CsvRowSource());
  src->path_ = path;
  src->command_ = std::move(command);
  src->skip_ = skip_bad_rows;
  Result<std::unique_ptr<CsvReader>> csv = [&]() -> Result<std::unique_ptr<CsvReader>> {
    if (path == "-") return CsvReader::open(path);
    src->file_ = std::make_unique<std::ifstream>(path, std::ios::binary);
    if (!src->file_->is_open()) return invalid_input(fmt::format("cannot open '{}'", path));
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (!ec) src->size_ = static_cast<double>(size);
    return CsvReader::from_stream(*src->file_);
  }();
  if (!csv) return Status(csv.status()).with_context(path);
  src->csv_ = std::move(*csv);
  src->line_.resize(src->csv_->columns().size());
  return src;
}

Result<std::vector<std::string>> CsvRowSource::select_all_but(const std::vector<std::string>& exclude) {
  for (const std::string& name : exclude) {
    if (!csv_->find_column(name)) return invalid_input(fmt::format("{}: no column '{}' to exclude", path_, name));
  }
  std::vector<std::string> names;
  column_of_.clear();
  for (std::size_t c = 0; c < columns().size(); ++c) {
    if (std::find(exclude.begin(), exclude.end(), columns()[c]) != exclude.end()) continue;
    names.push_back(columns()[c]);
    column_of_.push_back(c);
  }
  return names;
}

Status CsvRowSource::select_names(const std::vector<std::string>& names) {
  column_of_.clear();
  for (std::size_t j = 0; j < names.size(); ++j) {
    const auto c = csv_->find_column(names[j]);
    if (!c) return invalid_input(fmt::format("{}: no column '{}' (feature {})", path_, names[j], j));
    column_of_.push_back(*c);
  }
  return Status::ok();
}

Result<std::size_t> CsvRowSource::read(std::span<float> out, std::size_t max_rows) {
  const std::size_t n = column_of_.size();
  std::size_t k = 0;
  while (k < max_rows && (k + 1) * n <= out.size()) {
    const CsvReader::Row row = csv_->next(line_);
    if (row.kind == CsvReader::Row::Kind::kEnd) break;
    ++rows_;
    if (row.kind == CsvReader::Row::Kind::kError) {
      const std::string msg = fmt::format("{}: {}", path_, row.error.message());
      if (!skip_) return invalid_input(msg);
      if (++skipped_ <= kMaxReported) fmt::print(stderr, "keel {}: skipped {}\n", command_, msg);
      continue;
    }
    float* dst = out.data() + k * n;
    for (std::size_t j = 0; j < n; ++j) dst[j] = static_cast<float>(line_[column_of_[j]]);
    ++k;
  }
  return k;
}

double CsvRowSource::progress() const noexcept {
  if (file_ == nullptr || size_ <= 0) return -1.0;
  if (file_->eof()) return 1.0;
  const auto pos = file_->tellg();
  return pos < 0 ? -1.0 : std::min(1.0, static_cast<double>(pos) / size_);
}

ProgressBar::ProgressBar(std::string label) : label_(std::move(label)), tty_(::isatty(STDERR_FILENO) == 1) {}

ProgressBar::~ProgressBar() {
  if (drawn_) std::fputc('\n', stderr);
}

void ProgressBar::update(std::uint64_t rows, double fraction) {
  if (!tty_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(100) && fraction < 1.0) return;
  last_ = now;
  drawn_ = true;
  if (fraction < 0) {
    fmt::print(stderr, "\r{} {} rows", label_, rows);
  } else {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth);
    fmt::print(stderr, "\r{} [{:#<{}}{: <{}}] {:3.0f}%  {} rows", label_, "", filled, "", kWidth - filled,
               fraction * 100.0, rows);
  }
  std::fflush(stderr);
}

}  // namespace keel::cli
