#include "net/server/engine_adapter.hpp"

#include <keel/engine/config.hpp>
#include <keel/engine/scoring_engine.hpp>

#include <cmath>

namespace keel::net {

ServedModel::ServedModel() = default;
ServedModel::~ServedModel() = default;

bool ServedModel::ready() const { return engine->health().ready; }

Status ServedModel::score(const oip::InferRequest& request, std::string_view idempotency_key, Deadline deadline,
                          oip::InferResult& result) const {
  result.rows = request.rows;
  result.width = width;
  result.one_dimensional = request.one_dimensional;
  result.row_errors.clear();
  result.degraded = result.cache_hit = result.anomaly = false;
  result.stage.clear();
  result.degraded_reason.clear();
  if (request.rows == 1) {
    // One row takes score(): it carries the idempotency key and the full
    // answer (stage, reason, cache hit, anomaly).
    Request r;
    r.id = std::string(idempotency_key);
    r.features = request.values;
    r.deadline = deadline;
    auto res = engine->score(r);
    if (!res) return res.status();
    const Response& resp = *res;
    result.scores.assign(resp.scores.begin(), resp.scores.end());
    result.width = resp.scores.size();
    result.degraded = resp.degraded;
    result.stage = resp.stage;
    result.degraded_reason = resp.degraded_reason;
    result.cache_hit = resp.cache_hit;
    result.anomaly = resp.anomaly;
    return {};
  }
  // Today's score_batch takes no idempotency key; a batch is always computed.
  thread_local BatchResult batch;
  BatchView view{request.values, request.rows, request.cols, 0};
  if (Status s = engine->score_batch(view, batch, deadline); !s) return s;
  if (batch.failed == batch.rows && batch.rows > 0) {
    Status first = batch.status[0];
    return first.with_context("row 0");
  }
  result.width = batch.width;
  result.scores.assign(batch.scores.begin(), batch.scores.end());
  std::size_t degraded_rows = 0;
  for (std::size_t r = 0; r < batch.rows; ++r) {
    if (!batch.status[r]) {
      result.row_errors.push_back({r, batch.status[r]});
      continue;
    }
    if (result.stage.empty() && batch.stage[r] < batch.stage_names.size()) result.stage = batch.stage_names[batch.stage[r]];
    if (batch.anomaly[r]) result.anomaly = true;
  }
  degraded_rows = batch.degraded;
  if (degraded_rows > 0) {
    result.degraded = true;
    result.degraded_reason = std::to_string(degraded_rows) + " of " + std::to_string(batch.rows) +
                             " rows answered by a fallback stage";
  }
  return {};
}

namespace detail {

std::unique_ptr<ServedModel> load_served_model(const std::string& name, const std::string& version,
                                               const std::filesystem::path& source, const std::string& engine_name,
                                               const RepositoryOptions& options) {
  namespace fs = std::filesystem;
  auto m = std::make_unique<ServedModel>();
  m->name = name;
  m->version = version;
  m->source = source;
  ConfigOptions copts;
  copts.metrics = options.metrics;
  if (fs::is_directory(source)) {
    const fs::path cfg = source / "engine.json";
    if (fs::exists(cfg)) {
      m->engine = builder_from_config(cfg, copts).name(engine_name).build();
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
      EngineBuilder b;
      b.name(engine_name).model_file("primary", file).stage("primary");
      if (options.metrics) b.metrics(options.metrics);
      m->engine = b.build();
    }
  } else {
    EngineBuilder b;
    b.name(engine_name).model_file("primary", source).stage("primary");
    if (options.metrics) b.metrics(options.metrics);
    m->engine = b.build();
  }
  m->features = m->engine->num_features();
  m->width = m->engine->width();
  return m;
}

std::size_t reload_changed(const ServedModel& model) { return model.engine->reload_changed(); }
void watch(const ServedModel& model, Duration interval) { model.engine->watch(interval); }

}  // namespace detail
}  // namespace keel::net
