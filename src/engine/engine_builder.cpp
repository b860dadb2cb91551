// EngineBuilder: checks a composition and builds the ScoringEngine.

#include "engine/engine_impl.hpp"

#include <fmt/format.h>

namespace keel {

EngineBuilder::EngineBuilder() : impl_(std::make_unique<ScoringEngine::Impl>()) {}
EngineBuilder::~EngineBuilder() = default;
EngineBuilder::EngineBuilder(EngineBuilder&&) noexcept = default;
EngineBuilder& EngineBuilder::operator=(EngineBuilder&&) noexcept = default;

EngineBuilder& EngineBuilder::name(std::string name) {
  impl_->name = std::move(name);
  return *this;
}
EngineBuilder& EngineBuilder::clock(Clock& clock) {
  impl_->clock = &clock;
  return *this;
}

namespace {

detail::ModelSlot& add_slot(ScoringEngine::Impl& m, std::string slot) {
  for (const auto& s : m.slots) {
    if (s.name == slot) throw Error(invalid_input(fmt::format("model '{}' is declared twice", slot)));
  }
  m.slots.emplace_back();
  m.slots.back().name = std::move(slot);
  return m.slots.back();
}

}  // namespace

EngineBuilder& EngineBuilder::model(std::string slot, ModelPtr model, std::filesystem::path path, LoadOptions opts) {
  if (!model) throw Error(invalid_input(fmt::format("model '{}': null", slot)));
  detail::ModelSlot& s = add_slot(*impl_, std::move(slot));
  s.current = std::move(model);
  s.load_options = std::move(opts);
  if (!path.empty()) {
    std::error_code ec;
    s.seen_mtime = std::filesystem::last_write_time(path, ec);
    s.path = std::move(path);
  }
  return *this;
}
EngineBuilder& EngineBuilder::model_file(std::string slot, std::filesystem::path path, LoadOptions opts) {
  detail::ModelSlot& s = add_slot(*impl_, std::move(slot));
  s.path = std::move(path);
  s.load_options = std::move(opts);
  return *this;
}
EngineBuilder& EngineBuilder::loader(ModelLoaderFn loader) {
  impl_->loader = std::move(loader);
  return *this;
}
EngineBuilder& EngineBuilder::stage(std::string slot, StageOptions options, std::string stage_name) {
  detail::StageTemplate t;
  t.name = stage_name.empty() ? slot : std::move(stage_name);
  t.slot = impl_->slots.size();  // resolved in build(); remember the slot's name meanwhile
  t.constant.clear();
  t.options = std::move(options);
  pending_slots_.push_back(std::move(slot));
  impl_->stages.push_back(std::move(t));
  return *this;
}
EngineBuilder& EngineBuilder::default_scores(std::vector<float> scores, std::string stage_name) {
  detail::StageTemplate t;
  t.name = std::move(stage_name);
  t.is_default = true;
  t.constant = std::move(scores);
  pending_slots_.emplace_back();
  impl_->stages.push_back(std::move(t));
  return *this;
}
EngineBuilder& EngineBuilder::validator(std::shared_ptr<const Validator> validator) {
  impl_->validator = std::move(validator);
  return *this;
}
EngineBuilder& EngineBuilder::anomaly(std::shared_ptr<const AnomalyDetector> detector) {
  impl_->anomaly = std::move(detector);
  return *this;
}
EngineBuilder& EngineBuilder::drift(std::shared_ptr<DriftMonitor> monitor) {
  impl_->drift = std::move(monitor);
  return *this;
}
EngineBuilder& EngineBuilder::preprocess(Preprocessor pre) {
  impl_->pre = std::move(pre);
  return *this;
}
EngineBuilder& EngineBuilder::postprocess(Postprocessor post) {
  impl_->post = std::move(post);
  return *this;
}
EngineBuilder& EngineBuilder::cache(std::shared_ptr<Cache> cache) {
  impl_->cache = std::move(cache);
  return *this;
}
EngineBuilder& EngineBuilder::idempotency(std::shared_ptr<IdempotencyStore> store) {
  impl_->idempotency = std::move(store);
  return *this;
}
EngineBuilder& EngineBuilder::metrics(std::shared_ptr<MetricsRegistry> registry) {
  impl_->registry = std::move(registry);
  return *this;
}
EngineBuilder& EngineBuilder::log(std::shared_ptr<EventLog> log) {
  impl_->log = std::move(log);
  return *this;
}
EngineBuilder& EngineBuilder::canary_rows(std::vector<std::vector<float>> rows) {
  impl_->canary = std::move(rows);
  return *this;
}
EngineBuilder& EngineBuilder::canary_timeout(Duration timeout) {
  if (timeout <= Duration::zero()) throw Error(invalid_input("canary_timeout: must be > 0"));
  impl_->canary_timeout = timeout;
  return *this;
}
EngineBuilder& EngineBuilder::allow_schema_change(bool allow) {
  impl_->allow_schema_change = allow;
  return *this;
}
EngineBuilder& EngineBuilder::default_timeout(Duration timeout) {
  impl_->default_timeout = timeout;
  return *this;
}
EngineBuilder& EngineBuilder::reason_codes(std::uint32_t k, ReasonMode mode) {
  impl_->reason_default = ReasonOptions{k, mode};
  return *this;
}

std::unique_ptr<ScoringEngine> EngineBuilder::build() {
  if (!impl_) throw Error(invalid_input("EngineBuilder: build() called twice"));
  ScoringEngine::Impl& m = *impl_;
  if (m.stages.empty()) throw Error(invalid_input("chain: no stages"));
  if (m.stages.front().is_default) throw Error(invalid_input("chain[0]: the first stage must be a model"));
  if (!m.loader) m.loader = [](const std::filesystem::path& p, const LoadOptions& o) { return load_model(p, o); };
  if (!m.cache) m.cache = std::make_shared<NoopCache>();
  if (!m.idempotency) m.idempotency = std::make_shared<InMemoryIdempotencyStore>(IdempotencyOptions{}, *m.clock);
  if (!m.registry) m.registry = std::make_shared<MetricsRegistry>(256);
  if (!m.log) m.log = std::make_shared<EventLog>();

  // Resolve stage -> slot.
  for (std::size_t i = 0; i < m.stages.size(); ++i) {
    detail::StageTemplate& t = m.stages[i];
    if (t.is_default) {
      if (i + 1 != m.stages.size()) throw Error(invalid_input(fmt::format("chain[{}]: a default must be last", i)));
      continue;
    }
    t.slot = m.slot_index(pending_slots_[i]);
    if (t.slot == m.slots.size()) {
      throw Error(invalid_input(fmt::format("chain[{}].model: no model named '{}'", i, pending_slots_[i])));
    }
  }
  // Load file-backed slots.
  for (auto& s : m.slots) {
    if (s.current) continue;
    std::error_code ec;
    s.seen_mtime = std::filesystem::last_write_time(s.path, ec);
    Result<ModelPtr> r = m.loader(s.path, s.load_options);
    if (!r.ok()) {
      Status st = r.status();
      throw Error(st.with_context(fmt::format("model '{}' ({})", s.name, s.path.string())));
    }
    s.current = *r;
  }
  // Widths: the primary decides; everything else must agree.
  const detail::StageTemplate& first = m.stages.front();
  const ModelInfo& pi = m.slots[first.slot].current->info();
  m.model_width = pi.num_features;
  m.out_width = pi.width(first.options.predict.output);
  if (m.pre.empty()) {
    m.in_width = m.model_width;
  } else {
    m.in_width = m.pre.input_width();
    if (m.pre.output_width() != m.model_width) {
      throw Error(invalid_input(fmt::format("preprocess: produces rows of {} values, the model expects {}",
                                            m.pre.output_width(), m.model_width)));
    }
  }
  if (m.validator && m.validator->num_features() != m.in_width) {
    throw Error(invalid_input(fmt::format("validator: checks rows of {} values, the engine takes {}",
                                          m.validator->num_features(), m.in_width)));
  }
  if (m.anomaly && m.anomaly->num_features() != m.in_width) {
    throw Error(invalid_input(fmt::format("anomaly: its profile has {} features, the engine takes {}",
                                          m.anomaly->num_features(), m.in_width)));
  }
  if (m.drift && m.drift->num_features() != m.in_width) {
    throw Error(invalid_input(fmt::format("drift: its profile has {} features, the engine takes {}",
                                          m.drift->num_features(), m.in_width)));
  }
  // Null objects for what is not configured: the stages never check.
  if (!m.validator) m.validator = std::make_shared<AcceptAllValidator>(m.in_width);
  m.screen = detail::make_screen(m.anomaly);
  m.drift_sink = detail::make_drift_sink(m.drift);
  m.plan_stages();
  for (std::size_t i = 0; i < m.slots.size(); ++i) {
    if (Status st = m.check_candidate(i, m.slots[i].current); !st.is_ok()) {
      throw Error(st.with_context(fmt::format("model '{}'", m.slots[i].name)));
    }
    const ModelInfo& info = m.slots[i].current->info();
    m.slots[i].version_cell->store(info.version);
    m.slots[i].content_cell->set(info.id, info.content_id);
  }
  m.snap.store(m.make_snapshot());  // the chain checks stage consistency (throws)
  m.register_metrics();
  return std::unique_ptr<ScoringEngine>(new ScoringEngine(std::move(impl_)));
}

}  // namespace keel
