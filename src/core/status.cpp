#include <keel/core/status.hpp>
#include <keel/version.hpp>

#include <fmt/format.h>

namespace keel {

std::string_view version() noexcept {
#define KEEL_STR2(x) #x
#define KEEL_STR(x) KEEL_STR2(x)
  return KEEL_STR(KEEL_VERSION_MAJOR) "." KEEL_STR(KEEL_VERSION_MINOR) "." KEEL_STR(KEEL_VERSION_PATCH);
#undef KEEL_STR
#undef KEEL_STR2
}

std::string_view to_string(StatusCode code) noexcept {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidInput: return "invalid_input";
    case StatusCode::kModelError: return "model_error";
    case StatusCode::kDeadlineExceeded: return "deadline_exceeded";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kOverloaded: return "overloaded";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kConflict: return "conflict";
    case StatusCode::kCancelled: return "cancelled";
    case StatusCode::kInternal: return "internal";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  return fmt::format("{}: {}", keel::to_string(code_), message_);
}

Status& Status::with_context(std::string_view context) {
  if (!is_ok()) message_ = fmt::format("{}: {}", context, message_);
  return *this;
}

std::ostream& operator<<(std::ostream& os, const Status& s) { return os << s.to_string(); }
std::ostream& operator<<(std::ostream& os, StatusCode c) { return os << to_string(c); }

}  // namespace keel
