#include <keel/core/status.hpp>
#include <keel/engine/metrics.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <variant>

namespace keel {

namespace detail {
std::size_t metric_cell() noexcept {
  static std::atomic<std::size_t> next{0};
  thread_local const std::size_t cell = next.fetch_add(1, std::memory_order_relaxed) % kMetricCells;
  return cell;
}
}  // namespace detail

std::uint64_t Counter::value() const noexcept {
  std::uint64_t total = 0;
  for (const Cell& c : cells_) total += c.v.load(std::memory_order_relaxed);
  return total;
}

HistogramMetric::HistogramMetric(std::span<const double> upper_bounds) : bounds_(upper_bounds.begin(), upper_bounds.end()) {
  if (bounds_.empty()) throw Error(invalid_input("histogram: at least one bucket bound is needed"));
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1])) {
      throw Error(invalid_input(fmt::format("histogram: bound [{}] = {} is not finite and ascending", i, bounds_[i])));
    }
  }
  constexpr std::size_t kPerLine = 64 / sizeof(std::atomic<std::uint64_t>);
  stride_ = (bounds_.size() + 1 + kPerLine - 1) / kPerLine * kPerLine;
  counts_ = std::make_unique<std::atomic<std::uint64_t>[]>(stride_ * detail::kMetricCells);
}

void HistogramMetric::observe(double v) noexcept {
  // Buckets are few (about 20): a linear scan beats a binary search here.
  std::size_t b = 0;
  while (b < bounds_.size() && !(v <= bounds_[b])) ++b;
  const std::size_t cell = detail::metric_cell();
  counts_[cell * stride_ + b].fetch_add(1, std::memory_order_relaxed);
  if (!std::isnan(v)) sums_[cell].v.fetch_add(v, std::memory_order_relaxed);
}

HistogramMetric::Snapshot HistogramMetric::snapshot() const {
  Snapshot s;
  s.upper_bounds = bounds_;
  std::vector<std::uint64_t> per(bounds_.size() + 1, 0);
  for (std::size_t c = 0; c < detail::kMetricCells; ++c) {
    for (std::size_t b = 0; b < per.size(); ++b) per[b] += counts_[c * stride_ + b].load(std::memory_order_relaxed);
    s.sum += sums_[c].v.load(std::memory_order_relaxed);
  }
  s.cumulative.resize(per.size());
  std::uint64_t run = 0;
  for (std::size_t b = 0; b < per.size(); ++b) s.cumulative[b] = run += per[b];
  s.count = run;
  return s;
}

std::span<const double> default_latency_buckets() noexcept {
  static constexpr double kBounds[] = {1e-6,   2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
                                       5e-3,   1e-2,   2.5e-2, 5e-2, 0.1,    0.25, 0.5,  1.0,    2.5,  5.0,  10.0};
  return kBounds;
}

namespace {

enum Type { kCounter, kGauge, kHistogram };
constexpr std::string_view kTypeNames[] = {"counter", "gauge", "histogram"};

bool valid_name(std::string_view n, bool allow_colon) noexcept {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

void append_escaped(std::string& out, std::string_view v, bool quote) {
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    fmt::format_to(std::back_inserter(out), "{}", v);
  }
}

// `{a="x",b="y"}` with an optional extra label (histogram's le).
void append_labels(std::string& out, const MetricLabels& labels, std::string_view extra_name = {},
                   std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  auto one = [&](std::string_view k, std::string_view v) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    append_escaped(out, v, true);
    out += '"';
  };
  for (const auto& [k, v] : labels) one(k, v);
  if (!extra_name.empty()) one(extra_name, extra_value);
  out += '}';
}

}  // namespace

struct MetricsRegistry::Family {
  std::string name;
  std::string help;
  Type type;
  struct Series {
    MetricLabels labels;
    std::variant<std::unique_ptr<Counter>, std::unique_ptr<Gauge>, std::unique_ptr<HistogramMetric>,
                 std::function<double()>, MetricsRegistry::SeriesFn>
        metric;
  };
  std::vector<Series> series;

  Series* find(const MetricLabels& labels) {
    for (auto& s : series) {
      if (s.labels == labels) return &s;
    }
    return nullptr;
  }
};

MetricsRegistry::MetricsRegistry(std::size_t max_series_per_family) : max_series_(max_series_per_family) {}
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Family& MetricsRegistry::family(std::string_view name, std::string_view help, int type) {
  if (!valid_name(name, true)) throw Error(invalid_input(fmt::format("metric name '{}' is not valid", name)));
  for (auto& f : families_) {
    if (f->name == name) {
      if (f->type != type) {
        throw Error(invalid_input(fmt::format("metric '{}' is already registered as a {}", name,
                                              kTypeNames[f->type])));
      }
      return *f;
    }
  }
  families_.push_back(std::make_unique<Family>(Family{std::string(name), std::string(help), Type(type), {}}));
  return *families_.back();
}

