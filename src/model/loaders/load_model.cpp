// load_model: reads a file (size-capped) and picks the loader from the
// content, not the file name.

#include "model/loaders/json_doc.hpp"
#include "model/loaders/loader_util.hpp"

#include <keel/model/loaders.hpp>

#include <fmt/format.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace keel {
namespace {

enum class Detected : std::uint8_t { kJson, kUbjson, kLightGBM, kUnknown };

bool is_space(std::uint8_t c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

Detected detect(std::span<const std::uint8_t> b) {
  std::size_t i = 0;
  if (b.size() >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF) i = 3;  // UTF-8 byte order mark
  while (i < b.size() && is_space(b[i])) ++i;
  if (i == b.size()) return Detected::kUnknown;
  if (b[i] == '{') {
    // After '{', JSON text has whitespace, '"' or '}'; UBJSON has a key's
    // length marker, a count '#', a type '$' or a no-op 'N'.
    if (i + 1 < b.size()) {
      const std::uint8_t c = b[i + 1];
      if (c == 'i' || c == 'U' || c == 'I' || c == 'l' || c == 'L' || c == '#' || c == '$' || c == 'N') {
        return Detected::kUbjson;
      }
    }
    return Detected::kJson;
  }
  static constexpr std::string_view kTree = "tree";
  if (b.size() - i > kTree.size() && std::memcmp(b.data() + i, kTree.data(), kTree.size()) == 0 &&
      (b[i + kTree.size()] == '\n' || b[i + kTree.size()] == '\r')) {
    return Detected::kLightGBM;
  }
  return Detected::kUnknown;
}

// The first bytes, printable, for an error message.
std::string preview(std::span<const std::uint8_t> b) {
  std::string s;
  for (std::size_t i = 0; i < b.size() && i < 24; ++i) {
    const std::uint8_t c = b[i];
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      s.push_back(static_cast<char>(c));
    } else {
      s += fmt::format("\\x{:02x}", c);
    }
  }
  return s;
}

std::string_view as_text(std::span<const std::uint8_t> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

Result<ModelPtr> load_json_document(std::span<const std::uint8_t> bytes, const LoadOptions& opts) {
  // Parse once, then hand the document to the builder its top-level keys name.
  detail::Json root;
  Result<ModelPtr> parsed = detail::guarded_load("JSON model", bytes.size(), opts, [&]() -> Result<ModelPtr> {
    root = detail::parse_json_text(as_text(bytes));
    if (!root.is_object()) detail::throw_model_error("the document is not a JSON object");
    if (root.contains("learner") || root.contains("keel_linear")) return ModelPtr{};
    std::string keys;
    for (const auto& [k, v] : root.items()) {
      if (keys.size() > 80) {
        keys += ", ...";
        break;
      }
      keys += keys.empty() ? k : ", " + k;
    }
    detail::throw_model_error(fmt::format(
        "neither 'learner' (XGBoost) nor 'keel_linear' (Keel linear) at the top level; found keys: {}",
        keys.empty() ? "none" : keys));
  });
  if (!parsed.ok()) return parsed;
  if (root.contains("learner")) {
    return detail::guarded_load("XGBoost JSON", bytes.size(), opts, [&] {
      return detail::xgboost_from_document(root, ModelFormat::kXGBoostJson, bytes.size(), opts);
    });
  }
  return detail::guarded_load("Keel linear JSON", bytes.size(), opts,
                              [&] { return detail::keel_linear_from_document(root, bytes.size(), opts); });
}

Result<ModelPtr> load_detected(std::span<const std::uint8_t> bytes, const LoadOptions& opts) {
  switch (detect(bytes)) {
    case Detected::kJson: return load_json_document(bytes, opts);
    case Detected::kUbjson: return load_xgboost_ubjson(bytes, opts);
    case Detected::kLightGBM: return load_lightgbm_text(as_text(bytes), opts);
    case Detected::kUnknown: break;
  }
  return model_error(fmt::format(
      "unknown model format: the content starts with '{}' ({} bytes); expected XGBoost JSON or UBJSON, LightGBM text "
      "or Keel linear JSON",
      preview(bytes), bytes.size()));
}

// The bytes, then what the load options changed in the answers: the rounds
// scored, as the model resolved them (num_iterations or use_best_iteration;
// "all" and "N = all" give one identity). Options that only pick a kernel
// or a layout, and the id, stay out.
ModelContentId content_id_of(std::span<const std::uint8_t> bytes, const ModelInfo& info) noexcept {
  XXH3_state_t st;
  XXH3_128bits_reset(&st);
  XXH3_128bits_update(&st, bytes.data(), bytes.size());
  const std::uint64_t iterations = info.num_iterations;
  XXH3_128bits_update(&st, &iterations, sizeof iterations);
  const XXH128_hash_t h = XXH3_128bits_digest(&st);
  ModelContentId id{h.high64, h.low64};
  if (id.empty()) id.lo = 1;  // zero means "no content id"
  return id;
}

}  // namespace

Result<ModelPtr> load_model_from_memory(std::span<const std::uint8_t> bytes, const LoadOptions& opts) {
  if (bytes.size() > opts.max_bytes) {
    return model_error(fmt::format("model: {} bytes exceed the {}-byte limit", bytes.size(), opts.max_bytes));
  }
  Result<ModelPtr> r = load_detected(bytes, opts);
  if (r.ok()) {
    // The loaders build ModelInfo; the identity is added here, once for every
    // format, before the model is shared with anyone. The model object itself
    // was created non-const, so writing through the const view is defined.
    const_cast<ModelInfo&>((*r)->info()).content_id = content_id_of(bytes, (*r)->info());
  }
  return r;
}

Result<ModelPtr> load_model(const std::filesystem::path& path, const LoadOptions& opts) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) {
    const int err = errno;
    const std::string msg = fmt::format("cannot open model file '{}': {}", path.string(), std::strerror(err));
    return err == ENOENT ? not_found(msg) : model_error(msg);
  }
  // Read at most max_bytes + 1, so that an oversized (or growing) file is
  // refused without reading it all.
  std::vector<std::uint8_t> bytes;
  try {
    std::uint8_t buf[1 << 16];
    while (true) {
      const std::size_t got = std::fread(buf, 1, sizeof buf, f.get());
      if (got > 0) {
        if (bytes.size() + got > opts.max_bytes) {
          return model_error(fmt::format("model file '{}' is larger than the {}-byte limit", path.string(),
                                         opts.max_bytes));
        }
        bytes.insert(bytes.end(), buf, buf + got);
      }
      if (got < sizeof buf) break;
    }
  } catch (const std::bad_alloc&) {
    return model_error(fmt::format("model file '{}': out of memory while reading", path.string()));
  }
  if (std::ferror(f.get())) return model_error(fmt::format("error reading model file '{}'", path.string()));
  LoadOptions o = opts;
  if (o.id.empty()) o.id = path.stem().string();
  Result<ModelPtr> r = load_model_from_memory(bytes, o);
  if (!r.ok()) return r.status().with_context(path.filename().string());
  return r;
}

}  // namespace keel
