#include "net/oip/convert.hpp"

#include <cstring>
#include <limits>

namespace keel::net::oip {
namespace {

template <class T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

std::string element_field(std::size_t input, std::size_t k, std::size_t cols) {
  return "inputs[" + std::to_string(input) + "].data: row " + std::to_string(k / cols) + ", feature " +
         std::to_string(k % cols);
}

Status set_shape(std::span<const std::int64_t> dims, const std::string& field, InferRequest& out) {
  for (std::size_t n = 0; n < dims.size(); ++n)
    if (dims[n] < 0)
      return invalid_input(field + ".shape[" + std::to_string(n) + "]: negative (" + std::to_string(dims[n]) + ")");
  if (dims.size() != 1 && dims.size() != 2)
    return invalid_input(field + ".shape: expected [rows, features] or [features], got " +
                         std::to_string(dims.size()) + " dimensions");
  out.one_dimensional = dims.size() == 1;
  out.rows = dims.size() == 1 ? 1 : static_cast<std::size_t>(dims[0]);
  out.cols = static_cast<std::size_t>(dims.back());
  if (out.rows == 0 || out.cols == 0) return invalid_input(field + ".shape: has a zero dimension");
  // Bound the element count before multiplying into an allocation.
  constexpr std::uint64_t kMaxElements = std::uint64_t{1} << 32;
  if (out.cols > kMaxElements || out.rows > kMaxElements / out.cols)
    return invalid_input(field + ".shape: more than 2^32 elements");
  return {};
}

Status convert_signed(std::int64_t i, DataType type, float& out, std::size_t input, std::size_t k, std::size_t cols) {
  const auto bad = [&](std::string why) { return invalid_input(element_field(input, k, cols) + ": " + why); };
  if (type == DataType::kBool) {
    if (i != 0 && i != 1) return bad("BOOL value " + std::to_string(i) + " is neither 0 nor 1");
    out = static_cast<float>(i);
    return {};
  }
  const std::int64_t lim = type == DataType::kInt8 ? 0x7F : type == DataType::kInt16 ? 0x7FFF
                           : type == DataType::kInt32 ? 0x7FFFFFFF : std::numeric_limits<std::int64_t>::max();
  if (i > lim || i < -lim - 1) return bad(std::to_string(i) + " out of range for " + std::string(to_string(type)));
  if (!float_exact(i)) return bad(std::to_string(i) + " has no exact FP32 value");
  out = static_cast<float>(i);
  return {};
}

Status convert_unsigned(std::uint64_t u, DataType type, float& out, std::size_t input, std::size_t k,
                        std::size_t cols) {
  const auto bad = [&](std::string why) { return invalid_input(element_field(input, k, cols) + ": " + why); };
  const std::uint64_t max = type == DataType::kUint8    ? 0xFFu
                            : type == DataType::kUint16 ? 0xFFFFu
                            : type == DataType::kUint32 ? 0xFFFFFFFFu
                                                        : ~std::uint64_t{0};
  if (u > max) return bad(std::to_string(u) + " out of range for " + std::string(to_string(type)));
  if (!float_exact(u)) return bad(std::to_string(u) + " has no exact FP32 value");
  out = static_cast<float>(u);
  return {};
}

Status convert_double(double d, float& out, std::size_t input, std::size_t k, std::size_t cols) {
  const auto f = static_cast<float>(d);
  if (std::isinf(f) && !std::isinf(d))
    return invalid_input(element_field(input, k, cols) + ": " + std::to_string(d) + " overflows FP32");
  out = f;
  return {};
}

Status convert_binary(const char* p, DataType type, float& out, std::size_t input, std::size_t k, std::size_t cols) {
  switch (type) {
    case DataType::kFp32: out = load<float>(p); return {};
    case DataType::kFp64: return convert_double(load<double>(p), out, input, k, cols);
    case DataType::kBool: return convert_signed(load<std::uint8_t>(p), type, out, input, k, cols);
    case DataType::kInt8: out = load<std::int8_t>(p); return {};
    case DataType::kInt16: out = load<std::int16_t>(p); return {};
    case DataType::kUint8: out = load<std::uint8_t>(p); return {};
    case DataType::kUint16: out = load<std::uint16_t>(p); return {};
    case DataType::kInt32: return convert_signed(load<std::int32_t>(p), type, out, input, k, cols);
    case DataType::kInt64: return convert_signed(load<std::int64_t>(p), type, out, input, k, cols);
    case DataType::kUint32: return convert_unsigned(load<std::uint32_t>(p), type, out, input, k, cols);
    case DataType::kUint64: return convert_unsigned(load<std::uint64_t>(p), type, out, input, k, cols);
    default:
      return invalid_input(element_field(input, k, cols) + ": datatype " + std::string(to_string(type)) +
                           " is not supported");
  }
}

}  // namespace keel::net::oip
