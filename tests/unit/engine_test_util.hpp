#pragma once
// Small models for engine tests: a linear scorer that counts its calls, and
// a loader for a one-line text format ("w0 w1 ... | bias") so that reload
// tests can write files without depending on a training library.

#include <keel/model/model.hpp>
#include <keel/model/loaders.hpp>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace keel::test {

// score = bias + sum(w_i * x_i), NaN features count as 0. Thread-safe.
class LinearTestModel final : public Model {
 public:
  LinearTestModel(std::vector<float> w, float bias, std::string id = "lin", std::vector<std::string> names = {})
      : w_(std::move(w)), bias_(bias) {
    info_.num_features = w_.size();
    info_.id = std::move(id);
    info_.version = next_model_version();
    info_.has_feature_names = !names.empty();
    for (std::size_t i = 0; i < w_.size(); ++i) {
      info_.features.push_back({names.empty() ? std::string() : names[i], FeatureType::kNumeric});
    }
  }
  [[nodiscard]] const ModelInfo& info() const noexcept override { return info_; }
  [[nodiscard]] Status predict(std::span<const float> rows, std::size_t n_rows, std::span<float> out,
                               const PredictOptions& opts = {}) const noexcept override {
    if (Status s = check_shapes(rows.size(), n_rows, out.size(), opts); !s.is_ok()) return s;
    calls.fetch_add(1);
    rows_scored.fetch_add(n_rows);
    for (std::size_t r = 0; r < n_rows; ++r) {
      float acc = bias_;
      for (std::size_t f = 0; f < w_.size(); ++f) {
        const float x = rows[r * w_.size() + f];
        if (!std::isnan(x)) acc += w_[f] * x;
      }
      out[r] = acc;
    }
    return Status::ok();
  }
  using Model::predict;

  // Forgets the calls made so far (the engine's canary checks at build).
  void reset_counts() noexcept {
    calls = 0;
    rows_scored = 0;
  }

  mutable std::atomic<std::uint64_t> calls{0};
  mutable std::atomic<std::uint64_t> rows_scored{0};

 private:
  std::vector<float> w_;
  float bias_;
  ModelInfo info_;
};

inline std::shared_ptr<LinearTestModel> linear(std::vector<float> w, float bias, std::string id = "lin") {
  return std::make_shared<LinearTestModel>(std::move(w), bias, std::move(id));
}

// "w0 w1 ... | bias" (one line). Anything else is a kModelError naming the
// byte offset, like a real loader.
inline Result<ModelPtr> load_test_model(const std::filesystem::path& path, const LoadOptions& opts) {
  std::ifstream in(path);
  if (!in) return not_found("cannot open " + path.string());
  std::string line;
  std::getline(in, line);
  std::istringstream ss(line);
  std::vector<float> w;
  std::string tok;
  while (ss >> tok && tok != "|") {
    try {
      w.push_back(std::stof(tok));
    } catch (...) {
      return model_error(path.string() + ": byte " + std::to_string(line.find(tok)) + ": not a number: " + tok);
    }
  }
  float bias = 0;
  if (tok != "|" || !(ss >> bias) || w.empty()) return model_error(path.string() + ": expected 'w... | bias'");
  return ModelPtr(std::make_shared<LinearTestModel>(std::move(w), bias,
                                                    opts.id.empty() ? path.stem().string() : opts.id));
}

inline void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::trunc);
  out << text;
}

// A fresh directory under the temp dir, removed on destruction.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() /
           ("keel_" + tag + "_" + std::to_string(reinterpret_cast<std::uintptr_t>(this)));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace keel::test
