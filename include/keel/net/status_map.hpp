#pragma once
// One table from Keel's StatusCode to the HTTP status and the gRPC code that
// `keel serve` answers with, and back from what a remote OIP server answered
// to the StatusCode a RemoteModel reports. Kept in one place so that REST,
// gRPC and the remote client never disagree. Thread-safe (pure functions).

#include <keel/core/status.hpp>

#include <cstdint>
#include <string_view>

namespace keel::net {

// The gRPC status codes (grpc/include/grpcpp/support/status_code_enum.h),
// restated so that code which does not speak gRPC need not include it.
enum class GrpcCode : std::uint8_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

struct StatusMapping {
  StatusCode code;
  int http;          // HTTP status a REST answer carries
  GrpcCode grpc;     // gRPC status a gRPC answer carries
  bool retry_after;  // REST answers carry a Retry-After header
};

// The mapping for a code. Every StatusCode has exactly one row.
[[nodiscard]] const StatusMapping& mapping(StatusCode code) noexcept;
[[nodiscard]] inline int http_status(StatusCode code) noexcept { return mapping(code).http; }
[[nodiscard]] inline GrpcCode grpc_code(StatusCode code) noexcept { return mapping(code).grpc; }
// The mapping for a Status. kConflict is split by retryability, after the
// IETF Idempotency-Key draft: an id reused with another payload (not
// retryable) is 422; an id whose first request is still in flight
// (retryable) is 409. Servers answer with this one.
[[nodiscard]] const StatusMapping& mapping(const Status& status) noexcept;
[[nodiscard]] inline int http_status(const Status& status) noexcept { return mapping(status).http; }
[[nodiscard]] inline GrpcCode grpc_code(const Status& status) noexcept { return mapping(status).grpc; }

// HTTP-level failures that have no StatusCode (the request never reached
// the scoring path), each with its own status.
enum class HttpLimit : std::uint8_t {
  kBodyTooLarge,      // 413
  kHeaderTooLarge,    // 431
  kHeaderTimeout,     // 408
  kBodyTimeout,       // 408
  kMethodNotAllowed,  // 405
  kUnauthorized,      // 401: bearer token missing or wrong (gRPC UNAUTHENTICATED)
  kForbidden,         // 403: endpoint disabled, e.g. repository without a token (PERMISSION_DENIED)
};
[[nodiscard]] int http_status(HttpLimit limit) noexcept;
[[nodiscard]] GrpcCode grpc_code(HttpLimit limit) noexcept;

// What a RemoteModel makes of a peer's answer. Codes a peer uses for its own
// overload (429, 503 with Retry-After; RESOURCE_EXHAUSTED) become kOverloaded,
// which the caller must not count as an endpoint failure; 5xx and transport
// errors become kUnavailable; 4xx (but 408/429) is the request's own fault.
[[nodiscard]] StatusCode from_http_status(int http) noexcept;
[[nodiscard]] StatusCode from_grpc_code(GrpcCode code) noexcept;

// Reason phrase for the status line ("Service Unavailable"); "Unknown" for a
// code Keel never sends.
[[nodiscard]] std::string_view http_reason(int http) noexcept;

}  // namespace keel::net
