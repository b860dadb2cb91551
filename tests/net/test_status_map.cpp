#include <keel/net/status_map.hpp>

#include <catch2/catch.hpp>

using keel::StatusCode;
using keel::net::GrpcCode;

TEST_CASE("every StatusCode maps to one HTTP status and gRPC code", "[net][status]") {
  CHECK(keel::net::http_status(StatusCode::kOk) == 200);
  CHECK(keel::net::http_status(StatusCode::kInvalidInput) == 400);
  CHECK(keel::net::http_status(StatusCode::kNotFound) == 404);
  CHECK(keel::net::http_status(StatusCode::kDeadlineExceeded) == 504);
  CHECK(keel::net::http_status(StatusCode::kOverloaded) == 503);
  CHECK(keel::net::mapping(StatusCode::kOverloaded).retry_after);
  CHECK(keel::net::grpc_code(StatusCode::kOverloaded) == GrpcCode::kResourceExhausted);
  CHECK(keel::net::grpc_code(StatusCode::kDeadlineExceeded) == GrpcCode::kDeadlineExceeded);
  CHECK(keel::net::grpc_code(StatusCode::kInvalidInput) == GrpcCode::kInvalidArgument);
  for (int c = 0; c <= static_cast<int>(StatusCode::kInternal); ++c) {
    const auto code = static_cast<StatusCode>(c);
    CHECK(keel::net::mapping(code).code == code);
    CHECK(keel::net::http_reason(keel::net::http_status(code)) != "Unknown");
  }
}

TEST_CASE("idempotency conflicts: another payload is 422, a request still in flight is 409", "[net][status]") {
  const keel::Status mismatch = keel::conflict("request id 'a': reused with a different payload");
  const keel::Status in_flight(StatusCode::kConflict, "request id 'a': still in flight", /*retryable=*/true);
  CHECK(keel::net::http_status(mismatch) == 422);
  CHECK_FALSE(keel::net::mapping(mismatch).retry_after);
  CHECK(keel::net::http_status(in_flight) == 409);
  CHECK(keel::net::mapping(in_flight).retry_after);
  CHECK(keel::net::grpc_code(StatusCode::kConflict) == GrpcCode::kAborted);
  CHECK(keel::net::from_http_status(422) == StatusCode::kConflict);
  CHECK(keel::net::from_http_status(409) == StatusCode::kConflict);
  CHECK(keel::net::http_status(keel::unavailable("x")) == 503);  // other codes: as by code
}

TEST_CASE("a peer's answer maps back to a code that keeps shedding apart from failure",
          "[net][status]") {
  CHECK(keel::net::from_http_status(200) == StatusCode::kOk);
  CHECK(keel::net::from_http_status(503) == StatusCode::kOverloaded);
  CHECK(keel::net::from_http_status(429) == StatusCode::kOverloaded);
  CHECK(keel::net::from_http_status(502) == StatusCode::kUnavailable);
  CHECK(keel::net::from_http_status(400) == StatusCode::kInvalidInput);
  CHECK(keel::net::from_http_status(504) == StatusCode::kDeadlineExceeded);
  CHECK(keel::net::from_grpc_code(GrpcCode::kResourceExhausted) == StatusCode::kOverloaded);
  CHECK(keel::net::from_grpc_code(GrpcCode::kUnavailable) == StatusCode::kUnavailable);
  // A code Keel sends round-trips to itself, except those with no peer meaning.
  for (auto code : {StatusCode::kOk, StatusCode::kInvalidInput, StatusCode::kDeadlineExceeded,
                    StatusCode::kOverloaded, StatusCode::kNotFound, StatusCode::kConflict}) {
    CHECK(keel::net::from_grpc_code(keel::net::grpc_code(code)) == code);
  }
}

TEST_CASE("authentication failures have their own HTTP status and gRPC code", "[net][status]") {
  using keel::net::GrpcCode;
  using keel::net::HttpLimit;
  CHECK(keel::net::http_status(HttpLimit::kUnauthorized) == 401);
  CHECK(keel::net::grpc_code(HttpLimit::kUnauthorized) == GrpcCode::kUnauthenticated);
  CHECK(keel::net::http_status(HttpLimit::kForbidden) == 403);
  CHECK(keel::net::grpc_code(HttpLimit::kForbidden) == GrpcCode::kPermissionDenied);
  CHECK(keel::net::grpc_code(HttpLimit::kBodyTooLarge) == GrpcCode::kResourceExhausted);
  CHECK(keel::net::http_reason(401) == "Unauthorized");
}
