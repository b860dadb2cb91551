#include <keel/validate/detail/category_set.hpp>
#include <keel/validate/detail/sketch_key.hpp>
#include <keel/validate/profile_builder.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

namespace keel {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Streaming statistics of one feature. Every field but mean/m2 is an
// integer count or an exact float, which is what makes merges exact.
struct Accumulator {
  FeatureInfo info;
  std::uint64_t count = 0, missing = 0, infinite = 0;
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();
  std::uint64_t n = 0;  // finite values
  double mean = 0, m2 = 0;
  bool integral = true;
  std::uint32_t base = 0;  // key of buckets[0]
  std::vector<std::uint64_t> buckets;
  std::unordered_map<std::int64_t, std::uint64_t> cats;
  std::uint64_t other = 0;

  void add_bucket(std::uint32_t key, std::uint64_t c) {
    if (buckets.empty()) {
      base = key;
      buckets.assign(1, 0);
    } else if (key < base) {
      // Grow to the left with some slack: new minima are rare.
      const std::uint32_t new_base = key >= 64 ? key - 64 : 0;
      buckets.insert(buckets.begin(), base - new_base, 0);
      base = new_base;
    } else if (key - base >= buckets.size()) {
      buckets.resize(std::min<std::size_t>(key - base + 65, detail::kSketchKeys - base), 0);
    }
    buckets[key - base] += c;
  }

  void add_category(std::int64_t id, std::uint64_t c, std::size_t cap) {
    auto it = cats.find(id);
    if (it != cats.end()) {
      it->second += c;
    } else if (cats.size() < cap) {
      cats.emplace(id, c);
    } else {
      other += c;
    }
  }

  void add(float v, std::size_t cap) {
    ++count;
    if (std::isnan(v)) {
      ++missing;
      return;
    }
    if (std::isinf(v)) {
      ++infinite;
      return;
    }
    if (v == 0.0f) v = 0.0f;  // -0.0 counts as 0
    min = std::min(min, v);
    max = std::max(max, v);
    ++n;
    const double d = v - mean;
    mean += d / static_cast<double>(n);
    m2 += d * (v - mean);
    const bool whole = detail::is_integral(v);
    integral = integral && whole;
    add_bucket(detail::sketch_key(v), 1);
    if (info.type == FeatureType::kCategorical) {
      if (whole && v >= 0.0f && v < 9.0e15f) {
        add_category(static_cast<std::int64_t>(v), 1, cap);
      } else {
        ++other;
      }
    }
  }

  void merge(const Accumulator& o, std::size_t cap) {
    count += o.count;
    missing += o.missing;
    infinite += o.infinite;
    min = std::min(min, o.min);
    max = std::max(max, o.max);
    if (o.n > 0) {
      const double na = static_cast<double>(n), nb = static_cast<double>(o.n);
      const double d = o.mean - mean;
      const double total = na + nb;
      mean += d * nb / total;
      m2 += o.m2 + d * d * na * nb / total;
      n += o.n;
    }
    integral = integral && o.integral;
    for (std::size_t i = 0; i < o.buckets.size(); ++i) {
      if (o.buckets[i] != 0) add_bucket(o.base + static_cast<std::uint32_t>(i), o.buckets[i]);
    }
    // Ascending ids, so that which ids fit under the cap does not depend on
    // hash order.
    std::vector<std::pair<std::int64_t, std::uint64_t>> ids(o.cats.begin(), o.cats.end());
    std::sort(ids.begin(), ids.end());
    for (const auto& [id, c] : ids) add_category(id, c, cap);
    other += o.other;
  }

  // A value to stand for bucket `key`: its middle, rounded for integer
  // data (exact for integers whose bucket is narrower than 1), kept
  // within the exact min and max.
  [[nodiscard]] double representative(std::uint32_t key) const {
    const double lo = detail::sketch_low(key), hi = detail::sketch_high(key);
    const double sign = key >= detail::kSketchZeroKey ? 1.0 : -1.0;
    double mid = sign * (lo + (hi - lo) / 2);
    if (integral) mid = std::round(mid);
    return std::clamp(mid, static_cast<double>(min), static_cast<double>(max));
  }

