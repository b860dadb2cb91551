#include <keel/validate/detail/sketch_key.hpp>
#include <keel/validate/drift_monitor.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>

namespace keel {

// Where each feature's counters live in a block: bins of feature j at
// [bin_begin[j], bin_begin[j+1]), then one missing counter per feature,
// then the score bins.
struct DriftMonitor::Layout {
  std::vector<std::uint32_t> bin_begin;  // F + 1 entries
  std::vector<std::uint32_t> edge_begin;  // F + 1 entries into edge_keys
  std::vector<std::uint32_t> edge_keys;
  std::size_t missing_begin = 0;
  std::size_t score_begin = 0;
  std::size_t cells = 0;
  bool has_score = false;
  std::vector<std::uint32_t> score_edges;
  std::vector<FeatureDrift> names;          // name, index, reference missing rate
  std::vector<std::vector<double>> ref;     // reference bin proportions per feature
  std::vector<double> score_ref;

  // Bin of a non-NaN value: the number of edge keys at or below its key.
  static std::uint32_t bin(const std::uint32_t* edges, std::uint32_t n_edges, float v) noexcept {
    const std::uint32_t key = detail::sketch_key(v);
    std::uint32_t b = 0;
    while (b < n_edges && edges[b] <= key) ++b;
    return b;
  }
};

struct DriftMonitor::Shard {
  struct Block {
    std::uint64_t rows = 0, scores = 0;
    std::vector<std::uint64_t> counts;
  };
  std::mutex mu;
  std::vector<Block> blocks;  // guarded by mu
  std::size_t current = 0;    // guarded by mu
  std::uint64_t observed = 0, ignored = 0;  // guarded by mu
};

namespace {

std::vector<double> proportions(const std::vector<std::uint64_t>& counts) {
  double total = 0;
  for (auto c : counts) total += static_cast<double>(c);
  std::vector<double> p(counts.size(), 0.0);
  if (total > 0) {
    for (std::size_t i = 0; i < counts.size(); ++i) p[i] = static_cast<double>(counts[i]) / total;
  }
  return p;
}

// PSI of observed counts against reference proportions; 0 without data on
// either side.
double psi(const std::vector<double>& ref, const std::uint64_t* counts, double epsilon) {
  double total = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) total += static_cast<double>(counts[i]);
  if (total == 0 || ref.empty()) return 0.0;
  double s = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double p = std::max(ref[i], epsilon);
    const double q = std::max(static_cast<double>(counts[i]) / total, epsilon);
    s += (q - p) * std::log(q / p);
  }
  return s;
}


}  // namespace

DriftMonitor::DriftMonitor(const Profile& reference, DriftOptions opts) : layout_(std::make_unique<Layout>()), opts_(opts) {
  if (opts.shards == 0 || opts.window_blocks == 0 || !(opts.epsilon > 0 && opts.epsilon < 1)) {
    throw Error(invalid_input("drift: shards and window_blocks must be >= 1, epsilon in (0, 1)"));
  }
  if (opts.window_rows == 0) opts_.window_blocks = 1;
  Layout& L = *layout_;
  const std::size_t n = reference.features.size();
  L.bin_begin.push_back(0);
  L.edge_begin.push_back(0);
  for (std::size_t j = 0; j < n; ++j) {
    const FeatureProfile& f = reference.features[j];
    const Histogram& h = f.histogram;
    L.edge_keys.insert(L.edge_keys.end(), h.edge_keys.begin(), h.edge_keys.end());
    L.edge_begin.push_back(static_cast<std::uint32_t>(L.edge_keys.size()));
    L.bin_begin.push_back(L.bin_begin.back() + static_cast<std::uint32_t>(h.edge_keys.size() + 1));
    L.ref.push_back(proportions(h.counts));
    L.ref.back().resize(h.edge_keys.size() + 1, 0.0);
    L.names.push_back(FeatureDrift{f.name, j, 0.0, 0.0, f.missing_rate()});
  }
  L.missing_begin = L.bin_begin.back();
  L.score_begin = L.missing_begin + n;
  L.cells = L.score_begin;
  if (reference.score && reference.score->histogram.total() > 0) {
    L.has_score = true;
    L.score_edges = reference.score->histogram.edge_keys;
    L.score_ref = proportions(reference.score->histogram.counts);
    L.cells += L.score_edges.size() + 1;
  }
  for (std::size_t s = 0; s < opts_.shards; ++s) {
    auto shard = std::make_unique<Shard>();
    shard->blocks.resize(opts_.window_blocks);
    for (auto& b : shard->blocks) b.counts.assign(L.cells, 0);
    shards_.push_back(std::move(shard));
  }
}

DriftMonitor::~DriftMonitor() = default;

std::size_t DriftMonitor::num_features() const noexcept { return layout_->names.size(); }

void DriftMonitor::observe(std::span<const float> row, float score) noexcept {
  observe(row, 1, std::span<const float>(&score, 1));
}

