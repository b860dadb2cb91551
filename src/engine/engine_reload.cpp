// Model snapshots, hot reload and the directory watch of ScoringEngine.

#include "engine/engine_impl.hpp"

#include <fmt/format.h>

#include <keel/model/explain.hpp>
#include <keel/resilience/detail/wait.hpp>

#include <array>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace keel {

namespace {

// A thread's remembered snapshots (SnapshotSlot::pin), replaced round robin.
struct PinnedSnapshot {
  const void* slot = nullptr;
  std::uint64_t generation = 0;
  std::weak_ptr<const detail::Snapshot> snapshot;
};
constexpr std::size_t kPinned = 4;
struct PinCache {
  std::array<PinnedSnapshot, kPinned> entries;
  std::size_t next = 0;
};
thread_local PinCache pin_cache;

}  // namespace

std::shared_ptr<const detail::Snapshot> ScoringEngine::Impl::SnapshotSlot::pin() const noexcept {
  const std::uint64_t g = gen_.load(std::memory_order_acquire);
  PinCache& c = pin_cache;
  PinnedSnapshot* mine = nullptr;
  for (PinnedSnapshot& e : c.entries) {
    if (e.slot != this) continue;
    if (e.generation == g) {
      if (std::shared_ptr<const detail::Snapshot> p = e.snapshot.lock()) return p;
    }
    mine = &e;
    break;
  }
  std::shared_ptr<const detail::Snapshot> p = load();
  if (mine == nullptr) {
    mine = &c.entries[c.next];
    c.next = (c.next + 1) % kPinned;
  }
  mine->slot = this;
  mine->generation = p ? p->generation : 0;
  mine->snapshot = p;
  return p;
}

std::shared_ptr<const detail::Snapshot> ScoringEngine::Impl::make_snapshot() const {
  auto s = std::make_shared<detail::Snapshot>();
  std::vector<Stage> built;
  built.reserve(stages.size());
  for (const detail::StageTemplate& t : stages) {
    s->stage_names.push_back(t.name);
    if (t.is_default) {
      built.push_back(default_stage(t.constant, t.name));
      s->stage_models.push_back(nullptr);
      s->model_ids.push_back(t.name);
      s->model_versions.push_back(0);
      s->content_ids.emplace_back();
      s->reason_names.emplace_back();
    } else {
      ModelPtr m = slots[t.slot].current;
      built.push_back(model_stage(t.name, m, t.options));
      s->model_ids.push_back(m->info().id);
      s->model_versions.push_back(m->info().version);
      s->content_ids.push_back(m->info().content_id);
      s->reason_names.push_back(reason_code_names(m->info()));
      s->stage_models.push_back(std::move(m));
    }
  }
  const ModelInfo& pi = s->stage_models.front()->info();
  s->cache_model = pi.content_id.empty() ? fmt::format("{}@{}", pi.id, pi.version) : pi.content_id.hex();
  s->cache_model += stages.front().options.predict.output == OutputKind::kMargin ? "/m" : "/t";
  // The cache holds calibrated scores: another calibration of the same
  // model (a new config, a replica sharing the cache) must not read them.
  if (post.calibrates()) s->cache_model += "/" + post.calibration_id();
  s->cache_model64 = s->cache_model + "/f64";
  // chain()->stats() counts across reloads, as the breaker, retry and
  // bulkhead stats it embeds (shared by every snapshot) and the engine's
  // metrics do: the new chain continues the current one's row counts.
  const std::shared_ptr<const detail::Snapshot> prev = snap.load();
  s->chain = prev ? std::make_shared<FallbackChain>(std::move(built), *clock, *prev->chain)
                  : std::make_shared<FallbackChain>(std::move(built), *clock);
  s->generation = next_model_version();
  return s;
}

