#pragma once
// The byte format of what Keel stores in Redis: little-endian fixed-width
// integers, length-prefixed strings and float arrays. The reader checks
// every length against what is left, so a torn or foreign value is
// rejected, never read past. Floats are handled as bytes (Redis replies are
// not aligned for float). Not thread-safe (one per value).

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel::net::detail {

class WireWriter {
 public:
  void magic(std::string_view m) { out_.append(m); }
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(std::uint32_t v) { put(&v, sizeof v); }
  void u64(std::uint64_t v) { put(&v, sizeof v); }
  void f64(double v) { put(&v, sizeof v); }
  void str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    out_.append(s);
  }
  void floats(std::span<const float> f) {
    u32(static_cast<std::uint32_t>(f.size()));
    put(f.data(), f.size_bytes());
  }
  [[nodiscard]] const std::string& bytes() const noexcept { return out_; }
  [[nodiscard]] std::string release() noexcept { return std::move(out_); }

 private:
  void put(const void* p, std::size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

class WireReader {
 public:
  explicit WireReader(std::string_view in) noexcept : in_(in) {}
  bool magic(std::string_view m) noexcept { return take(m.size()) == m && ok_; }
  bool u8(std::uint8_t& v) noexcept { return get(&v, sizeof v); }
  bool u32(std::uint32_t& v) noexcept { return get(&v, sizeof v); }
  bool u64(std::uint64_t& v) noexcept { return get(&v, sizeof v); }
  bool f64(double& v) noexcept { return get(&v, sizeof v); }
  bool str(std::string_view& s) noexcept {
    std::uint32_t n = 0;
    if (!u32(n)) return false;
    s = take(n);
    return ok_;
  }
  bool str(std::string& s) {
    std::string_view v;
    if (!str(v)) return false;
    s.assign(v);
    return true;
  }
  // The raw bytes of a float array and its length.
  bool float_bytes(std::string_view& bytes, std::size_t& n) noexcept {
    std::uint32_t k = 0;
    if (!u32(k)) return false;
    n = k;
    bytes = take(static_cast<std::size_t>(k) * sizeof(float));
    return ok_;
  }
  bool floats(std::vector<float>& out) {
    std::string_view b;
    std::size_t n = 0;
    if (!float_bytes(b, n)) return false;
    out.resize(n);
    if (n != 0) std::memcpy(out.data(), b.data(), b.size());
    return true;
  }
  [[nodiscard]] bool done() const noexcept { return ok_ && in_.empty(); }
  [[nodiscard]] std::string_view rest() const noexcept { return in_; }

 private:
  std::string_view take(std::size_t n) noexcept {
    if (!ok_ || n > in_.size()) {
      ok_ = false;
      return {};
    }
    std::string_view r = in_.substr(0, n);
    in_.remove_prefix(n);
    return r;
  }
  bool get(void* p, std::size_t n) noexcept {
    std::string_view b = take(n);
    if (!ok_) return false;
    std::memcpy(p, b.data(), n);
    return true;
  }
  std::string_view in_;
  bool ok_ = true;
};

// Whether `bytes` holds exactly the bytes of `f`.
inline bool same_floats(std::string_view bytes, std::size_t n, std::span<const float> f) noexcept {
  return n == f.size() && (n == 0 || std::memcmp(bytes.data(), f.data(), f.size_bytes()) == 0);
}

}  // namespace keel::net::detail
