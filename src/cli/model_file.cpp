#include "cli/model_file.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace keel::cli {

// LightGBM text only until keel::load_model (format detection) lands; then
// this becomes a call to it.
Result<ModelPtr> load_model_file(const std::string& path, const LoadOptions& opts) {
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) return invalid_input(fmt::format("cannot open model '{}'", path));
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > opts.max_bytes) {
    return model_error(fmt::format("model '{}' is {} bytes, above the limit of {}", path, size, opts.max_bytes));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  LoadOptions o = opts;
  if (o.id.empty()) o.id = std::filesystem::path(path).stem().string();
  if (text.starts_with("tree\n") || text.starts_with("tree\r\n")) {
    Result<ModelPtr> m = load_lightgbm_text(text, o);
    if (!m) return Status(m.status()).with_context(path);
    return m;
  }
  return model_error(fmt::format("{}: unrecognised model format", path));
}

}  // namespace keel::cli
