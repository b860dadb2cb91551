#include "net/server/engine_adapter.hpp"

#include <keel/engine/config.hpp>
#include <keel/engine/scoring_engine.hpp>
#include <keel/net/remote/remote_config.hpp>
#include <keel/resilience/fault_injector.hpp>

#include <cmath>
#include <utility>

namespace keel::net {

ServedModel::ServedModel() = default;
ServedModel::~ServedModel() = default;

std::shared_ptr<ScoringEngine> ServedModel::engine() const {
  std::lock_guard lock(engine_mu_);
  return engine_;
}
void ServedModel::set_engine(std::shared_ptr<ScoringEngine> engine) const {
  std::shared_ptr<ScoringEngine> old;
  {
    std::lock_guard lock(engine_mu_);
    old = std::exchange(engine_, std::move(engine));
  }
  // `old` is released here, outside the lock (its watcher joins).
}

namespace {

// The batch's explanations into `result`, when asked (or the engine's
// "explain" default gave reason codes).
Status copy_explanations(const BatchResult& batch, const oip::InferRequest& request, oip::InferResult& result) {
  const bool tensors = request.reasons.contributions || request.reasons.leaves;
  if (batch.reason_k == 0 && !tensors) return {};
  const std::size_t n = batch.rows;
  // A replay from a shared (Redis) idempotency store has no tensors (and
  // its reasons_unavailable only with reason codes): say so rather than
  // answer without them.
  if (tensors && (batch.reasons_unavailable.size() != n || (request.reasons.contributions && batch.contrib_width == 0) ||
                  batch.leaves.size() != n * batch.leaf_width || batch.contributions.size() != n * batch.contrib_width))
    return unavailable("explanations: not kept for a request id answered before (a shared idempotency store "
                       "keeps scores and reason codes only); ask again without an idempotency key");
  result.explained = true;
  result.reasons_asked = batch.reason_k != 0;
  result.explained_by.assign(n, {});
  result.explain_unavailable.assign(n, {});
  for (std::size_t r = 0; r < n; ++r) {
    if (!batch.status[r] || batch.stage[r] == BatchResult::kNoStage) continue;  // failed: row_errors
    if (batch.reasons_unavailable[r].empty())
      result.explained_by[r] = batch.stage_names[batch.stage[r]];
    else
      result.explain_unavailable[r] = batch.reasons_unavailable[r];
  }
  result.reasons.assign(batch.reasons.begin(), batch.reasons.end());
  if (batch.reason_k != 0) result.reason_begin.assign(batch.reason_begin.begin(), batch.reason_begin.end());
  result.contrib_width = batch.contrib_width;
  result.contributions.assign(batch.contributions.begin(), batch.contributions.end());
  result.leaf_width = batch.leaf_width;
  result.leaves.assign(batch.leaves.begin(), batch.leaves.end());
  return {};
}

}  // namespace

bool ServedModel::ready() const { return engine()->health().ready; }

Status ServedModel::score(const oip::InferRequest& request, std::string_view idempotency_key, Deadline deadline,
                          oip::InferResult& result) const {
  result.rows = request.rows;
  result.width = width;
  result.one_dimensional = request.one_dimensional;
  result.row_errors.clear();
  result.degraded = result.cache_hit = result.anomaly = false;
  result.stage.clear();
  result.degraded_reason.clear();
  // One path for one row and many: score_batch with the idempotency key
  // (a retried batch replays the same per-row answers), per-row errors,
  // and the rows' flags folded into the response's fields.
  result.explained = result.reasons_asked = false;
  result.contrib_width = result.leaf_width = 0;
  if (request.reasons.k && *request.reasons.k > features)
    return invalid_input("parameters.reason_codes: " + std::to_string(*request.reasons.k) + " is more than the " +
                         std::to_string(features) + " features of model '" + name + "'");
  thread_local BatchResult batch;
  // An FP64 tensor reaches the models as doubles (BatchView::values64).
  BatchView view{request.values, request.rows, request.cols, 0, request.values64};
  if (Status s = engine()->score_batch(view, batch, deadline, {}, idempotency_key, request.reasons); !s) return s;
  if (batch.failed == batch.rows && batch.rows > 0) {
    Status first = batch.status[0];
    return batch.rows == 1 ? first : first.with_context("row 0");
  }
  result.width = batch.width;
  result.scores.assign(batch.scores.begin(), batch.scores.end());
  std::size_t first_degraded = batch.rows;
  bool all_hits = true;
  for (std::size_t r = 0; r < batch.rows; ++r) {
    if (!batch.status[r]) {
      result.row_errors.push_back({r, batch.status[r]});
      continue;
    }
    if (result.stage.empty()) result.stage = batch.stage_names[batch.stage[r]];
    if (batch.anomaly[r]) result.anomaly = true;
    if (!batch.cache_hit[r]) all_hits = false;
    if (batch.is_degraded(r) && first_degraded == batch.rows) first_degraded = r;
  }
  result.cache_hit = all_hits && batch.failed < batch.rows;  // every answered row came from the cache
  if (first_degraded < batch.rows) {
    result.degraded = true;
    result.degraded_reason = batch.rows == 1 ? batch.degraded_reason[0]
                                             : std::to_string(batch.degraded) + " of " + std::to_string(batch.rows) +
                                                   " rows answered by a fallback stage; row " +
                                                   std::to_string(first_degraded) + ": " +
                                                   batch.degraded_reason[first_degraded];
  }
  return copy_explanations(batch, request, result);
}

namespace detail {

bool engine_waits(const ScoringEngine& engine, bool remote_or_shared) {
  if (remote_or_shared) return true;
  const std::shared_ptr<const FallbackChain> chain = engine.chain();
  for (std::size_t i = 0; i < chain->size(); ++i) {
    // A fault drill's model may sleep (its latency faults).
    if (dynamic_cast<const FaultInjector*>(chain->stage(i).model.get()) != nullptr) return true;
    const StageOptions& o = chain->stage(i).options;
    if (o.isolation == Isolation::kIsolated) return true;
    if (o.retry && o.retry->config().max_attempts > 1 && o.retry->config().max_backoff > Duration::zero()) return true;
    if (o.bulkhead && o.bulkhead->config().max_wait > Duration::zero()) return true;
  }
  return false;
}

std::unique_ptr<ServedModel> load_served_model(const std::string& name, const std::string& version,
                                               const std::filesystem::path& source, const std::string& engine_name,
                                               const RepositoryOptions& options) {
  namespace fs = std::filesystem;
  auto m = std::make_unique<ServedModel>();
  m->name = name;
  m->version = version;
  m->engine_name = engine_name;
  m->source = source;
  ConfigOptions copts;
  copts.metrics = options.metrics;
  add_remote_models(copts);  // {"remote": ...} models: replicas of another zone as a chain stage
  bool remote_or_shared = false;
  for (auto& [key, make] : copts.model_factories) {
    make = [&remote_or_shared, inner = std::move(make)](std::string_view text, const std::string& path,
                                                      MetricsRegistry* metrics) {
      remote_or_shared = true;  // a model over the network
      return inner(text, path, metrics);
    };
  }
  EngineBuilder b;
  if (fs::is_directory(source)) {
    const fs::path cfg = source / "engine.json";
    if (fs::exists(cfg)) {
      m->config = cfg;
      std::error_code ec;
      m->config_built = fs::last_write_time(cfg, ec);  // before the build: a change during it is seen next time
      b = builder_from_config(cfg, copts);
      b.name(engine_name);
    } else {
      fs::path file;
      for (const auto& e : fs::directory_iterator(source)) {
        if (!e.is_regular_file() || e.path().filename().string().starts_with(".")) continue;
        if (!file.empty())
          throw Error(StatusCode::kInvalidInput, "model folder " + source.string() +
                                                     ": more than one file and no engine.json to say which is the "
                                                     "model (" + file.filename().string() + ", " +
                                                     e.path().filename().string() + ")");
        file = e.path();
      }
      if (file.empty()) throw Error(StatusCode::kInvalidInput, "model folder " + source.string() + ": no model file");
      b.name(engine_name).model_file("primary", file).stage("primary");
      if (options.metrics) b.metrics(options.metrics);
    }
  } else {
    b.name(engine_name).model_file("primary", source).stage("primary");
    if (options.metrics) b.metrics(options.metrics);
  }
  if (options.shared_state) {
    EngineSharedState shared = options.shared_state(engine_name);
    if (shared.cache || shared.idempotency) remote_or_shared = true;
    if (shared.cache) b.cache(std::move(shared.cache));
    if (shared.idempotency) b.idempotency(std::move(shared.idempotency));
  }
  std::shared_ptr<ScoringEngine> engine = b.build();
  m->features = engine->num_features();
  m->width = engine->width();
  m->waits = engine_waits(*engine, remote_or_shared);
  m->set_engine(std::move(engine));
  return m;
}

std::size_t reload_changed(const ServedModel& model) { return model.engine()->reload_changed(); }
void watch(const ServedModel& model, Duration interval) { model.engine()->watch(interval); }

Result<bool> reload_config(const ServedModel& model, const RepositoryOptions& options, Duration watch_interval) {
  namespace fs = std::filesystem;
  if (model.config.empty()) return false;
  std::error_code ec;
  const auto t = fs::last_write_time(model.config, ec);
  if (ec || t == model.config_built || t == model.config_failed) return false;
  const std::string what = "model '" + model.name + "' version " + model.version + ": " + model.config.string();
  std::unique_ptr<ServedModel> fresh;
  try {
    fresh = load_served_model(model.name, model.version, model.source, model.engine_name, options);
  } catch (const Error& e) {
    model.config_failed = t;
    return Status(e.status()).with_context(what + ": kept the engine it replaces");
  }
  if (fresh->features != model.features || fresh->width != model.width) {
    model.config_failed = t;
    return invalid_input(what + ": the new config has " + std::to_string(fresh->features) + " inputs and " +
                         std::to_string(fresh->width) + " outputs, the served one " + std::to_string(model.features) +
                         " and " + std::to_string(model.width) + "; serve it as a new version instead");
  }
  auto engine = fresh->engine();
  if (watch_interval > Duration::zero()) engine->watch(watch_interval);
  model.config_built = t;
  // Pool-only during the swap, so that a call that reads the flag after
  // this store scores the new engine by the rule of one that may wait. (A
  // call that read the old flag just before it and the engine just after
  // the swap can still be scored inline once: the race is that narrow.)
  model.waits = true;
  model.set_engine(std::move(engine));
  model.waits = fresh->waits.load();
  return true;
}

}  // namespace detail
}  // namespace keel::net