  // Key of the bucket holding the value of 0-based rank r among finite values.
  [[nodiscard]] std::uint32_t key_at_rank(std::uint64_t r) const {
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets.size(); ++i) {
      seen += buckets[i];
      if (seen > r) return base + static_cast<std::uint32_t>(i);
    }
    return base + static_cast<std::uint32_t>(buckets.size() - 1);
  }

  [[nodiscard]] FeatureProfile build(std::size_t bins) const {
    FeatureProfile p;
    p.name = info.name;
    p.type = info.type;
    p.count = count;
    p.missing = missing;
    p.infinite = infinite;
    p.other_categories = other;
    p.categories.assign(cats.begin(), cats.end());
    std::sort(p.categories.begin(), p.categories.end());
    if (n == 0) {
      p.min = p.max = p.mean = p.std = kNaN;
      p.quantiles.fill(kNaN);
      p.histogram.counts.assign(1, 0);
      return p;
    }
    p.min = min;
    p.max = max;
    p.mean = mean;
    p.std = n > 1 ? std::sqrt(m2 / static_cast<double>(n - 1)) : 0.0;
    for (std::size_t i = 0; i < kProfileQuantileLevels.size(); ++i) {
      const auto rank = static_cast<std::uint64_t>(std::floor(kProfileQuantileLevels[i] * static_cast<double>(n - 1)));
      p.quantiles[i] = representative(key_at_rank(rank));
    }
    // Few distinct buckets (discrete data): one bin each. Otherwise edges at
    // the buckets holding the b/bins-th values: bins of about equal mass.
    // Either way the counts are exact sums of buckets.
    Histogram& h = p.histogram;
    const std::uint32_t first = key_at_rank(0);
    const auto nonempty = static_cast<std::size_t>(std::count_if(buckets.begin(), buckets.end(), [](std::uint64_t c) { return c != 0; }));
    if (nonempty <= bins) {
      for (std::size_t i = 0; i < buckets.size(); ++i) {
        const auto k = base + static_cast<std::uint32_t>(i);
        if (buckets[i] != 0 && k > first) h.edge_keys.push_back(k);
      }
    } else {
      for (std::size_t b = 1; b < bins; ++b) {
        const std::uint32_t k = key_at_rank(static_cast<std::uint64_t>(b) * n / bins);
        if (k > first && (h.edge_keys.empty() || k > h.edge_keys.back())) h.edge_keys.push_back(k);
      }
    }
    for (std::uint32_t k : h.edge_keys) {
      h.edges.push_back(k >= detail::kSketchZeroKey ? detail::sketch_low(k) : -detail::sketch_high(k));
    }
    h.counts.assign(h.edge_keys.size() + 1, 0);
    std::size_t bin = 0;
    for (std::size_t i = 0; i < buckets.size(); ++i) {
      const auto key = base + static_cast<std::uint32_t>(i);
      while (bin < h.edge_keys.size() && key >= h.edge_keys[bin]) ++bin;
      h.counts[bin] += buckets[i];
    }
    return p;
  }
};

}  // namespace

struct ProfileBuilder::Impl {
  ProfileOptions opts;
  std::uint64_t rows = 0;
  std::vector<Accumulator> features;
  Accumulator score;
};

ProfileBuilder::ProfileBuilder(std::vector<FeatureInfo> features, ProfileOptions opts)
    : impl_(std::make_unique<Impl>()) {
  if (opts.histogram_bins == 0) throw Error(invalid_input("profile: histogram_bins must be at least 1"));
  impl_->opts = opts;
  impl_->features.resize(features.size());
  for (std::size_t j = 0; j < features.size(); ++j) {
    impl_->features[j].info = std::move(features[j]);
    if (impl_->features[j].info.name.empty()) impl_->features[j].info.name = fmt::format("f{}", j);
  }
  impl_->score.info.name = "score";
}