namespace {

// What the canary thread and the reload share; outlives a reload that gave
// up on a hung model.
struct CanaryRun {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;  // guarded by mu
  Status status;      // guarded by mu
};

// Scores the canary rows on a thread of their own, so that a model that
// hangs costs the reload `timeout` (on the engine's clock), not forever. A
// hung model keeps its thread until it returns.
Status run_canaries(const ModelPtr& model, std::vector<std::vector<float>> rows, std::size_t width,
                    PredictOptions po, Clock& clock, Duration timeout) {
  const TimePoint start = clock.now();
  const Deadline deadline = Deadline::after(timeout, start);
  po.deadline = deadline;
  auto run = std::make_shared<CanaryRun>();
  std::thread([run, model, rows = std::move(rows), width, po] {
    Status result;
    std::vector<float> out(width);
    for (std::size_t r = 0; r < rows.size() && result.is_ok(); ++r) {
      if (Status st = model->predict_row(rows[r], out, po); !st.is_ok()) {
        result = std::move(st.with_context(fmt::format("canary row {}", r)));
        break;
      }
      for (std::size_t c = 0; c < out.size(); ++c) {
        if (!std::isfinite(out[c])) {
          result = model_error(fmt::format("canary row {}: score[{}] is {}", r, c, out[c]));
          break;
        }
      }
    }
    std::lock_guard lock(run->mu);
    run->status = std::move(result);
    run->done = true;
    run->cv.notify_all();
  }).detach();
  std::unique_lock lock(run->mu);
  if (!detail::wait_until(run->cv, lock, clock, detail::is_real_clock(clock), deadline.time(),
                          [&] { return run->done; })) {
    return deadline_exceeded(fmt::format("canary rows: no answer within {} ms (the model may hang)",
                                         std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()));
  }
  return run->status;
}

}  // namespace

Status ScoringEngine::Impl::check_candidate(std::size_t slot, const ModelPtr& candidate_ptr) const noexcept {
  try {
    const Model& candidate = *candidate_ptr;
    const ModelInfo& ci = candidate.info();
    if (ci.num_features != model_width) {
      return invalid_input(fmt::format("expects {} features, the engine feeds {}", ci.num_features, model_width));
    }
    OutputKind kind = OutputKind::kTransformed;
    for (const auto& t : stages) {
      if (!t.is_default && t.slot == slot) kind = t.options.predict.output;
    }
    if (ci.width(kind) != out_width) {
      return invalid_input(fmt::format("has {} outputs per row, the engine answers {}", ci.width(kind), out_width));
    }
    const ModelPtr& old = slots[slot].current;
    if (old && !allow_schema_change) {
      const ModelInfo& oi = old->info();
      for (std::size_t f = 0; f < ci.num_features && f < ci.features.size() && f < oi.features.size(); ++f) {
        const bool names_differ = ci.has_feature_names && oi.has_feature_names &&
                                  ci.features[f].name != oi.features[f].name;
        if (names_differ || ci.features[f].type != oi.features[f].type) {
          return invalid_input(fmt::format(
              "feature {} is '{}' ({}), the serving model's is '{}' ({}); schema changes are not allowed", f,
              ci.features[f].name, to_string(ci.features[f].type), oi.features[f].name,
              to_string(oi.features[f].type)));
        }
      }
    }
    std::vector<std::vector<float>> rows = canary;
    if (rows.empty()) {
      rows.emplace_back(model_width, 0.0f);
      rows.emplace_back(model_width, std::numeric_limits<float>::quiet_NaN());
    }
    for (std::size_t r = 0; r < rows.size(); ++r) {
      if (rows[r].size() != model_width) {
        return invalid_input(fmt::format("canary row {} has {} values, expected {}", r, rows[r].size(), model_width));
      }
    }
    PredictOptions po;
    po.output = kind;
    return run_canaries(candidate_ptr, std::move(rows), out_width, po, *clock, canary_timeout);
  } catch (...) {
    return internal_error("checking the candidate model: out of memory");
  }
}

Status ScoringEngine::Impl::reload_failed(std::size_t slot, Status st) noexcept {
  detail::ModelSlot& s = slots[slot];
  try {
    s.last_error = st.to_string();
  } catch (...) {
  }
  ++s.reload_failures;
  reloads_failed->inc();
  if (log->enabled(LogLevel::kError)) {
    log->emit(LogLevel::kError, "reload_failed", {{"engine", name}, {"model", s.name}, {"error", s.last_error}},
              s.name);
  }
  return st;
}

