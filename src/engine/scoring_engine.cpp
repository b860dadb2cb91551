// Accessors, metrics and health of ScoringEngine (the request path is in
// request_state.hpp and the stage_*.cpp files).

#include "engine/engine_impl.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

namespace keel {

namespace detail {

Scratch& scratch() noexcept {
  thread_local Scratch s;
  return s;
}

std::size_t outcome_index(StatusCode c) noexcept {
  const auto i = static_cast<std::size_t>(c);
  return i < kNumCodes ? 3 + i : 3 + static_cast<std::size_t>(StatusCode::kInternal);
}

}  // namespace detail

ScoringEngine::ScoringEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ScoringEngine::~ScoringEngine() { stop_watching(); }

const std::string& ScoringEngine::name() const noexcept { return impl_->name; }
std::size_t ScoringEngine::num_features() const noexcept { return impl_->in_width; }
std::size_t ScoringEngine::width() const noexcept { return impl_->out_width; }
MetricsRegistry& ScoringEngine::metrics() noexcept { return *impl_->registry; }
std::string ScoringEngine::metrics_text() const { return impl_->registry->render(); }

std::shared_ptr<const FallbackChain> ScoringEngine::chain() const {
  auto s = impl_->current();
  return std::shared_ptr<const FallbackChain>(s, s->chain.get());
}

ModelPtr ScoringEngine::model(std::string_view model_name) const {
  std::lock_guard lock(impl_->reload_mu);
  const std::size_t i = impl_->slot_index(model_name);
  return i < impl_->slots.size() ? impl_->slots[i].current : nullptr;
}

Result<Labels> ScoringEngine::labels(const Response& response) const {
  return impl_->post.labels(response.scores);
}

std::size_t ScoringEngine::Impl::slot_index(std::string_view n) const noexcept {
  for (std::size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].name == n) return i;
  }
  return slots.size();
}

void ScoringEngine::Impl::record(const Result<Response>& r) noexcept {
  if (r.ok()) {
    const std::size_t i = r->cache_hit  ? detail::kOutcomeCacheHit
                          : r->degraded ? detail::kOutcomeDegraded
                                        : detail::kOutcomeOk;
    requests[i]->inc();
    return;
  }
  requests[detail::outcome_index(r.code())]->inc();
  // The caller's mistakes are not the service's errors: log those at info.
  const StatusCode c = r.code();
  const LogLevel level = c == StatusCode::kInvalidInput || c == StatusCode::kNotFound || c == StatusCode::kConflict
                             ? LogLevel::kInfo
                             : LogLevel::kError;
  if (log->enabled(level)) {
    const Status st = r.status();
    log->emit(level, "request_failed",
              {{"engine", name}, {"code", to_string(st.code())}, {"message", st.message()}}, to_string(st.code()));
  }
}

// --------------------------------------------------------------------------
// Metrics