ProfileBuilder::~ProfileBuilder() = default;
ProfileBuilder::ProfileBuilder(ProfileBuilder&&) noexcept = default;
ProfileBuilder& ProfileBuilder::operator=(ProfileBuilder&&) noexcept = default;

std::size_t ProfileBuilder::num_features() const noexcept { return impl_->features.size(); }
std::uint64_t ProfileBuilder::rows() const noexcept { return impl_->rows; }

Status ProfileBuilder::add(std::span<const float> rows, std::size_t n_rows) {
  const std::size_t n = impl_->features.size();
  if (rows.size() != n_rows * n) {
    return invalid_input(fmt::format("profile: {} values are not {} rows of {} features", rows.size(), n_rows, n));
  }
  const std::size_t cap = impl_->opts.max_categories;
  for (std::size_t r = 0; r < n_rows; ++r) {
    const float* row = rows.data() + r * n;
    for (std::size_t j = 0; j < n; ++j) impl_->features[j].add(row[j], cap);
  }
  impl_->rows += n_rows;
  return Status::ok();
}

void ProfileBuilder::add_scores(std::span<const float> scores) {
  for (float s : scores) impl_->score.add(s, 0);
}

void ProfileBuilder::merge(const ProfileBuilder& other) {
  const auto& a = impl_->features;
  const auto& b = other.impl_->features;
  bool same = a.size() == b.size();
  for (std::size_t j = 0; same && j < a.size(); ++j) same = a[j].info.name == b[j].info.name && a[j].info.type == b[j].info.type;
  if (!same) throw Error(invalid_input("profile: cannot merge builders over different features"));
  const std::size_t cap = impl_->opts.max_categories;
  for (std::size_t j = 0; j < a.size(); ++j) impl_->features[j].merge(b[j], cap);
  impl_->score.merge(other.impl_->score, 0);
  impl_->rows += other.impl_->rows;
}

Profile ProfileBuilder::build() const {
  Profile p;
  p.rows = impl_->rows;
  p.features.reserve(impl_->features.size());
  for (const Accumulator& a : impl_->features) p.features.push_back(a.build(impl_->opts.histogram_bins));
  if (impl_->score.count > 0) p.score = impl_->score.build(impl_->opts.histogram_bins);
  return p;
}

Result<Profile> profile_source(RowSource& source, std::vector<FeatureInfo> features, const ProfileOptions& opts,
                               const ScoreFn& score, const ProgressFn& progress, std::size_t chunk_rows) {
  const std::size_t n = source.num_features();
  if (features.size() != n) {
    return invalid_input(fmt::format("profile: {} feature descriptions for a source of {} features", features.size(), n));
  }
  ProfileBuilder builder(std::move(features), opts);
  chunk_rows = std::max<std::size_t>(chunk_rows, 1);
  std::vector<float> buf(chunk_rows * n);
  std::vector<float> scores(score ? chunk_rows : 0);
  for (;;) {
    Result<std::size_t> got = source.read(buf, chunk_rows);
    if (!got.ok()) return got.status();
    const std::size_t k = *got;
    if (k == 0) break;
    const std::span<const float> rows(buf.data(), k * n);
    if (Status s = builder.add(rows, k); !s.is_ok()) return s;
    if (score) {
      if (Status s = score(rows, k, std::span<float>(scores.data(), k)); !s.is_ok()) {
        return s.with_context(fmt::format("scoring rows {}..{}", builder.rows() - k, builder.rows() - 1));
      }
      builder.add_scores(std::span<const float>(scores.data(), k));
    }
    if (progress) progress(builder.rows(), source.progress());
  }
  return builder.build();
}

}  // namespace keel
