#pragma once
// The bucket key of the profile's value sketch: a monotone map from float
// to 15 bits, from the float's bit pattern (sign, exponent and the top 6
// mantissa bits), so that every bucket spans 1/64 of an octave and its
// edges are exact floats. Integer keys make sketches merge exactly: the
// same values give the same counts whatever the order or chunking.
// Functions only; thread-safe.

#include <bit>
#include <cstdint>

namespace keel::detail {

inline constexpr std::uint32_t kSketchMantissaBits = 6;
inline constexpr std::uint32_t kSketchShift = 23 - kSketchMantissaBits;
inline constexpr std::uint32_t kSketchZeroKey = 1u << (31 - kSketchShift);  // first key of the non-negatives
inline constexpr std::uint32_t kSketchKeys = 2 * kSketchZeroKey;

// Key of a non-NaN float; -0.0 and +0.0 share a key; ±inf get the end keys.
inline std::uint32_t sketch_key(float v) noexcept {
  if (v == 0.0f) v = 0.0f;  // -0.0 is zero
  const auto bits = std::bit_cast<std::uint32_t>(v);
  const std::uint32_t mag = (bits & 0x7fffffffu) >> kSketchShift;
  return (bits >> 31) != 0 ? kSketchZeroKey - 1 - mag : kSketchZeroKey + mag;
}

// The magnitudes a key covers: [low, high) of |v|.
inline float sketch_low(std::uint32_t key) noexcept {
  const std::uint32_t mag = key >= kSketchZeroKey ? key - kSketchZeroKey : kSketchZeroKey - 1 - key;
  return std::bit_cast<float>(mag << kSketchShift);
}
inline float sketch_high(std::uint32_t key) noexcept {
  const std::uint32_t mag = key >= kSketchZeroKey ? key - kSketchZeroKey : kSketchZeroKey - 1 - key;
  return std::bit_cast<float>((mag + 1) << kSketchShift);
}

}  // namespace keel::detail
