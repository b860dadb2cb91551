#pragma once
// Node: a JSON value and the path that leads to it, for config readers
// (engine.json in src/engine/config.cpp, a remote model's object in
// src/net/remote/remote_config.cpp): every typed read names its JSON path
// in the keel::Error (kInvalidInput) it throws. Internal (src/ only); it
// pulls in nlohmann/json, so keep it out of public headers.

#include <keel/core/clock.hpp>
#include <keel/core/status.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel::detail {

// A JSON value and the path that leads to it.
class Node {
 public:
  Node(const nlohmann::json& j, std::string path) : j_(&j), path_(std::move(path)) {}

  [[noreturn]] void fail(std::string_view what) const {
    throw Error(invalid_input(fmt::format("{}: {}", path_.empty() ? "config" : path_, what)));
  }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] const nlohmann::json& raw() const noexcept { return *j_; }

  [[nodiscard]] std::string child_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
  }
  [[nodiscard]] std::optional<Node> get(std::string_view key) const {
    if (!j_->is_object()) fail(fmt::format("expected an object, got {}", j_->type_name()));
    auto it = j_->find(key);
    if (it == j_->end() || it->is_null()) return std::nullopt;
    return Node(*it, child_path(key));
  }
  [[nodiscard]] Node at(std::string_view key) const {
    if (auto n = get(key)) return *n;
    Node(*j_, child_path(key)).fail("is required");
  }
  [[nodiscard]] std::vector<Node> items() const {
    if (!j_->is_array()) fail(fmt::format("expected an array, got {}", j_->type_name()));
    std::vector<Node> out;
    for (std::size_t i = 0; i < j_->size(); ++i) out.emplace_back((*j_)[i], fmt::format("{}[{}]", path_, i));
    return out;
  }
  // Refuses keys outside `known` (typos would otherwise be silently ignored).
  void keys(std::initializer_list<std::string_view> known) const { keys(std::span<const std::string_view>(known)); }
  void keys(std::span<const std::string_view> known) const {
    if (!j_->is_object()) fail(fmt::format("expected an object, got {}", j_->type_name()));
    for (auto it = j_->begin(); it != j_->end(); ++it) {
      bool ok = false;
      for (std::string_view k : known) ok = ok || it.key() == k;
      if (!ok) {
        std::string list;
        for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
        Node(*it, child_path(it.key())).fail(fmt::format("unknown key (expected one of: {})", list));
      }
    }
  }

  [[nodiscard]] double number() const {
    if (!j_->is_number()) fail(fmt::format("expected a number, got {}", j_->dump()));
    return j_->get<double>();
  }
  // lo/hi inclusive unless open_lo/open_hi.
  [[nodiscard]] double number(double lo, double hi, bool open_lo = false, bool open_hi = false) const {
    const double v = number();
    const bool below = open_lo ? !(v > lo) : !(v >= lo);
    const bool above = open_hi ? !(v < hi) : !(v <= hi);
    if (below || above) {
      fail(fmt::format("must be in {}{}, {}{}, got {}", open_lo ? '(' : '[', lo,
                       hi == std::numeric_limits<double>::max() ? std::string("inf") : fmt::format("{}", hi),
                       open_hi ? ')' : ']', j_->dump()));
    }
    return v;
  }
  [[nodiscard]] std::uint64_t uint(std::uint64_t lo, std::uint64_t hi) const {
    if (!j_->is_number_integer() || (j_->is_number_integer() && j_->get<std::int64_t>() < 0)) {
      fail(fmt::format("expected a non-negative integer, got {}", j_->dump()));
    }
    const auto v = j_->get<std::uint64_t>();
    if (v < lo || v > hi) fail(fmt::format("must be in [{}, {}], got {}", lo, hi, v));
    return v;
  }
  [[nodiscard]] Duration ms(bool allow_zero = true) const {
    const double v = number(0.0, 1e12, !allow_zero);
    return std::chrono::duration_cast<Duration>(std::chrono::duration<double, std::milli>(v));
  }
  [[nodiscard]] std::string str() const {
    if (!j_->is_string()) fail(fmt::format("expected a string, got {}", j_->dump()));
    return j_->get<std::string>();
  }
  [[nodiscard]] bool boolean() const {
    if (!j_->is_boolean()) fail(fmt::format("expected true or false, got {}", j_->dump()));
    return j_->get<bool>();
  }
  [[nodiscard]] std::vector<double> numbers() const {
    std::vector<double> out;
    for (const Node& n : items()) out.push_back(n.number());
    return out;
  }
  template <class E>
  [[nodiscard]] E choice(std::initializer_list<std::pair<std::string_view, E>> options) const {
    const std::string s = str();
    std::string list;
    for (const auto& [name, value] : options) {
      if (s == name) return value;
      list += (list.empty() ? "" : ", ") + std::string(name);
    }
    fail(fmt::format("'{}' is not one of: {}", s, list));
  }

 private:
  const nlohmann::json* j_;
  std::string path_;
};

}  // namespace keel::detail
