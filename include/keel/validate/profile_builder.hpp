#pragma once
// ProfileBuilder: computes a Profile in one streaming pass, rows in chunks
// of any size. Feeding the same rows in any chunking gives a bit-identical
// Profile. Builders over disjoint parts can be merged: every count, min,
// max, histogram, quantile and category frequency of the merge equals that
// of one builder over all rows; mean and std (Welford, merged by Chan's
// formula) agree to floating-point rounding. Not thread-safe (one builder
// per thread, then merge).

#include <keel/model/model.hpp>
#include <keel/validate/profile.hpp>
#include <keel/validate/row_source.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <vector>

namespace keel {

struct ProfileOptions {
  // Histogram bins (near the deciles for 10); fewer when values repeat.
  std::size_t histogram_bins = 10;
  // Distinct ids counted per categorical feature; later new ids go to other_categories.
  std::size_t max_categories = 1024;
};

class ProfileBuilder {
 public:
  // One entry per feature (name, type); unnamed features become "f<i>".
  explicit ProfileBuilder(std::vector<FeatureInfo> features, ProfileOptions opts = {});
  ~ProfileBuilder();
  ProfileBuilder(ProfileBuilder&&) noexcept;
  ProfileBuilder& operator=(ProfileBuilder&&) noexcept;

  [[nodiscard]] std::size_t num_features() const noexcept;
  [[nodiscard]] std::uint64_t rows() const noexcept;

  // Adds n_rows row-major rows; InvalidInput when rows.size() != n_rows * num_features().
  [[nodiscard]] Status add(std::span<const float> rows, std::size_t n_rows);
  // Adds model scores (one per row) to the score profile.
  void add_scores(std::span<const float> scores);
  // Folds another builder's rows in; throws keel::Error if the features differ.
  void merge(const ProfileBuilder& other);

  [[nodiscard]] Profile build() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Scores rows for the score profile: writes n_rows scores.
using ScoreFn = std::function<Status(std::span<const float> rows, std::size_t n_rows, std::span<float> scores)>;
// Called after each chunk with the rows so far and RowSource::progress().
using ProgressFn = std::function<void(std::uint64_t rows, double fraction)>;

// Profiles a whole source in one pass, chunk_rows rows at a time. A read
// or scoring error stops it and is returned.
[[nodiscard]] Result<Profile> profile_source(RowSource& source, std::vector<FeatureInfo> features,
                                             const ProfileOptions& opts = {}, const ScoreFn& score = {},
                                             const ProgressFn& progress = {}, std::size_t chunk_rows = 4096);

}  // namespace keel
