#pragma once
// Test models for the resilience tests: a constant model that counts its
// calls. Thread-safe (predict only reads, counts in an atomic).

#include <keel/model/model.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>

namespace keel::test {

class ConstModel final : public Model {
 public:
  explicit ConstModel(float value, std::size_t features = 2, std::size_t width = 1, std::string id = "const")
      : value_(value) {
    info_.id = std::move(id);
    info_.num_features = features;
    info_.features.resize(features);
    info_.num_outputs = width;
    info_.num_margin_outputs = width;
  }
  [[nodiscard]] const ModelInfo& info() const noexcept override { return info_; }
  [[nodiscard]] Status predict(std::span<const float> rows, std::size_t n_rows, std::span<float> out,
                               const PredictOptions& opts = {}) const noexcept override {
    calls_.fetch_add(1, std::memory_order_relaxed);
    if (Status s = check_shapes(rows.size(), n_rows, out.size(), opts); !s) return s;
    std::fill(out.begin(), out.end(), value_);
    return Status::ok();
  }
  using Model::predict;
  [[nodiscard]] std::uint64_t calls() const noexcept { return calls_.load(); }

 private:
  ModelInfo info_;
  float value_;
  mutable std::atomic<std::uint64_t> calls_{0};
};

inline std::shared_ptr<ConstModel> const_model(float v, std::string id = "const", std::size_t width = 1) {
  return std::make_shared<ConstModel>(v, 2, width, std::move(id));
}

}  // namespace keel::test
