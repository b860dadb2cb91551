#include <keel/core/content_id.hpp>

#include <fmt/format.h>

namespace keel {

std::string ModelContentId::hex() const { return empty() ? std::string() : fmt::format("{:016x}{:016x}", hi, lo); }

}  // namespace keel
