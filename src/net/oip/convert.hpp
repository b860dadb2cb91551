#pragma once
// Element conversion shared by the REST codec (JSON and binary tensors) and
// the gRPC codec (typed and raw contents): every datatype Keel accepts
// becomes the float its models score, exactly or with an error naming the
// element ("inputs[0].data: row 3, feature 7: ..."). Thread-safe (pure).

#include <keel/core/status.hpp>
#include <keel/net/oip/infer.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>

namespace keel::net::oip {

// "inputs[i].data: row r, feature f" for flat element k of a `cols`-wide tensor.
[[nodiscard]] std::string element_field(std::size_t input, std::size_t k, std::size_t cols);

// An integer that a float holds exactly (every |v| <= 2^24 does; above,
// only those with enough trailing zero bits).
template <class I>
[[nodiscard]] bool float_exact(I v) {
  const auto f = static_cast<float>(v);
  if (!std::isfinite(f)) return false;
  if constexpr (std::is_signed_v<I>) {
    if (f >= 9223372036854775808.0f || f < -9223372036854775808.0f) return false;
  } else {
    if (f >= 18446744073709551616.0f) return false;
  }
  return static_cast<I>(f) == v;
}

// Checks a tensor's shape ([rows, features] or [features], no zero or
// negative dimension, at most 2^32 elements) into out.rows, cols and
// one_dimensional; errors name `field`.shape.
[[nodiscard]] Status set_shape(std::span<const std::int64_t> dims, const std::string& field, InferRequest& out);

// An integer element of integer `type` (range of the type, exact in FP32).
[[nodiscard]] Status convert_signed(std::int64_t v, DataType type, float& out, std::size_t input, std::size_t k,
                                    std::size_t cols);
[[nodiscard]] Status convert_unsigned(std::uint64_t v, DataType type, float& out, std::size_t input, std::size_t k,
                                      std::size_t cols);
// A double element of FP32/FP64: rounded to the nearest float; an overflow
// is an error, NaN a missing value.
[[nodiscard]] Status convert_double(double v, float& out, std::size_t input, std::size_t k, std::size_t cols);
// One little-endian binary element of `type` at p (element_size(type) bytes).
[[nodiscard]] Status convert_binary(const char* p, DataType type, float& out, std::size_t input, std::size_t k,
                                    std::size_t cols);

}  // namespace keel::net::oip