void DriftMonitor::observe(std::span<const float> rows, std::size_t n_rows, std::span<const float> scores) noexcept {
  const Layout& L = *layout_;
  const std::size_t n = L.names.size();
  // Round robin, so that each shard sees 1/shards of the rows whatever the
  // number of threads (one thread alone still fills the whole window).
  Shard& sh = *shards_[next_shard_.fetch_add(1, std::memory_order_relaxed) % shards_.size()];
  // Rows per block of this shard's window.
  const std::size_t per_shard = (opts_.window_rows + shards_.size() - 1) / shards_.size();
  const std::size_t block_rows = std::max<std::size_t>(1, per_shard / opts_.window_blocks);
  std::lock_guard lock(sh.mu);
  sh.observed += n_rows;
  if (rows.size() != n_rows * n) {
    sh.ignored += n_rows;
    return;
  }
  const bool with_scores = L.has_score && scores.size() == n_rows;
  for (std::size_t r = 0; r < n_rows; ++r) {
    Shard::Block* b = &sh.blocks[sh.current];
    if (opts_.window_rows != 0 && b->rows >= block_rows) {
      sh.current = (sh.current + 1) % sh.blocks.size();
      b = &sh.blocks[sh.current];
      b->rows = b->scores = 0;
      std::fill(b->counts.begin(), b->counts.end(), 0);
    }
    std::uint64_t* c = b->counts.data();
    const float* row = rows.data() + r * n;
    for (std::size_t j = 0; j < n; ++j) {
      const float v = row[j];
      if (v != v) {
        ++c[L.missing_begin + j];
        continue;
      }
      const std::uint32_t e0 = L.edge_begin[j];
      ++c[L.bin_begin[j] + Layout::bin(L.edge_keys.data() + e0, L.edge_begin[j + 1] - e0, v)];
    }
    ++b->rows;
    if (with_scores && scores[r] == scores[r]) {
      ++c[L.score_begin + Layout::bin(L.score_edges.data(), static_cast<std::uint32_t>(L.score_edges.size()), scores[r])];
      ++b->scores;
    }
  }
}

bool DriftMonitor::has_score_reference() const noexcept { return layout_->has_score; }

DriftSnapshot DriftMonitor::snapshot() const {
  const Layout& L = *layout_;
  std::vector<std::uint64_t> total(L.cells, 0);
  DriftSnapshot snap;
  for (const auto& sh : shards_) {
    std::lock_guard lock(sh->mu);
    snap.observed += sh->observed;
    snap.ignored += sh->ignored;
    for (const Shard::Block& b : sh->blocks) {
      snap.rows += b.rows;
      snap.scores += b.scores;
      for (std::size_t i = 0; i < L.cells; ++i) total[i] += b.counts[i];
    }
  }
  snap.features = L.names;
  for (std::size_t j = 0; j < snap.features.size(); ++j) {
    FeatureDrift& f = snap.features[j];
    f.psi = psi(L.ref[j], total.data() + L.bin_begin[j], opts_.epsilon);
    f.missing_rate = snap.rows == 0 ? 0.0 : static_cast<double>(total[L.missing_begin + j]) / static_cast<double>(snap.rows);
  }
  if (L.has_score && snap.scores > 0) snap.score_psi = psi(L.score_ref, total.data() + L.score_begin, opts_.epsilon);
  return snap;
}

void DriftMonitor::reset() noexcept {
  for (const auto& sh : shards_) {
    std::lock_guard lock(sh->mu);
    for (auto& b : sh->blocks) {
      b.rows = b.scores = 0;
      std::fill(b.counts.begin(), b.counts.end(), 0);
    }
    sh->current = 0;
    sh->observed = sh->ignored = 0;
  }
}

double DriftSnapshot::max_psi() const noexcept {
  double m = 0;
  for (const auto& f : features) m = std::max(m, f.psi);
  return m;
}

std::vector<FeatureDrift> DriftSnapshot::top(std::size_t k) const {
  std::vector<FeatureDrift> out = features;
  std::stable_sort(out.begin(), out.end(), [](const FeatureDrift& a, const FeatureDrift& b) { return a.psi > b.psi; });
  if (out.size() > k) out.resize(k);
  return out;
}

std::string DriftSnapshot::to_json() const {
  nlohmann::json arr = nlohmann::json::array();
  for (const FeatureDrift& f : top()) {
    arr.push_back({{"name", f.name},
                   {"index", f.index},
                   {"psi", f.psi},
                   {"missing_rate", f.missing_rate},
                   {"reference_missing_rate", f.reference_missing_rate}});
  }
  return nlohmann::json{{"features", std::move(arr)}}.dump();
}

std::vector<DriftGauge> DriftSnapshot::gauges() const {
  std::vector<DriftGauge> g;
  g.reserve(2 * features.size() + 3);
  for (const FeatureDrift& f : features) {
    g.push_back({"keel_drift_psi", f.name, f.psi});
    g.push_back({"keel_drift_missing_rate", f.name, f.missing_rate});
  }
  g.push_back({"keel_drift_max_psi", "", max_psi()});
  g.push_back({"keel_drift_window_rows", "", static_cast<double>(rows)});
  if (score_psi) g.push_back({"keel_drift_score_psi", "", *score_psi});
  return g;
}

Result<DriftSnapshot> measure_drift(const Profile& reference, RowSource& source,
                                    const std::function<void(std::uint64_t, double)>& progress, std::size_t chunk_rows) {
  const std::size_t n = source.num_features();
  if (n != reference.features.size()) {
    return invalid_input(fmt::format("drift: the input has {} features, the profile {}", n, reference.features.size()));
  }
  DriftOptions opts;
  opts.window_rows = 0;
  opts.shards = 1;
  DriftMonitor monitor(reference, opts);
  chunk_rows = std::max<std::size_t>(chunk_rows, 1);
  std::vector<float> buf(chunk_rows * n);
  std::uint64_t rows = 0;
  for (;;) {
    Result<std::size_t> got = source.read(buf, chunk_rows);
    if (!got.ok()) return got.status();
    if (*got == 0) break;
    monitor.observe(std::span<const float>(buf.data(), *got * n), *got, {});
    rows += *got;
    if (progress) progress(rows, source.progress());
  }
  return monitor.snapshot();
}

}  // namespace keel