void ScoringEngine::Impl::register_metrics() {
  MetricsRegistry& reg = *registry;
  const MetricLabels eng{{"engine", name}};
  auto with = [&](std::initializer_list<std::pair<std::string, std::string>> extra) {
    MetricLabels l = eng;
    l.insert(l.end(), extra.begin(), extra.end());
    return l;
  };
  static constexpr const char* kReq = "keel_requests_total";
  static constexpr const char* kReqHelp = "score() calls by outcome (ok, degraded, cache_hit, or the error code).";
  requests[detail::kOutcomeOk] = &reg.counter(kReq, kReqHelp, with({{"outcome", "ok"}}));
  requests[detail::kOutcomeDegraded] = &reg.counter(kReq, kReqHelp, with({{"outcome", "degraded"}}));
  requests[detail::kOutcomeCacheHit] = &reg.counter(kReq, kReqHelp, with({{"outcome", "cache_hit"}}));
  for (std::size_t c = 1; c < detail::kNumCodes; ++c) {
    requests[3 + c] =
        &reg.counter(kReq, kReqHelp, with({{"outcome", std::string(to_string(static_cast<StatusCode>(c)))}}));
  }
  requests[3] = requests[detail::kOutcomeOk];  // kOk never reaches record() as an error
  latency = &reg.histogram("keel_request_duration_seconds", "score() latency, entry to exit.",
                           default_latency_buckets(), eng);
  batch_latency = &reg.histogram("keel_batch_duration_seconds", "score_batch() latency, entry to exit.",
                                 default_latency_buckets(), eng);
  explain_latency = &reg.histogram("keel_explain_duration_seconds",
                                   "Reason codes of one call that asked for them (contributions and ranking).",
                                   default_latency_buckets(), eng);
  static constexpr const char* kRows = "keel_batch_rows_total";
  static constexpr const char* kRowsHelp = "Rows scored by score_batch(), by outcome.";
  batch_rows[0] = &reg.counter(kRows, kRowsHelp, with({{"outcome", "ok"}}));
  batch_rows[1] = &reg.counter(kRows, kRowsHelp, with({{"outcome", "degraded"}}));
  batch_rows[2] = &reg.counter(kRows, kRowsHelp, with({{"outcome", "failed"}}));
  anomalies = &reg.counter("keel_anomalies_total", "Rows flagged by validation or the anomaly detector.", eng);
  anomalies_rejected = &reg.counter("keel_anomalies_rejected_total", "Anomalous rows rejected by policy.", eng);
  anomalies_routed = &reg.counter("keel_anomalies_routed_total", "Anomalous rows routed past the primary.", eng);
  validation_fixed = &reg.counter("keel_validation_fixed_total", "Rows clamped or imputed by the validator.", eng);
  reloads_ok = &reg.counter("keel_reloads_total", "Model reloads by result.", with({{"result", "ok"}}));
  reloads_failed = &reg.counter("keel_reloads_total", "Model reloads by result.", with({{"result", "failed"}}));

  for (const detail::StageTemplate& st : stages) {
    stage_answers.push_back(&reg.counter("keel_stage_answers_total", "Answers by chain stage.",
                                         with({{"stage", st.name}})));
    std::array<Counter*, detail::kNumCodes> per{};
    for (std::size_t c = 1; c < detail::kNumCodes; ++c) {
      per[c] = &reg.counter("keel_stage_failures_total", "Chain stage failures by stage and code.",
                            with({{"stage", st.name}, {"code", std::string(to_string(static_cast<StatusCode>(c)))}}));
    }
    per[0] = per[static_cast<std::size_t>(StatusCode::kInternal)];
    stage_failures.push_back(per);
    if (st.is_default) continue;
    // Policies outlive reloads (the templates own them), so their counters
    // are monotonic across swaps.
    if (auto br = st.options.breaker) {
      reg.gauge_fn("keel_breaker_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 forced open, 4 "
                   "disabled.", with({{"stage", st.name}}),
                   [br] { return static_cast<double>(br->state()); });
      reg.counter_fn("keel_breaker_rejections_total", "Calls refused by an open breaker.", with({{"stage", st.name}}),
                     [br] { return static_cast<double>(br->stats().rejections); });
    }
    if (auto rp = st.options.retry) {
      reg.counter_fn("keel_retries_total", "Retries granted by the stage's retry policy.", with({{"stage", st.name}}),
                     [rp] { return static_cast<double>(rp->stats().retries); });
    }
    if (auto bh = st.options.bulkhead) {
      reg.gauge_fn("keel_bulkhead_in_flight", "Calls in flight through the stage's bulkhead.",
                   with({{"stage", st.name}}), [bh] { return static_cast<double>(bh->stats().in_flight); });
      reg.counter_fn("keel_bulkhead_rejections_total", "Calls shed by the stage's bulkhead.",
                     with({{"stage", st.name}}), [bh] { return static_cast<double>(bh->stats().rejections); });
    }
  }
  if (cache->enabled()) {
    auto c = cache;
    reg.counter_fn("keel_cache_hits_total", "Result cache hits.", eng, [c] { return double(c->stats().hits); });
    reg.counter_fn("keel_cache_misses_total", "Result cache misses.", eng, [c] { return double(c->stats().misses); });
    reg.counter_fn("keel_cache_evictions_total", "Result cache evictions (bounds).", eng,
                   [c] { return double(c->stats().evictions); });
    reg.gauge_fn("keel_cache_entries", "Result cache entries.", eng, [c] { return double(c->stats().entries); });
  }
  if (drift) {
    // One family per drift gauge name, its series read from one snapshot.
    auto d = drift;
    std::vector<std::string> names;
    for (const DriftGauge& g : d->snapshot().gauges()) {
      if (std::find(names.begin(), names.end(), g.name) == names.end()) names.push_back(g.name);
    }
    // The score's PSI is absent from a snapshot until a score is observed;
    // its family exists from the start all the same.
    if (d->has_score_reference() &&
        std::find(names.begin(), names.end(), "keel_drift_score_psi") == names.end()) {
      names.emplace_back("keel_drift_score_psi");
    }
    for (const std::string& gname : names) {
      reg.gauge_family_fn(gname, "Input drift against the training profile (PSI, missing rates).",
                          [d, gname, eng] {
                            std::vector<std::pair<MetricLabels, double>> series;
                            for (const DriftGauge& g : d->snapshot().gauges()) {
                              if (g.name != gname) continue;
                              MetricLabels l = eng;
                              if (!g.feature.empty()) l.emplace_back("feature", g.feature);
                              series.emplace_back(std::move(l), g.value);
                            }
                            return series;
                          });
    }
  }
  auto idem = idempotency;
  reg.counter_fn("keel_idempotent_replays_total", "Requests answered from the idempotency store.", eng,
                 [idem] { return double(idem->stats().replayed + idem->stats().joined); });
  reg.counter_fn("keel_idempotency_conflicts_total", "Request ids reused with another payload.", eng,
                 [idem] { return double(idem->stats().conflicts); });
  for (std::size_t i = 0; i < slots.size(); ++i) {
    // The registry may outlive the engine: capture the shared cell, not this.
    auto v = slots[i].version_cell;
    reg.gauge_fn("keel_model_version", "Version of the model in each slot.", with({{"model", slots[i].name}}),
                 [v] { return static_cast<double>(v->load(std::memory_order_relaxed)); });
  }
  // The content identity of each slot's model, as an info metric (value 1).
  {
    std::vector<std::pair<std::string, std::shared_ptr<detail::ContentCell>>> cells;
    for (const auto& sl : slots) cells.emplace_back(sl.name, sl.content_cell);
    reg.gauge_family_fn("keel_model_info", "The model in each slot: its id and content identity (value 1).",
                        [cells, eng] {
                          std::vector<std::pair<MetricLabels, double>> series;
                          for (const auto& [slot, cell] : cells) {
                            MetricLabels l = eng;
                            const auto [id, content] = cell->get();
                            l.emplace_back("model", slot);
                            l.emplace_back("id", id);
                            l.emplace_back("content_id", content.empty() ? std::string("none") : content.hex());
                            series.emplace_back(std::move(l), 1.0);
                          }
                          return series;
                        });
  }
}

