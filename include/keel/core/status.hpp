#pragma once
// Status: the outcome of an operation on the request path, as a value.
// A code, a message naming what failed (field, row, byte offset, stage), and
// whether trying again could help. Cheap to copy when ok (no allocation).
// Not thread-safe to mutate; safe to read concurrently.

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace keel {

enum class StatusCode : std::uint8_t {
  kOk = 0,
  // The request itself is wrong (wrong row length, NaN where none is
  // allowed, unknown model name). Retrying the same request cannot help.
  kInvalidInput,
  // The model failed or produced an unusable answer (NaN/inf score, corrupt
  // file). Not retryable: the same model answers the same way again.
  kModelError,
  // The request's deadline or an attempt's timeout passed. Retryable while
  // the request's own deadline still leaves time.
  kDeadlineExceeded,
  // A dependency is not available right now (circuit open, replica down).
  // Retryable, ideally after a backoff or against another stage.
  kUnavailable,
  // Load was shed (bulkhead full, concurrency limit, queue full). Retryable
  // after a backoff.
  kOverloaded,
  // A named thing (model, request id, key) does not exist. Not retryable.
  kNotFound,
  // The request conflicts with state: e.g. an idempotency key reused with a
  // different payload. Not retryable.
  kConflict,
  // The caller or the engine cancelled the work. Not retryable.
  kCancelled,
  // A bug or broken invariant inside Keel or a plug-in. Not retryable.
  kInternal,
};

// Lower-case, stable name of a code ("invalid_input", ...), used in metrics
// labels and logs.
std::string_view to_string(StatusCode code) noexcept;

// Whether an error with this code may succeed if tried again.
constexpr bool is_retryable(StatusCode code) noexcept {
  return code == StatusCode::kDeadlineExceeded || code == StatusCode::kUnavailable ||
         code == StatusCode::kOverloaded;
}

class [[nodiscard]] Status {
 public:
  Status() noexcept = default;  // ok
  Status(StatusCode code, std::string message)
      : code_(code), retryable_(is_retryable(code)), message_(std::move(message)) {}
  // Overrides the code's default retryability (e.g. a remote model error
  // known to be transient).
  Status(StatusCode code, std::string message, bool retryable)
      : code_(code), retryable_(retryable), message_(std::move(message)) {}

  static Status ok() noexcept { return Status{}; }

  [[nodiscard]] bool is_ok() const noexcept { return code_ == StatusCode::kOk; }
  explicit operator bool() const noexcept { return is_ok(); }
  [[nodiscard]] StatusCode code() const noexcept { return code_; }
  [[nodiscard]] bool retryable() const noexcept { return retryable_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }

  // "deadline_exceeded: stage 'primary' attempt 2 timed out after 5ms"
  [[nodiscard]] std::string to_string() const;

  // Prefixes the message with context ("chain[1]: " + message), keeping the
  // code and retryability.
  Status& with_context(std::string_view context);

  friend bool operator==(const Status& a, const Status& b) noexcept {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  bool retryable_ = false;
  std::string message_;
};

std::ostream& operator<<(std::ostream& os, const Status& s);
std::ostream& operator<<(std::ostream& os, StatusCode c);

// Shorthands: keel::invalid_input("row 3: feature 'age' is NaN").
inline Status invalid_input(std::string msg) { return {StatusCode::kInvalidInput, std::move(msg)}; }
inline Status model_error(std::string msg) { return {StatusCode::kModelError, std::move(msg)}; }
inline Status deadline_exceeded(std::string msg) { return {StatusCode::kDeadlineExceeded, std::move(msg)}; }
inline Status unavailable(std::string msg) { return {StatusCode::kUnavailable, std::move(msg)}; }
inline Status overloaded(std::string msg) { return {StatusCode::kOverloaded, std::move(msg)}; }
inline Status not_found(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
inline Status conflict(std::string msg) { return {StatusCode::kConflict, std::move(msg)}; }
inline Status cancelled(std::string msg) { return {StatusCode::kCancelled, std::move(msg)}; }
inline Status internal_error(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }

// Thrown only at load and configuration time (bad model file, bad config),
// never across the scoring path. Carries the Status it stands for.
class Error : public std::exception {
 public:
  explicit Error(Status status) : status_(std::move(status)), what_(status_.to_string()) {}
  Error(StatusCode code, std::string message) : Error(Status(code, std::move(message))) {}
  [[nodiscard]] const Status& status() const noexcept { return status_; }
  [[nodiscard]] const char* what() const noexcept override { return what_.c_str(); }

 private:
  Status status_;
  std::string what_;
};

}  // namespace keel
