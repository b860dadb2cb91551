// JSON config -> EngineBuilder. Every value is read through Node, which
// knows its JSON path, so every error names where it is.

#include <keel/engine/config.hpp>
#include "engine/config_node.hpp"
#include <keel/resilience/executor.hpp>
#include <keel/resilience/fault_injector.hpp>
#include <keel/validate/profile.hpp>
#include <keel/validate/schema.hpp>
#include <keel/validate/schema_validator.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <sstream>

namespace keel {

namespace {

using json = nlohmann::json;
using detail::Node;

// Runs a constructor that may throw keel::Error and prefixes its message
// with the node's path.
template <class F>
auto at_path(const Node& n, F&& make) {
  try {
    return make();
  } catch (const Error& e) {
    Status st = e.status();
    throw Error(st.with_context(n.path()));
  }
}

std::string read_text(const std::filesystem::path& p, const Node& where) {
  std::ifstream in(p, std::ios::binary);
  if (!in) where.fail(fmt::format("cannot read '{}'", p.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json parse_json(std::string_view text, std::string_view what) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(invalid_input(fmt::format("{}: not valid JSON: {}", what, e.what())));
  } catch (const json::exception& e) {  // e.g. out_of_range: a number beyond double (1e400)
    throw Error(invalid_input(fmt::format("{}: not valid JSON: {}", what, e.what())));
  }
}

struct Context {
  std::filesystem::path base;
  Clock* clock = &system_clock();
  std::map<std::string, ModelPtr> models;
  std::vector<std::string> model_order;
  std::vector<std::string> input_names;  // may be empty
  std::size_t model_width = 0;

  [[nodiscard]] std::filesystem::path resolve(const std::string& p) const {
    std::filesystem::path path(p);
    return path.is_absolute() ? path : base / path;
  }
};

// A model's "fault": a FaultInjector's settings (tests and chaos drills).
std::pair<FaultConfig, std::uint64_t> parse_fault(const Node& f, Duration max_wait) {
  f.keys({"enabled", "error_rate", "error_code", "nan_rate", "hang_rate", "hang_limit_ms", "latency_ms",
          "latency_jitter_ms", "tail_rate", "tail_latency_ms", "seed"});
  FaultConfig c;
  std::uint64_t seed = 1;
  if (auto v = f.get("enabled")) c.enabled = v->boolean();
  if (auto v = f.get("error_rate")) c.error_rate = v->number(0.0, 1.0);
  if (auto v = f.get("error_code")) {
    c.error_code = v->choice<StatusCode>({{"model_error", StatusCode::kModelError},
                                          {"unavailable", StatusCode::kUnavailable},
                                          {"deadline_exceeded", StatusCode::kDeadlineExceeded},
                                          {"overloaded", StatusCode::kOverloaded}});
  }
  if (auto v = f.get("nan_rate")) c.nan_rate = v->number(0.0, 1.0);
  if (auto v = f.get("hang_rate")) c.hang_rate = v->number(0.0, 1.0);
  // Every wait a fault adds is bounded (ConfigOptions::max_fault_wait).
  const auto wait = [&](const char* key, Duration& out, bool allow_zero) {
    auto v = f.get(key);
    if (!v) return;
    out = v->ms(allow_zero);
    if (out > max_wait)
      v->fail(fmt::format("at most {} ms here (ConfigOptions::max_fault_wait)",
                          std::chrono::duration_cast<std::chrono::milliseconds>(max_wait).count()));
  };
  wait("hang_limit_ms", c.hang_limit, false);
  wait("latency_ms", c.latency, true);
  wait("latency_jitter_ms", c.latency_jitter, true);
  if (auto v = f.get("tail_rate")) c.tail_rate = v->number(0.0, 1.0);
  wait("tail_latency_ms", c.tail_latency, true);
  if (auto v = f.get("seed")) seed = v->uint(0, std::numeric_limits<std::uint64_t>::max());
  if (c.hang_rate > 0 && c.hang_limit == Duration::max())
    f.fail("hang_rate needs hang_limit_ms: a hang from a config file must end by itself");
  return {c, seed};
}

StageOptions parse_stage_options(const Node& n, const std::string& name, Context& ctx) {
  StageOptions o;
  if (auto b = n.get("breaker")) {
    b->keys({"window", "window_size", "minimum_calls", "failure_rate", "slow_call_rate", "slow_call_ms",
             "wait_in_open_ms", "wait_multiplier", "max_wait_in_open_ms", "half_open_probes"});
    CircuitBreakerConfig c;
    if (auto v = b->get("window")) {
      c.window = v->choice<CircuitBreakerConfig::Window>(
          {{"count", CircuitBreakerConfig::Window::kCount}, {"time", CircuitBreakerConfig::Window::kTime}});
    }
    if (auto v = b->get("window_size")) c.window_size = static_cast<std::uint32_t>(v->uint(1, 1'000'000));
    if (auto v = b->get("minimum_calls")) c.minimum_calls = static_cast<std::uint32_t>(v->uint(1, 1'000'000));
    if (auto v = b->get("failure_rate")) c.failure_rate_threshold = v->number(0.0, 1.0, true);
    if (auto v = b->get("slow_call_rate")) c.slow_call_rate_threshold = v->number(0.0, 1.0, true);
    if (auto v = b->get("slow_call_ms")) c.slow_call_duration = v->ms(false);
    if (auto v = b->get("wait_in_open_ms")) c.wait_in_open = v->ms();
    if (auto v = b->get("wait_multiplier")) c.wait_multiplier = v->number(1.0, 1000.0);
    if (auto v = b->get("max_wait_in_open_ms")) c.max_wait_in_open = v->ms();
    if (auto v = b->get("half_open_probes")) c.half_open_probes = static_cast<std::uint32_t>(v->uint(1, 65535));
    o.breaker = at_path(*b, [&] { return std::make_shared<CircuitBreaker>(name, c, *ctx.clock); });
  }
  if (auto r = n.get("retry")) {
    r->keys({"max_attempts", "initial_backoff_ms", "multiplier", "max_backoff_ms", "jitter", "seed", "budget"});
    RetryConfig c;
    if (auto v = r->get("max_attempts")) c.max_attempts = static_cast<std::uint32_t>(v->uint(1, 100));
    if (auto v = r->get("initial_backoff_ms")) c.initial_backoff = v->ms();
    if (auto v = r->get("multiplier")) c.multiplier = v->number(1.0, 100.0);
    if (auto v = r->get("max_backoff_ms")) c.max_backoff = v->ms();
    if (auto v = r->get("jitter")) {
      c.jitter = v->choice<Jitter>({{"none", Jitter::kNone},
                                    {"full", Jitter::kFull},
                                    {"equal", Jitter::kEqual},
                                    {"decorrelated", Jitter::kDecorrelated}});
    }
    if (auto v = r->get("seed")) c.seed = v->uint(0, std::numeric_limits<std::uint64_t>::max());
    std::shared_ptr<RetryBudget> budget;
    if (auto b = r->get("budget")) {
      b->keys({"ratio", "min_per_second", "max_tokens"});
      RetryBudgetConfig bc;
      if (auto v = b->get("ratio")) bc.ratio = v->number(0.0, 10.0);
      if (auto v = b->get("min_per_second")) bc.min_retries_per_second = v->number(0.0, 1e9);
      if (auto v = b->get("max_tokens")) bc.max_tokens = v->number(1.0, 1e9);
      budget = at_path(*b, [&] { return std::make_shared<RetryBudget>(bc, *ctx.clock); });
    }
    o.retry = at_path(*r, [&] { return std::make_shared<RetryPolicy>(c, budget); });
  }
  if (auto b = n.get("bulkhead")) {
    b->keys({"max_concurrent", "max_wait_ms", "adaptive"});
    BulkheadConfig c;
    if (auto v = b->get("max_concurrent")) c.max_concurrent = static_cast<std::uint32_t>(v->uint(1, 1'000'000));
    if (auto v = b->get("max_wait_ms")) c.max_wait = v->ms();
    if (auto a = b->get("adaptive")) {
      a->keys({"initial_limit", "min_limit", "max_limit", "backoff_ratio", "latency_threshold_ms"});
      AimdConfig ac;
      if (auto v = a->get("initial_limit")) ac.initial_limit = static_cast<std::uint32_t>(v->uint(1, 1'000'000));
      if (auto v = a->get("min_limit")) ac.min_limit = static_cast<std::uint32_t>(v->uint(1, 1'000'000));
      if (auto v = a->get("max_limit")) ac.max_limit = static_cast<std::uint32_t>(v->uint(1, 1'000'000));
      if (auto v = a->get("backoff_ratio")) ac.backoff_ratio = v->number(0.5, 1.0, false, true);
      if (auto v = a->get("latency_threshold_ms")) ac.latency_threshold = v->ms(false);
      c.adaptive = ac;
    }
    o.bulkhead = at_path(*b, [&] { return std::make_shared<Bulkhead>(name, c, *ctx.clock); });
  }
  if (auto v = n.get("isolated")) o.isolation = v->boolean() ? Isolation::kIsolated : Isolation::kInline;
  if (auto e = n.get("executor")) {
    e->keys({"threads", "queue"});
    ExecutorConfig c;
    if (auto v = e->get("threads")) c.threads = static_cast<unsigned>(v->uint(1, 1024));
    if (auto v = e->get("queue")) c.queue_capacity = v->uint(1, 1'000'000);
    o.executor = at_path(*e, [&] { return std::make_shared<BoundedExecutor>(c); });
  }
  if (auto v = n.get("timeout_ms")) {
    if (o.isolation != Isolation::kIsolated) v->fail("needs \"isolated\": true (an inline call cannot be timed out)");
    o.attempt_timeout = v->ms(false);
  }
  if (auto v = n.get("hedge_ms")) {
    if (o.isolation != Isolation::kIsolated) v->fail("needs \"isolated\": true");
    o.hedge_delay = v->ms(false);
  }
  if (auto v = n.get("max_hedges")) o.max_hedges = static_cast<std::uint32_t>(v->uint(1, 16));
  if (auto v = n.get("output")) {
    o.predict.output = v->choice<OutputKind>({{"transformed", OutputKind::kTransformed}, {"margin", OutputKind::kMargin}});
  }
  if (o.isolation == Isolation::kIsolated && !o.executor) {
    o.executor = std::make_shared<BoundedExecutor>(ExecutorConfig{});
  }
  return o;
}

std::size_t feature_index(const Node& n, const Context& ctx, std::size_t width) {
  if (n.raw().is_string()) {
    const std::string name = n.str();
    for (std::size_t i = 0; i < ctx.input_names.size(); ++i) {
      if (ctx.input_names[i] == name) return i;
    }
    n.fail(fmt::format("no input feature named '{}'{}", name,
                       ctx.input_names.empty() ? " (the model has no feature names; use an index or \"features\")"
                                               : ""));
  }
  return static_cast<std::size_t>(n.uint(0, width == 0 ? 0 : width - 1));
}

Preprocessor parse_preprocess(const Node& n, Context& ctx) {
  n.keys({"steps", "one_hot"});
  // The input width follows from the model's and the one-hot expansions.
  std::vector<std::pair<Node, std::vector<std::int32_t>>> hot_nodes;
  std::size_t expansion = 0;
  if (auto h = n.get("one_hot")) {
    for (const Node& item : h->items()) {
      item.keys({"feature", "categories"});
      std::vector<std::int32_t> cats;
      for (const Node& c : item.at("categories").items()) {
        cats.push_back(static_cast<std::int32_t>(c.number(-2147483648.0, 2147483647.0)));
      }
      if (cats.empty()) item.at("categories").fail("must not be empty");
      expansion += cats.size() - 1;
      hot_nodes.emplace_back(item, std::move(cats));
    }
  }
  if (expansion > ctx.model_width) n.fail("one-hot expansions are wider than the model's rows");
  const std::size_t in_width = ctx.input_names.empty() ? ctx.model_width - expansion : ctx.input_names.size();
  if (in_width + expansion != ctx.model_width) {
    n.fail(fmt::format("{} input features expand to {}, the model expects {}", in_width, in_width + expansion,
                       ctx.model_width));
  }
  std::vector<OneHot> hot;
  for (auto& [item, cats] : hot_nodes) hot.push_back({feature_index(item.at("feature"), ctx, in_width), cats});
  std::vector<PreStep> steps;
  if (auto s = n.get("steps")) {
    for (const Node& item : s->items()) {
      PreStep st;
      const Node op = item.at("op");
      st.kind = op.choice<PreStep::Kind>({{"default", PreStep::Kind::kDefault},
                                          {"clip", PreStep::Kind::kClip},
                                          {"log1p", PreStep::Kind::kLog1p},
                                          {"standardise", PreStep::Kind::kStandardise},
                                          {"standardize", PreStep::Kind::kStandardise}});
      st.feature = feature_index(item.at("feature"), ctx, in_width);
      switch (st.kind) {
        case PreStep::Kind::kDefault:
          item.keys({"op", "feature", "value"});
          st.value = static_cast<float>(item.at("value").number());
          break;
        case PreStep::Kind::kClip:
          item.keys({"op", "feature", "min", "max"});
          st.lo = static_cast<float>(item.at("min").number());
          st.hi = static_cast<float>(item.at("max").number());
          if (!(st.lo <= st.hi)) item.at("max").fail(fmt::format("is below min {}", st.lo));
          break;
        case PreStep::Kind::kLog1p:
          item.keys({"op", "feature"});
          break;
        case PreStep::Kind::kStandardise:
          item.keys({"op", "feature", "mean", "std"});
          st.mean = static_cast<float>(item.at("mean").number());
          st.std = static_cast<float>(item.at("std").number(0.0, std::numeric_limits<double>::max(), true));
          break;
      }
      steps.push_back(st);
    }
  }
  return at_path(n, [&] { return Preprocessor(in_width, std::move(steps), std::move(hot), ctx.input_names); });
}

Postprocessor parse_postprocess(const Node& n) {
  n.keys({"calibration", "labels", "top_k"});
  Calibration cal;
  if (auto c = n.get("calibration")) {
    c->keys({"platt", "isotonic"});
    if (auto p = c->get("platt")) {
      p->keys({"a", "b"});
      cal.kind = Calibration::Kind::kPlatt;
      cal.a = p->at("a").number();
      cal.b = p->at("b").number();
    } else if (auto iso = c->get("isotonic")) {
      iso->keys({"x", "y"});
      cal.kind = Calibration::Kind::kIsotonic;
      cal.x = iso->at("x").numbers();
      cal.y = iso->at("y").numbers();
    } else {
      c->fail("expected \"platt\" or \"isotonic\"");
    }
  }
  std::optional<LabelRule> rule;
  if (auto l = n.get("labels")) {
    l->keys({"thresholds", "names", "column"});
    LabelRule r;
    r.thresholds = l->at("thresholds").numbers();
    for (const Node& s : l->at("names").items()) r.labels.push_back(s.str());
    if (auto c = l->get("column")) r.column = c->uint(0, 1'000'000);
    rule = std::move(r);
  }
  std::size_t top_k = 0;
  if (auto k = n.get("top_k")) top_k = k->uint(0, 1'000'000);
  return at_path(n, [&] { return Postprocessor(std::move(cal), std::move(rule), top_k); });
}

}  // namespace

EngineBuilder builder_from_json(std::string_view json_text, const std::filesystem::path& base_dir,
                                const ConfigOptions& opts) {
  const json doc = parse_json(json_text, "config");
  const Node root(doc, "");
  root.keys({"name", "models", "chain", "features", "validator", "anomaly", "drift", "preprocess", "postprocess",
             "cache", "idempotency", "log", "default_timeout_ms", "canary_rows", "allow_schema_change", "explain"});
  Context ctx;
  ctx.base = base_dir;
  if (opts.clock) ctx.clock = opts.clock;
  ModelLoaderFn loader = opts.loader ? opts.loader : ModelLoaderFn([](const std::filesystem::path& p,
                                                                      const LoadOptions& o) { return load_model(p, o); });

  // "fault" on a model wraps it in a FaultInjector, and so does every reload
  // of its file: the engine's loader wraps what it loads from that path.
  auto faults = std::make_shared<std::map<std::filesystem::path, std::pair<FaultConfig, std::uint64_t>>>();
  for (const Node& m : root.at("models").items()) {
    auto f = m.get("fault");
    if (!f || !m.get("path")) continue;  // a model from a factory: wrapped where it is made
    const std::filesystem::path path = ctx.resolve(m.at("path").str());
    if (faults->contains(path)) f->fail("another model with a fault reads the same path; give each its own file");
    (*faults)[path] = parse_fault(*f, opts.max_fault_wait);
  }
  if (!faults->empty()) {
    loader = [inner = std::move(loader), faults, clock = ctx.clock](const std::filesystem::path& p,
                                                                     const LoadOptions& o) -> Result<ModelPtr> {
      Result<ModelPtr> r = inner(p, o);
      const auto it = faults->find(p);
      if (!r.ok() || it == faults->end()) return r;
      return ModelPtr(std::make_shared<FaultInjector>(*r, it->second.first, it->second.second, *clock));
    };
  }

  EngineBuilder b;
  b.clock(*ctx.clock).loader(loader);
  if (auto n = root.get("name")) b.name(n->str());
  if (opts.metrics) b.metrics(opts.metrics);

  // Models are loaded here (not in build()) so that feature names can be
  // used by name in "preprocess" and the validator's schema.
  for (const Node& m : root.at("models").items()) {
    static constexpr std::string_view kFileKeys[] = {"name", "path", "id", "num_iterations", "fault"};
    const auto factory_key = [](std::string_view k) {
      return std::find(std::begin(kFileKeys), std::end(kFileKeys), k) == std::end(kFileKeys);
    };
    std::vector<std::string_view> known(std::begin(kFileKeys), std::end(kFileKeys));
    known.push_back("remote");
    for (const auto& [key, factory] : opts.model_factories)
      if (key != "remote") known.push_back(key);
    m.keys(known);
    const std::string name = m.at("name").str();
    if (ctx.models.contains(name)) m.at("name").fail(fmt::format("model '{}' is declared twice", name));
    if (!m.get("path")) {
      // A model made by a factory ("remote", ...): exactly one such key.
      std::optional<Node> spec;
      std::string kind;
      for (std::string_view k : known) {
        if (!factory_key(k)) continue;
        if (auto v = m.get(k)) {
          if (spec) v->fail(fmt::format("a model is one of \"path\" or \"{}\", not both", kind));
          spec = *v;
          kind = std::string(k);
        }
      }
      if (!spec) m.fail("needs \"path\" (a model file) or \"remote\" (replicas over the OIP)");
      const auto it = opts.model_factories.find(kind);
      if (it == opts.model_factories.end())
        spec->fail("this host cannot make such models: \"remote\" needs keel::net (keel serve and keel worker "
                   "register it; an embedding host calls keel::net::add_remote_models)");
      for (const char* k : {"id", "num_iterations"})
        if (auto v = m.get(k)) v->fail("applies to a model file only");
      ModelPtr made = it->second(spec->raw().dump(), spec->path(), opts.metrics.get());
      if (auto f = m.get("fault")) {
        auto [fc, seed] = parse_fault(*f, opts.max_fault_wait);
        made = std::make_shared<FaultInjector>(std::move(made), fc, seed, *ctx.clock);
      }
      ctx.models[name] = made;
      ctx.model_order.push_back(name);
      b.model(name, made);
      continue;
    }
    for (std::string_view k : known)
      if (factory_key(k))
        if (auto v = m.get(k)) v->fail(fmt::format("a model is one of \"path\" or \"{}\", not both", k));
    LoadOptions lo;
    if (auto id = m.get("id")) lo.id = id->str();
    if (auto it = m.get("num_iterations")) lo.num_iterations = it->uint(0, 1'000'000'000);
    const std::filesystem::path path = ctx.resolve(m.at("path").str());
    Result<ModelPtr> r = loader(path, lo);
    if (!r.ok()) {
      Status st = r.status();
      throw Error(st.with_context(fmt::format("{}.path ('{}')", m.path(), path.string())));
    }
    ctx.models[name] = *r;
    ctx.model_order.push_back(name);
    b.model(name, *r, path, lo);
  }
  if (ctx.model_order.empty()) root.at("models").fail("at least one model is needed");

  const std::vector<Node> chain = root.at("chain").items();
  if (chain.empty()) root.at("chain").fail("at least one stage is needed");
  for (std::size_t i = 0; i < chain.size(); ++i) {
    const Node& st = chain[i];
    if (auto d = st.get("default")) {
      st.keys({"default", "name"});
      if (i + 1 != chain.size()) st.fail("a default stage must be last");
      std::vector<float> scores;
      for (const Node& v : d->items()) scores.push_back(static_cast<float>(v.number()));
      b.default_scores(std::move(scores), st.get("name") ? st.at("name").str() : "default");
      continue;
    }
    st.keys({"model", "name", "breaker", "retry", "bulkhead", "isolated", "executor", "timeout_ms", "hedge_ms",
             "max_hedges", "output"});
    const std::string model = st.at("model").str();
    if (!ctx.models.contains(model)) st.at("model").fail(fmt::format("no model named '{}' in \"models\"", model));
    const std::string name = st.get("name") ? st.at("name").str() : model;
    b.stage(model, parse_stage_options(st, name, ctx), name);
  }

  const std::string& primary_name = chain.front().get("model") ? chain.front().at("model").str() : std::string();
  if (primary_name.empty()) chain.front().fail("the first stage must be a model");
  const ModelInfo& pi = ctx.models.at(primary_name)->info();
  ctx.model_width = pi.num_features;
  if (auto f = root.get("features")) {
    for (const Node& n : f->items()) ctx.input_names.push_back(n.str());
  } else if (pi.has_feature_names && !(root.get("preprocess") && root.at("preprocess").get("one_hot"))) {
    // Without one-hot expansion the input columns are the model's.
    for (const auto& fi : pi.features) ctx.input_names.push_back(fi.name);
  }
  if (auto p = root.get("preprocess")) b.preprocess(parse_preprocess(*p, ctx));
  if (auto p = root.get("postprocess")) b.postprocess(parse_postprocess(*p));

  auto load_profile = [&](const Node& n) {
    return at_path(n, [&] { return Profile::load(ctx.resolve(n.str())); });
  };
  if (auto v = root.get("validator")) {
    v->keys({"schema", "profile"});
    std::optional<Profile> profile;
    if (auto p = v->get("profile")) profile = load_profile(*p);
    Schema base = root.get("preprocess")
                      ? (ctx.input_names.empty() ? Schema{} : Schema::from_names(ctx.input_names))
                      : Schema::from_model(pi);
    Schema schema = base;
    if (auto s = v->get("schema")) {
      const std::string text = s->raw().is_string() ? read_text(ctx.resolve(s->str()), *s) : s->raw().dump();
      schema = at_path(*s, [&] { return parse_schema(text, base, profile ? &*profile : nullptr); });
    } else if (profile) {
      schema.impute_medians(*profile);
    }
    b.validator(at_path(*v, [&] { return std::make_shared<SchemaValidator>(std::move(schema)); }));
  }
  if (auto a = root.get("anomaly")) {
    a->keys({"profile", "policy", "z_threshold", "range_margin", "min_score", "check_missing", "check_categories"});
    AnomalyOptions ao;
    if (auto v = a->get("policy")) ao.policy = at_path(*v, [&] { return parse_anomaly_policy(v->str()); });
    if (auto v = a->get("z_threshold")) ao.z_threshold = v->number(0.0, 1e9, true);
    if (auto v = a->get("range_margin")) ao.range_margin = v->number(0.0, 1e9);
    if (auto v = a->get("min_score")) ao.min_score = v->number(0.0, 1e9, true);
    if (auto v = a->get("check_missing")) ao.check_missing = v->boolean();
    if (auto v = a->get("check_categories")) ao.check_categories = v->boolean();
    const Profile profile = load_profile(a->at("profile"));
    b.anomaly(at_path(*a, [&] { return std::make_shared<AnomalyDetector>(profile, ao); }));
  }
  if (auto d = root.get("drift")) {
    d->keys({"profile", "window_rows", "window_blocks"});
    DriftOptions dopt;
    if (auto v = d->get("window_rows")) dopt.window_rows = v->uint(0, 1'000'000'000);
    if (auto v = d->get("window_blocks")) dopt.window_blocks = v->uint(1, 1'000'000);
    const Profile profile = load_profile(d->at("profile"));
    b.drift(at_path(*d, [&] { return std::make_shared<DriftMonitor>(profile, dopt); }));
  }
  if (auto c = root.get("cache")) {
    if (c->raw().is_boolean()) {
      if (c->boolean()) b.cache(std::make_shared<LruCache>());
    } else {
      c->keys({"max_entries", "max_bytes", "ttl_ms", "shards"});
      LruCacheOptions co;
      if (auto v = c->get("max_entries")) co.max_entries = v->uint(1, 1'000'000'000);
      if (auto v = c->get("max_bytes")) co.max_bytes = v->uint(1, std::uint64_t{1} << 40);
      if (auto v = c->get("ttl_ms")) co.ttl = v->ms();
      if (auto v = c->get("shards")) co.shards = v->uint(1, 4096);
      b.cache(std::make_shared<LruCache>(co));
    }
  }
  if (auto c = root.get("idempotency")) {
    c->keys({"ttl_ms", "max_entries", "max_bytes"});
    IdempotencyOptions io;
    if (auto v = c->get("ttl_ms")) io.ttl = v->ms();
    if (auto v = c->get("max_entries")) io.max_entries = v->uint(1, 1'000'000'000);
    if (auto v = c->get("max_bytes")) io.max_bytes = v->uint(1, std::uint64_t{1} << 40);
    b.idempotency(std::make_shared<InMemoryIdempotencyStore>(io, *ctx.clock));
  }
  {
    EventLogOptions lo;
    lo.level = LogLevel::kWarn;
    if (auto l = root.get("log")) {
      l->keys({"level", "burst", "window_ms"});
      if (auto v = l->get("level")) {
        if (!parse_log_level(v->str(), lo.level)) v->fail("expected debug, info, warn, error or off");
      }
      if (auto v = l->get("burst")) lo.burst = static_cast<std::uint32_t>(v->uint(0, 1'000'000));
      if (auto v = l->get("window_ms")) lo.window = v->ms(false);
    }
    auto sink = opts.log_sink ? opts.log_sink : std::make_shared<OstreamSink>();
    b.log(std::make_shared<EventLog>(sink, lo, *ctx.clock));
  }
  if (auto v = root.get("default_timeout_ms")) b.default_timeout(v->ms(false));
  if (auto e = root.get("explain")) {
    e->keys({"reason_codes", "mode"});
    std::uint32_t k = 0;  // requests say how many; the mode is still the default
    if (auto v = e->get("reason_codes")) k = static_cast<std::uint32_t>(v->uint(0, ctx.model_width));
    ReasonMode mode = ReasonMode::kMagnitude;
    if (auto v = e->get("mode")) {
      mode = v->choice<ReasonMode>({{"magnitude", ReasonMode::kMagnitude}, {"up", ReasonMode::kIncreasing}});
    }
    b.reason_codes(k, mode);
  }
  if (auto v = root.get("allow_schema_change")) b.allow_schema_change(v->boolean());
  if (auto c = root.get("canary_rows")) {
    std::vector<std::vector<float>> rows;
    for (const Node& r : c->items()) {
      std::vector<float> row;
      for (const Node& x : r.items()) row.push_back(static_cast<float>(x.number()));
      if (row.size() != ctx.model_width) {
        r.fail(fmt::format("has {} values, the model takes {}", row.size(), ctx.model_width));
      }
      rows.push_back(std::move(row));
    }
    b.canary_rows(std::move(rows));
  }
  return b;
}

EngineBuilder builder_from_config(const std::filesystem::path& path, const ConfigOptions& opts) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(not_found(fmt::format("config '{}': cannot read", path.string())));
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return builder_from_json(ss.str(), path.parent_path(), opts);
  } catch (const Error& e) {
    Status st = e.status();
    throw Error(st.with_context(fmt::format("config '{}'", path.string())));
  }
}

std::unique_ptr<ScoringEngine> engine_from_config(const std::filesystem::path& path, const ConfigOptions& opts) {
  return builder_from_config(path, opts).build();
}

}  // namespace keel
