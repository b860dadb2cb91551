// libFuzzer: the CLI's CSV reader (src/cli/csv.cpp) on arbitrary bytes.
// The first byte picks the delimiter and a chunk size; the rest is the
// file. The reader must end within one row per input line, every bad row
// must carry a message, and the rows must not depend on how the input was
// chunked: the same file read 1..64 bytes at a time and 64 KiB at a time
// gives the same header, row kinds, line numbers, values and errors.
#include "cli/csv.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Trace {
  bool opened = false;
  std::string error;  // open() error, or empty
  std::vector<std::string> columns;
  std::vector<std::string> rows;  // one entry per next(): kind, line, values or message
};

Trace read_all(const std::string& file, char delimiter, std::size_t chunk) {
  Trace t;
  std::istringstream in(file);
  keel::cli::CsvReader::Options o;
  o.delimiter = delimiter;
  o.chunk_bytes = chunk;
  o.max_line_bytes = 4096;
  auto r = keel::cli::CsvReader::from_stream(in, o);
  if (!r.ok()) {
    t.error = std::string(r.status().message());
    if (t.error.empty()) std::abort();
    return t;
  }
  t.opened = true;
  keel::cli::CsvReader& reader = **r;
  t.columns = reader.columns();
  std::vector<double> values(t.columns.size());
  const std::size_t max_rows = static_cast<std::size_t>(std::count(file.begin(), file.end(), '\n')) + 2;
  std::size_t last_line = 0;
  for (std::size_t i = 0;; ++i) {
    if (i > max_rows) std::abort();  // more rows than lines: the reader does not advance
    const auto row = reader.next(values);
    if (row.kind == keel::cli::CsvReader::Row::Kind::kEnd) break;
    if (row.line <= last_line) std::abort();  // lines strictly increase
    last_line = row.line;
    std::string s = std::to_string(row.line);
    if (row.kind == keel::cli::CsvReader::Row::Kind::kError) {
      if (row.error.message().empty()) std::abort();
      s += " error " + std::string(row.error.message());
    } else {
      for (const double v : values) {
        std::uint64_t bits = 0;
        const double canon = std::isnan(v) ? std::nan("") : v;
        std::memcpy(&bits, &canon, sizeof bits);
        s += ' ' + std::to_string(bits);
      }
    }
    t.rows.push_back(std::move(s));
  }
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static constexpr char kDelims[] = {',', ';', '\t', '|'};
  const char delimiter = kDelims[data[0] & 3];
  const std::size_t chunk = 1 + (data[0] >> 2);  // 1..64
  const std::string file(reinterpret_cast<const char*>(data + 1), size - 1);
  const Trace small = read_all(file, delimiter, chunk);
  const Trace big = read_all(file, delimiter, std::size_t{1} << 16);
  if (small.opened != big.opened || small.error != big.error || small.columns != big.columns ||
      small.rows != big.rows) {
    std::abort();  // chunking changed what was read
  }
  return 0;
}
