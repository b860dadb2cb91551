#pragma once
// Reads the fixtures' CSV files: a header row, then one row of float32
// values per line; an empty field is NaN; inf, -inf and -0 as written.
// Test-only; not thread-safe to share a Table while mutating it.

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace keel::test {

struct Table {
  std::vector<std::string> header;
  std::vector<float> values;  // row-major
  std::size_t rows = 0;
  [[nodiscard]] std::size_t cols() const { return header.size(); }
};

inline std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : line) {
    if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur.push_back(c);
    }
  }
  out.push_back(cur);
  return out;
}

inline float parse_field(const std::string& s, std::size_t row, std::size_t col) {
  if (s.empty()) return std::numeric_limits<float>::quiet_NaN();
  float v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) {
    throw std::runtime_error("bad CSV field '" + s + "' at row " + std::to_string(row) + " column " +
                             std::to_string(col));
  }
  return v;
}

// Tab is Table or Table64; parse(field, row, col) gives one value.
template <class Tab, class Parse>
Tab read_table(const std::string& path, Parse&& parse) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  Tab t;
  std::string line;
  if (!std::getline(in, line)) throw std::runtime_error("empty CSV " + path);
  t.header = split_csv_line(line);
  while (std::getline(in, line)) {
    if (line.empty() || line == "\r") continue;
    const auto fields = split_csv_line(line);
    if (fields.size() != t.cols()) {
      throw std::runtime_error(path + ": row " + std::to_string(t.rows) + " has " + std::to_string(fields.size()) +
                               " fields");
    }
    for (std::size_t c = 0; c < fields.size(); ++c) t.values.push_back(parse(fields[c], t.rows, c));
    ++t.rows;
  }
  return t;
}

inline Table read_csv(const std::string& path) { return read_table<Table>(path, parse_field); }

// The same read as float64 (strtod), for inputs written as doubles
// (LightGBM's fixtures compare in double).
struct Table64 {
  std::vector<std::string> header;
  std::vector<double> values;  // row-major
  std::size_t rows = 0;
  [[nodiscard]] std::size_t cols() const { return header.size(); }
};

inline Table64 read_csv64(const std::string& path) {
  return read_table<Table64>(path, [&](const std::string& f, std::size_t row, std::size_t col) {
    if (f.empty()) return std::numeric_limits<double>::quiet_NaN();
    char* end = nullptr;
    const double v = std::strtod(f.c_str(), &end);
    if (*end != '\0') {
      throw std::runtime_error(path + ": bad field '" + f + "' at row " + std::to_string(row) + " column " +
                               std::to_string(col));
    }
    return v;
  });
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Largest absolute and relative differences over a comparison, and whether
// every value was within tolerance (absolute OR relative).
struct DiffStats {
  double max_abs = 0;
  double max_rel = 0;
  std::size_t failures = 0;
  std::string first_failure;

  void add(double got, double want, double tol, const std::string& where) {
    if (std::isnan(got) || std::isnan(want)) {
      if (std::isnan(got) != std::isnan(want)) note(where, got, want);
      return;
    }
    if (std::isinf(got) || std::isinf(want)) {
      if (got != want) note(where, got, want);
      return;
    }
    const double abs = std::fabs(got - want);
    const double rel = want != 0 ? abs / std::fabs(want) : (abs == 0 ? 0 : abs);
    max_abs = std::max(max_abs, abs);
    max_rel = std::max(max_rel, rel);
    if (abs > tol && rel > tol) note(where, got, want);
  }
  void note(const std::string& where, double got, double want) {
    if (failures++ == 0) {
      std::ostringstream ss;
      ss.precision(9);
      ss << where << ": got " << got << " want " << want;
      first_failure = ss.str();
    }
  }
};

}  // namespace keel::test
