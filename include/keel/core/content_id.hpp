#pragma once
// ModelContentId: what a model computes, the same in every process. For a
// loaded model it is XXH3-128 of the model file's bytes and of the load
// options that change answers (keel::load_model sets it); two replicas that
// load the same file agree on it, so it can key a shared cache. Zero (empty)
// for a model built in memory: only ModelInfo::version then tells models
// apart, and only within one process. A value type.

#include <cstdint>
#include <string>

namespace keel {

struct ModelContentId {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  [[nodiscard]] bool empty() const noexcept { return hi == 0 && lo == 0; }
  [[nodiscard]] std::string hex() const;  // 32 lowercase hex digits; "" when empty
  friend bool operator==(const ModelContentId&, const ModelContentId&) = default;
};

}  // namespace keel