// --------------------------------------------------------------------------
// Health

Health ScoringEngine::health() const {
  const Impl& m = *impl_;
  Health h;
  bool all_loaded = true;
  {
    std::lock_guard lock(m.reload_mu);
    for (const auto& s : m.slots) {
      ComponentHealth c;
      c.name = "model:" + s.name;
      c.ok = s.current != nullptr;
      all_loaded = all_loaded && c.ok;
      c.state = c.ok ? "loaded" : "missing";
      if (s.current) {
        c.detail = fmt::format("id={} version={} content_id={} reloads={}", s.current->info().id,
                               s.current->info().version, s.current->info().content_id.hex(), s.reloads);
      }
      if (!s.last_error.empty()) {
        c.state = "loaded, last reload failed";
        c.detail += fmt::format(" failed_reloads={} last_error={}", s.reload_failures, s.last_error);
      }
      h.components.push_back(std::move(c));
      // A model with parts of its own (a RemoteModel's endpoints): shown,
      // not counted toward ready (its stage's breaker and the chain are).
      if (s.current) {
        if (auto part = s.current->component_health()) h.components.push_back(std::move(*part));
      }
    }
  }
  bool can_answer = false;
  for (const auto& st : m.stages) {
    ComponentHealth c;
    c.name = "stage:" + st.name;
    if (st.is_default) {
      c.state = "default";
      can_answer = true;
    } else {
      const BreakerState bs = st.options.breaker ? st.options.breaker->state() : BreakerState::kClosed;
      c.state = std::string(to_string(bs));
      c.ok = bs != BreakerState::kOpen && bs != BreakerState::kForcedOpen;
      can_answer = can_answer || c.ok;
      if (st.options.bulkhead) {
        const BulkheadStats b = st.options.bulkhead->stats();
        c.detail = fmt::format("bulkhead in_flight={} limit={} rejections={}", b.in_flight, b.limit, b.rejections);
      }
    }
    h.components.push_back(std::move(c));
  }
  if (m.cache->enabled()) {
    const CacheStats cs = m.cache->stats();
    h.components.push_back({"cache", true, "on",
                            fmt::format("entries={} bytes={} hits={} misses={} evictions={}", cs.entries, cs.bytes,
                                        cs.hits, cs.misses, cs.evictions)});
  }
  const IdempotencyStats is = m.idempotency->stats();
  h.components.push_back({"idempotency", true, "on",
                          fmt::format("entries={} replayed={} joined={} conflicts={}", is.entries, is.replayed,
                                      is.joined, is.conflicts)});
  h.ready = all_loaded && can_answer;
  return h;
}

std::string Health::to_json() const {
  nlohmann::json j;
  j["live"] = live;
  j["ready"] = ready;
  j["components"] = nlohmann::json::array();
  for (const auto& c : components) {
    j["components"].push_back({{"name", c.name}, {"ok", c.ok}, {"state", c.state}, {"detail", c.detail}});
  }
  return j.dump();
}

}  // namespace keel