namespace {

void check_labels(std::string_view name, const MetricLabels& labels, std::size_t existing, std::size_t max) {
  for (const auto& [k, v] : labels) {
    if (!valid_name(k, false) || k.starts_with("__") || k == "le") {
      throw Error(invalid_input(fmt::format("metric '{}': label name '{}' is not valid", name, k)));
    }
  }
  if (existing >= max) {
    throw Error(invalid_input(fmt::format("metric '{}': more than {} label sets (keep labels low-cardinality)",
                                          name, max)));
  }
}

template <class T, class... Args>
T& get_or_add(auto& fam, MetricLabels labels, std::size_t max, Args&&... args) {
  if (auto* s = fam.find(labels)) {
    if (auto* p = std::get_if<std::unique_ptr<T>>(&s->metric)) return **p;
    throw Error(invalid_input(fmt::format("metric '{}': label set already bound to a callback", fam.name)));
  }
  check_labels(fam.name, labels, fam.series.size(), max);
  auto m = std::make_unique<T>(std::forward<Args>(args)...);
  T& ref = *m;
  fam.series.push_back({std::move(labels), std::move(m)});
  return ref;
}

}  // namespace

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help, MetricLabels labels) {
  std::lock_guard lock(mu_);
  return get_or_add<Counter>(family(name, help, kCounter), std::move(labels), max_series_);
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, MetricLabels labels) {
  std::lock_guard lock(mu_);
  return get_or_add<Gauge>(family(name, help, kGauge), std::move(labels), max_series_);
}

HistogramMetric& MetricsRegistry::histogram(std::string_view name, std::string_view help,
                                      std::span<const double> upper_bounds, MetricLabels labels) {
  std::lock_guard lock(mu_);
  return get_or_add<HistogramMetric>(family(name, help, kHistogram), std::move(labels), max_series_, upper_bounds);
}

void MetricsRegistry::gauge_fn(std::string_view name, std::string_view help, MetricLabels labels,
                               std::function<double()> fn) {
  std::lock_guard lock(mu_);
  Family& f = family(name, help, kGauge);
  if (auto* s = f.find(labels)) {
    s->metric = std::move(fn);  // re-binding replaces (a reloaded component)
    return;
  }
  check_labels(f.name, labels, f.series.size(), max_series_);
  f.series.push_back({std::move(labels), std::move(fn)});
}

void MetricsRegistry::counter_fn(std::string_view name, std::string_view help, MetricLabels labels,
                                 std::function<double()> fn) {
  std::lock_guard lock(mu_);
  Family& f = family(name, help, kCounter);
  if (auto* s = f.find(labels)) {
    s->metric = std::move(fn);
    return;
  }
  check_labels(f.name, labels, f.series.size(), max_series_);
  f.series.push_back({std::move(labels), std::move(fn)});
}

void MetricsRegistry::gauge_family_fn(std::string_view name, std::string_view help, SeriesFn fn) {
  std::lock_guard lock(mu_);
  Family& f = family(name, help, kGauge);
  f.series.clear();  // the callback owns the family's series
  f.series.push_back({{}, std::move(fn)});
}

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mu_);
  std::string out;
  out.reserve(4096);
  for (const auto& f : families_) {
    out += "# HELP ";
    out += f->name;
    out += ' ';
    append_escaped(out, f->help, false);
    out += "\n# TYPE ";
    out += f->name;
    out += ' ';
    out += kTypeNames[f->type];
    out += '\n';
    for (const auto& s : f->series) {
      if (const auto* h = std::get_if<std::unique_ptr<HistogramMetric>>(&s.metric)) {
        const HistogramMetric::Snapshot snap = (*h)->snapshot();
        for (std::size_t b = 0; b < snap.cumulative.size(); ++b) {
          std::string le;
          if (b < snap.upper_bounds.size()) {
            append_number(le, snap.upper_bounds[b]);
          } else {
            le = "+Inf";
          }
          out += f->name;
          out += "_bucket";
          append_labels(out, s.labels, "le", le);
          fmt::format_to(std::back_inserter(out), " {}\n", snap.cumulative[b]);
        }
        out += f->name;
        out += "_sum";
        append_labels(out, s.labels);
        out += ' ';
        append_number(out, snap.sum);
        out += '\n';
        out += f->name;
        out += "_count";
        append_labels(out, s.labels);
        fmt::format_to(std::back_inserter(out), " {}\n", snap.count);
        continue;
      }
      if (const auto* many = std::get_if<SeriesFn>(&s.metric)) {
        std::vector<std::pair<MetricLabels, double>> series;
        try {
          series = (*many)();
        } catch (...) {
          series.clear();
        }
        for (const auto& [labels, value] : series) {
          out += f->name;
          append_labels(out, labels);
          out += ' ';
          append_number(out, value);
          out += '\n';
        }
        continue;
      }
      out += f->name;
      append_labels(out, s.labels);
      out += ' ';
      if (const auto* c = std::get_if<std::unique_ptr<Counter>>(&s.metric)) {
        fmt::format_to(std::back_inserter(out), "{}", (*c)->value());
      } else if (const auto* g = std::get_if<std::unique_ptr<Gauge>>(&s.metric)) {
        append_number(out, (*g)->value());
      } else {
        double v = 0.0;
        try {
          v = std::get<std::function<double()>>(s.metric)();
        } catch (...) {
          v = std::nan("");
        }
        append_number(out, v);
      }
      out += '\n';
    }
  }
  return out;
}

}  // namespace keel