Result<std::uint64_t> ScoringEngine::Impl::swap_in(std::size_t slot, ModelPtr model) noexcept {
  detail::ModelSlot& s = slots[slot];
  auto fail = [&](Status st) -> Result<std::uint64_t> {
    return reload_failed(slot, std::move(st.with_context(fmt::format("reload '{}'", s.name))));
  };
  try {
    if (!model) return fail(invalid_input("no model given"));
    if (Status st = check_candidate(slot, model); !st.is_ok()) return fail(st);
    ModelPtr old = std::exchange(s.current, model);
    std::shared_ptr<const detail::Snapshot> next;
    try {
      next = make_snapshot();
    } catch (const Error& e) {
      s.current = std::move(old);
      return fail(e.status());
    }
    snap.store(std::move(next), std::memory_order_release);
    // A new model starts with a clean record: its stages' breakers close.
    // The same content again (a touched file, a re-sent model) is the same
    // dependency: its record still applies, so the breaker keeps its state.
    const bool same_model = old && !old->info().content_id.empty() &&
                            old->info().content_id == model->info().content_id;
    for (const auto& t : stages) {
      if (!same_model && !t.is_default && t.slot == slot && t.options.breaker) t.options.breaker->reset();
    }
    s.content_cell->set(model->info().id, model->info().content_id);
    ++s.reloads;
    s.last_error.clear();
    s.version_cell->store(model->info().version, std::memory_order_relaxed);
    reloads_ok->inc();
    if (log->enabled(LogLevel::kInfo)) {
      log->emit(LogLevel::kInfo, "model_reloaded",
                {{"engine", name},
                 {"model", s.name},
                 {"id", model->info().id},
                 {"old_version", old ? old->info().version : 0},
                 {"version", model->info().version}});
    }
    return model->info().version;
  } catch (...) {
    return fail(internal_error("out of memory"));
  }
}

Result<std::uint64_t> ScoringEngine::reload(std::string_view model_name, ModelPtr model) noexcept {
  Impl& m = *impl_;
  std::lock_guard lock(m.reload_mu);
  const std::size_t i = m.slot_index(model_name);
  if (i == m.slots.size()) return not_found(fmt::format("reload: no model slot '{}'", model_name));
  return m.swap_in(i, std::move(model));
}

Result<std::uint64_t> ScoringEngine::reload(std::string_view model_name, const std::filesystem::path& path) noexcept {
  Impl& m = *impl_;
  LoadOptions opts;
  {
    std::lock_guard lock(m.reload_mu);
    const std::size_t i = m.slot_index(model_name);
    if (i == m.slots.size()) return not_found(fmt::format("reload: no model slot '{}'", model_name));
    opts = m.slots[i].load_options;
  }
  std::error_code ec;
  const auto mtime = std::filesystem::last_write_time(path, ec);
  // Load aside, outside the lock: requests keep flowing on the old model.
  Result<ModelPtr> loaded = internal_error("not loaded");
  try {
    loaded = m.loader(path, opts);
  } catch (const std::exception& e) {
    loaded = model_error(fmt::format("loader threw: {}", e.what()));
  }
  std::lock_guard lock(m.reload_mu);
  const std::size_t i = m.slot_index(model_name);
  detail::ModelSlot& s = m.slots[i];
  if (!ec) s.failed_mtime = mtime;
  if (!loaded.ok()) {
    Status st = loaded.status();
    return m.reload_failed(i, std::move(st.with_context(fmt::format("reload '{}' from '{}'", s.name,
                                                                    path.string()))));
  }
  Result<std::uint64_t> r = m.swap_in(i, *loaded);
  if (r.ok()) {
    s.path = path;
    if (!ec) s.seen_mtime = mtime;
  }
  return r;
}

std::size_t ScoringEngine::reload_changed() noexcept {
  Impl& m = *impl_;
  std::vector<std::pair<std::string, std::filesystem::path>> todo;
  {
    std::lock_guard lock(m.reload_mu);
    for (const auto& s : m.slots) {
      if (s.path.empty()) continue;
      std::error_code ec;
      const auto t = std::filesystem::last_write_time(s.path, ec);
      if (!ec && t != s.seen_mtime && t != s.failed_mtime) todo.emplace_back(s.name, s.path);
    }
  }
  std::size_t swapped = 0;
  for (const auto& [slot, path] : todo) {
    if (reload(slot, path).ok()) ++swapped;
  }
  return swapped;
}

void ScoringEngine::watch(Duration interval) {
  Impl& m = *impl_;
  stop_watching();
  {
    std::lock_guard lock(m.watch_mu);
    m.watch_stop = false;
  }
  m.watcher = std::thread([this, interval] {
    Impl& im = *impl_;
    std::unique_lock lock(im.watch_mu);
    while (!im.watch_cv.wait_for(lock, interval, [&] { return im.watch_stop; })) {
      lock.unlock();
      reload_changed();
      lock.lock();
    }
  });
}

void ScoringEngine::stop_watching() noexcept {
  Impl& m = *impl_;
  {
    std::lock_guard lock(m.watch_mu);
    m.watch_stop = true;
  }
  m.watch_cv.notify_all();
  if (m.watcher.joinable()) m.watcher.join();
}

}  // namespace keel
