#include <keel/net/status_map.hpp>

#include <array>

namespace keel::net {
namespace {

// Order follows StatusCode's values; a static_assert below keeps it so.
constexpr std::array<StatusMapping, 10> kTable{{
    {StatusCode::kOk, 200, GrpcCode::kOk, false},
    {StatusCode::kInvalidInput, 400, GrpcCode::kInvalidArgument, false},
    // Every stage of the chain failed on the model itself: the server could
    // not answer. (A degraded answer from a fallback is a 200.)
    {StatusCode::kModelError, 500, GrpcCode::kInternal, false},
    {StatusCode::kDeadlineExceeded, 504, GrpcCode::kDeadlineExceeded, false},
    {StatusCode::kUnavailable, 503, GrpcCode::kUnavailable, true},
    // Shed by admission (the issue: 503 + Retry-After, gRPC RESOURCE_EXHAUSTED).
    {StatusCode::kOverloaded, 503, GrpcCode::kResourceExhausted, true},
    {StatusCode::kNotFound, 404, GrpcCode::kNotFound, false},
    // An idempotency key reused with another payload (the IETF draft's 422).
    {StatusCode::kConflict, 422, GrpcCode::kAborted, false},
    // 499 is nginx's "client closed request": only ever logged, since the
    // client is gone.
    {StatusCode::kCancelled, 499, GrpcCode::kCancelled, false},
    {StatusCode::kInternal, 500, GrpcCode::kInternal, false},
}};

constexpr bool table_in_order() {
  for (std::size_t i = 0; i < kTable.size(); ++i)
    if (static_cast<std::size_t>(kTable[i].code) != i) return false;
  return true;
}
static_assert(table_in_order(), "kTable rows must follow StatusCode's order");
static_assert(static_cast<std::size_t>(StatusCode::kInternal) + 1 == kTable.size(),
              "every StatusCode needs a row");

// The first request of an idempotency key is still in flight: retry later.
constexpr StatusMapping kInFlightConflict{StatusCode::kConflict, 409, GrpcCode::kAborted, true};

}  // namespace

const StatusMapping& mapping(StatusCode code) noexcept {
  const auto i = static_cast<std::size_t>(code);
  return i < kTable.size() ? kTable[i] : kTable.back();
}

int http_status(HttpLimit limit) noexcept {
  switch (limit) {
    case HttpLimit::kBodyTooLarge: return 413;
    case HttpLimit::kHeaderTooLarge: return 431;
    case HttpLimit::kHeaderTimeout:
    case HttpLimit::kBodyTimeout: return 408;
    case HttpLimit::kMethodNotAllowed: return 405;
    case HttpLimit::kUnauthorized: return 401;
    case HttpLimit::kForbidden: return 403;
  }
  return 400;
}

GrpcCode grpc_code(HttpLimit limit) noexcept {
  switch (limit) {
    case HttpLimit::kBodyTooLarge:
    case HttpLimit::kHeaderTooLarge: return GrpcCode::kResourceExhausted;
    case HttpLimit::kHeaderTimeout:
    case HttpLimit::kBodyTimeout: return GrpcCode::kDeadlineExceeded;
    case HttpLimit::kMethodNotAllowed: return GrpcCode::kUnimplemented;
    case HttpLimit::kUnauthorized: return GrpcCode::kUnauthenticated;
    case HttpLimit::kForbidden: return GrpcCode::kPermissionDenied;
  }
  return GrpcCode::kInvalidArgument;
}

const StatusMapping& mapping(const Status& status) noexcept {
  if (status.code() == StatusCode::kConflict && status.retryable()) return kInFlightConflict;
  return mapping(status.code());
}

StatusCode from_http_status(int http) noexcept {
  if (http >= 200 && http < 300) return StatusCode::kOk;
  switch (http) {
    case 404: return StatusCode::kNotFound;
    case 408: return StatusCode::kDeadlineExceeded;
    case 409: return StatusCode::kConflict;
    case 422: return StatusCode::kConflict;
    case 429: return StatusCode::kOverloaded;
    case 499: return StatusCode::kCancelled;
    case 503: return StatusCode::kOverloaded;
    case 504: return StatusCode::kDeadlineExceeded;
    default: break;
  }
  if (http >= 400 && http < 500) return StatusCode::kInvalidInput;
  return StatusCode::kUnavailable;
}

StatusCode from_grpc_code(GrpcCode code) noexcept {
  switch (code) {
    case GrpcCode::kOk: return StatusCode::kOk;
    case GrpcCode::kCancelled: return StatusCode::kCancelled;
    case GrpcCode::kInvalidArgument:
    case GrpcCode::kOutOfRange:
    case GrpcCode::kFailedPrecondition: return StatusCode::kInvalidInput;
    case GrpcCode::kDeadlineExceeded: return StatusCode::kDeadlineExceeded;
    case GrpcCode::kNotFound: return StatusCode::kNotFound;
    case GrpcCode::kAlreadyExists:
    case GrpcCode::kAborted: return StatusCode::kConflict;
    case GrpcCode::kResourceExhausted: return StatusCode::kOverloaded;
    case GrpcCode::kInternal:
    case GrpcCode::kDataLoss: return StatusCode::kModelError;
    case GrpcCode::kPermissionDenied:
    case GrpcCode::kUnauthenticated:
    case GrpcCode::kUnimplemented: return StatusCode::kInvalidInput;
    case GrpcCode::kUnknown:
    case GrpcCode::kUnavailable: return StatusCode::kUnavailable;
  }
  return StatusCode::kUnavailable;
}

std::string_view http_reason(int http) noexcept {
  switch (http) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace keel::net
