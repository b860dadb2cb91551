#include <keel/core/result.hpp>
#include <keel/core/status.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <set>
#include <sstream>
#include <string>

using namespace keel;

TEST_CASE("Status: ok is the default and carries no message", "[core][status]") {
  Status s;
  CHECK(s.is_ok());
  CHECK(static_cast<bool>(s));
  CHECK(s.code() == StatusCode::kOk);
  CHECK(s.message().empty());
  CHECK(s.to_string() == "ok");
  CHECK_FALSE(s.retryable());
}

TEST_CASE("Status: codes say whether a retry can help", "[core][status]") {
  CHECK(deadline_exceeded("x").retryable());
  CHECK(unavailable("x").retryable());
  CHECK(overloaded("x").retryable());
  CHECK_FALSE(invalid_input("x").retryable());
  CHECK_FALSE(model_error("x").retryable());
  CHECK_FALSE(internal_error("x").retryable());
  CHECK_FALSE(not_found("x").retryable());
  CHECK_FALSE(conflict("x").retryable());
  CHECK_FALSE(cancelled("x").retryable());
  // An explicit override wins (a remote model's transient error).
  Status s(StatusCode::kModelError, "replica 2 reset", true);
  CHECK(s.retryable());
}

TEST_CASE("Status: message names what failed, context prefixes it", "[core][status]") {
  Status s = invalid_input("row 3: feature 'age' is NaN");
  CHECK_FALSE(s.is_ok());
  CHECK(s.to_string() == "invalid_input: row 3: feature 'age' is NaN");
  s.with_context("chain[1]");
  CHECK(s.message() == "chain[1]: row 3: feature 'age' is NaN");
  CHECK(s.code() == StatusCode::kInvalidInput);
  std::ostringstream os;
  os << s;
  CHECK(os.str() == s.to_string());

  Status ok;
  ok.with_context("ignored");
  CHECK(ok.is_ok());
  CHECK(ok.message().empty());
}

TEST_CASE("Status: every code has a distinct stable name", "[core][status]") {
  std::set<std::string_view> names;
  for (int c = 0; c <= static_cast<int>(StatusCode::kInternal); ++c) {
    names.insert(to_string(static_cast<StatusCode>(c)));
  }
  CHECK(names.size() == static_cast<std::size_t>(StatusCode::kInternal) + 1);
  CHECK(to_string(StatusCode::kDeadlineExceeded) == "deadline_exceeded");
}

TEST_CASE("Error carries its Status", "[core][status]") {
  try {
    throw Error(StatusCode::kModelError, "tree 3 node 7: child 99 out of range");
  } catch (const Error& e) {
    CHECK(e.status().code() == StatusCode::kModelError);
    CHECK(std::string(e.what()) == "model_error: tree 3 node 7: child 99 out of range");
  }
}

TEST_CASE("Result: holds a value or an error", "[core][result]") {
  Result<int> good = 42;
  REQUIRE(good.ok());
  CHECK(*good == 42);
  CHECK(good.value_or(7) == 42);
  CHECK(good.status().is_ok());
  CHECK(good.code() == StatusCode::kOk);

  Result<int> bad = overloaded("bulkhead 'primary' full");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.code() == StatusCode::kOverloaded);
  CHECK(bad.status().retryable());
  CHECK(bad.value_or(7) == 7);
  CHECK_THROWS_AS(bad.value(), BadResultAccess);
}

TEST_CASE("Result: an ok Status without a value becomes an internal error", "[core][result]") {
  Result<std::string> r = Status::ok();
  REQUIRE_FALSE(r.ok());
  CHECK(r.code() == StatusCode::kInternal);
}

TEST_CASE("Result: move-only values and arrow access", "[core][result]") {
  Result<std::unique_ptr<std::string>> r = std::make_unique<std::string>("hi");
  REQUIRE(r.ok());
  CHECK(**r == "hi");
  CHECK((*r)->size() == 2);
  std::unique_ptr<std::string> taken = std::move(r).value();
  CHECK(*taken == "hi");

  Result<std::string> s(std::in_place, 3, 'x');
  CHECK(s->size() == 3);
}
