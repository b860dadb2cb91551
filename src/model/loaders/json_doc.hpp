#pragma once
// Parsing untrusted JSON and UBJSON model files into nlohmann::json, and
// path-naming accessors for reading them. Load-time only: failures throw
// keel::Error (kModelError) whose message names the byte offset or the JSON
// path; the loaders turn that into a Status at their boundary.
// Stateless functions; thread-safe.

#include <keel/core/status.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace keel::detail {

using Json = nlohmann::json;

// Nesting deeper than this is rejected (real model files nest < 10 levels).
inline constexpr std::size_t kMaxJsonDepth = 64;

[[noreturn]] void throw_model_error(std::string message);

// JSON text as XGBoost writes it: bare NaN / Infinity / -Infinity tokens
// (outside strings) are accepted and read back as non-finite numbers by
// number accessors below. Trailing non-whitespace is an error.
Json parse_json_text(std::string_view text);

// UBJSON (draft 12 as XGBoost writes it: big-endian, typed/counted
// containers with int64 counts). Every declared count is checked against
// the bytes left before anything is allocated; typed containers of
// zero-byte elements (Z, N, T, F) are rejected; trailing bytes are an error.
Json parse_ubjson(std::span<const std::uint8_t> bytes);

// Accessors. `path` names the value being read (e.g.
// "learner.gradient_booster.model.trees[3]"), and errors quote it.
const Json& field(const Json& obj, std::string_view key, std::string_view path);
const Json* find_field(const Json& obj, std::string_view key);
std::string child_path(std::string_view path, std::string_view key);
std::string index_path(std::string_view path, std::size_t i);

const std::string& as_string(const Json& v, std::string_view path);
const Json::array_t& as_array(const Json& v, std::string_view path);

// A number, or a string holding one (XGBoost stores parameters as strings
// such as "5E-1"), or a non-finite token (NaN, Infinity, -Infinity).
double as_double(const Json& v, std::string_view path);
float as_float(const Json& v, std::string_view path);
// An integer in [lo, hi] (a number or a decimal string; booleans as 0/1).
std::int64_t as_int(const Json& v, std::string_view path, std::int64_t lo, std::int64_t hi);

// Numeric arrays, element errors naming path[i].
std::vector<double> as_double_array(const Json& v, std::string_view path);
std::vector<std::int64_t> as_int_array(const Json& v, std::string_view path, std::int64_t lo, std::int64_t hi);

// Parses a number from text: decimal or exponent form, or a non-finite
// spelling; the whole string must be consumed.
bool parse_double(std::string_view s, double& out) noexcept;
bool parse_float(std::string_view s, float& out) noexcept;

}  // namespace keel::detail
