// The CLI's streaming CSV reader. The CLI sources are not part of keel::keel,
// so the reader's translation unit is compiled into this test directly.
#include "cli/csv.cpp"  // NOLINT(bugprone-suspicious-include)

#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

using keel::cli::CsvReader;
using Kind = CsvReader::Row::Kind;

namespace {

std::unique_ptr<CsvReader> reader(std::istream& in, std::size_t chunk = 7) {
  CsvReader::Options o;
  o.chunk_bytes = chunk;  // tiny chunks: lines straddle chunk boundaries
  auto r = CsvReader::from_stream(in, o);
  REQUIRE(r.ok());
  return std::move(r).value();
}

}  // namespace

TEST_CASE("csv: values, missing, inf, nan, quotes, CRLF", "[csv]") {
  std::istringstream in(
      "a, \"b\" ,c\r\n"
      "1.5,,-0.0\r\n"
      "1e-40,inf,-inf\n"
      "nan,+2,\"3\"\n"
      "\n"
      "4,5,6");  // no final newline
  auto r = reader(in);
  REQUIRE(r->columns() == std::vector<std::string>{"a", "b", "c"});
  CHECK(r->find_column("b") == 1u);
  CHECK_FALSE(r->find_column("d").has_value());
  double v[3];
  auto row = r->next(v);
  REQUIRE(row.kind == Kind::kValues);
  CHECK(row.line == 2);
  CHECK(v[0] == 1.5);
  CHECK(std::isnan(v[1]));
  CHECK((v[2] == 0.0 && std::signbit(v[2])));
  row = r->next(v);
  REQUIRE(row.kind == Kind::kValues);
  CHECK(v[0] == 1e-40);
  CHECK(v[1] == INFINITY);
  CHECK(v[2] == -INFINITY);
  row = r->next(v);
  REQUIRE(row.kind == Kind::kValues);
  CHECK(std::isnan(v[0]));
  CHECK(v[1] == 2.0);
  CHECK(v[2] == 3.0);
  row = r->next(v);  // the blank line is skipped
  REQUIRE(row.kind == Kind::kValues);
  CHECK(row.line == 6);
  CHECK(v[2] == 6.0);
  CHECK(r->next(v).kind == Kind::kEnd);
  CHECK(r->next(v).kind == Kind::kEnd);
}

TEST_CASE("csv: doubles parse exactly, extremes as strtod does", "[csv]") {
  double d = 0;
  REQUIRE(keel::cli::parse_csv_double("0.1", d));
  CHECK(d == 0.1);
  REQUIRE(keel::cli::parse_csv_double("884.55000000000007", d));
  CHECK(d == 884.55000000000007);
  REQUIRE(keel::cli::parse_csv_double("1e400", d));
  CHECK(d == INFINITY);
  REQUIRE(keel::cli::parse_csv_double("-1e-400", d));
  CHECK(d == 0.0);
  REQUIRE(keel::cli::parse_csv_double("Infinity", d));
  CHECK(d == INFINITY);
  CHECK_FALSE(keel::cli::parse_csv_double("1.5x", d));
  CHECK_FALSE(keel::cli::parse_csv_double("--1", d));
  CHECK_FALSE(keel::cli::parse_csv_double("+-1", d));
  CHECK_FALSE(keel::cli::parse_csv_double("0x10", d));
  CHECK_FALSE(keel::cli::parse_csv_double("1 2", d));
}

TEST_CASE("csv: bad rows name line and column, and reading goes on", "[csv]") {
  std::istringstream in("x,y\n1,2\n1,abc\n1,2,3\n1\n\"4,5\n7,8\n");
  auto r = reader(in, 3);
  double v[2];
  CHECK(r->next(v).kind == Kind::kValues);
  auto row = r->next(v);
  REQUIRE(row.kind == Kind::kError);
  CHECK(row.line == 3);
  CHECK(row.error.code() == keel::StatusCode::kInvalidInput);
  CHECK(row.error.message() == "line 3, column 'y': 'abc' is not a number");
  row = r->next(v);
  REQUIRE(row.kind == Kind::kError);
  CHECK(row.error.message() == "line 4: 3 fields, expected 2 (the header's columns)");
  row = r->next(v);
  REQUIRE(row.kind == Kind::kError);
  CHECK(row.error.message() == "line 5: 1 fields, expected 2 (the header's columns)");
  row = r->next(v);
  REQUIRE(row.kind == Kind::kError);
  CHECK(row.error.message() == "line 6: unterminated quoted field");
  row = r->next(v);
  REQUIRE(row.kind == Kind::kValues);
  CHECK(row.line == 7);
  CHECK(v[0] == 7.0);
  CHECK(r->next(v).kind == Kind::kEnd);
}

TEST_CASE("csv: one column keeps blank lines as missing values", "[csv]") {
  std::istringstream in("x\n1\n\n3\n");
  auto r = reader(in);
  double v[1];
  REQUIRE(r->next(v).kind == Kind::kValues);
  REQUIRE(r->next(v).kind == Kind::kValues);
  CHECK(std::isnan(v[0]));
  REQUIRE(r->next(v).kind == Kind::kValues);
  CHECK(v[0] == 3.0);
  CHECK(r->next(v).kind == Kind::kEnd);
}

TEST_CASE("csv: header errors and line length limit", "[csv]") {
  std::istringstream empty("");
  auto e = CsvReader::from_stream(empty);
  REQUIRE_FALSE(e.ok());
  CHECK(e.status().message().find("line 1") != std::string::npos);
  std::istringstream blank("  \n1\n");
  CHECK_FALSE(CsvReader::from_stream(blank).ok());
  CHECK_FALSE(CsvReader::open("/nonexistent/file.csv").ok());

  CsvReader::Options o;
  o.chunk_bytes = 4;
  o.max_line_bytes = 16;
  std::istringstream longline("a,b\n1,2\n" + std::string(100, '1') + ",2\n3,4\n");
  auto r = CsvReader::from_stream(longline, o);
  REQUIRE(r.ok());
  double v[2];
  CHECK((*r)->next(v).kind == Kind::kValues);
  auto row = (*r)->next(v);
  REQUIRE(row.kind == Kind::kError);
  CHECK(row.error.message().find("line 3: longer than 16 bytes") != std::string::npos);
}

TEST_CASE("csv: streams many rows through small chunks", "[csv]") {
  std::string text = "a,b\n";
  for (int i = 0; i < 5000; ++i) text += std::to_string(i) + "," + std::to_string(i * 0.5) + "\n";
  std::istringstream in(text);
  auto r = reader(in, 13);
  double v[2];
  int n = 0;
  for (auto row = r->next(v); row.kind == Kind::kValues; row = r->next(v), ++n) {
    REQUIRE(v[0] == n);
    REQUIRE(v[1] == n * 0.5);
    REQUIRE(row.line == static_cast<std::size_t>(n) + 2);
  }
  CHECK(n == 5000);
}
