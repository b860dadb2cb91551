#pragma once
// The single source of Keel's version; CMakeLists.txt reads these lines.
#define KEEL_VERSION_MAJOR 0
#define KEEL_VERSION_MINOR 1
#define KEEL_VERSION_PATCH 0

#include <string_view>

namespace keel {

// "MAJOR.MINOR.PATCH" of the compiled library (may differ from the headers'
// KEEL_VERSION_* if a host mixes versions; compare them to detect that).
std::string_view version() noexcept;

}  // namespace keel
