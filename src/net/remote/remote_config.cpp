#include <keel/net/remote/remote_config.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <limits>

namespace keel::net {
namespace {
using json = nlohmann::json;

[[noreturn]] void fail(const std::string& path, std::string_view what) {
  throw Error(invalid_input(fmt::format("{}: {}", path, what)));
}

// One JSON object and its path: typed reads that name the path on error.
class Obj {
 public:
  Obj(const json& j, std::string path, std::initializer_list<std::string_view> keys) : j_(j), path_(std::move(path)) {
    if (!j_.is_object()) fail(path_, fmt::format("expected an object, got {}", j_.type_name()));
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (std::find(keys.begin(), keys.end(), it.key()) == keys.end())
        fail(at(it.key()), fmt::format("unknown key (expected one of: {})", fmt::join(keys, ", ")));
  }
  [[nodiscard]] std::string at(std::string_view key) const { return fmt::format("{}.{}", path_, key); }
  [[nodiscard]] const json* get(std::string_view key) const {
    const auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  [[nodiscard]] const json& need(std::string_view key) const {
    const json* v = get(key);
    if (!v) fail(at(key), "is required");
    return *v;
  }
  void str(std::string_view key, std::string& out, bool required = false) const {
    const json* v = required ? &need(key) : get(key);
    if (!v) return;
    if (!v->is_string()) fail(at(key), fmt::format("expected a string, got {}", v->dump()));
    out = v->get<std::string>();
    if (required && out.empty()) fail(at(key), "must not be empty");
  }
  template <class T>
  void uint(std::string_view key, T& out, std::uint64_t lo, std::uint64_t hi) const {
    const json* v = get(key);
    if (!v) return;
    if (!v->is_number_unsigned() && !(v->is_number_integer() && v->get<std::int64_t>() >= 0))
      fail(at(key), fmt::format("expected a non-negative integer, got {}", v->dump()));
    const auto x = v->get<std::uint64_t>();
    if (x < lo || x > hi) fail(at(key), fmt::format("must be in [{}, {}], got {}", lo, hi, x));
    out = static_cast<T>(x);
  }
  void ms(std::string_view key, Duration& out, bool allow_zero) const {
    const json* v = get(key);
    if (!v) return;
    if (!v->is_number()) fail(at(key), fmt::format("expected a number of milliseconds, got {}", v->dump()));
    const double x = v->get<double>();
    if (!(x >= 0 && x <= 1e9) || (!allow_zero && x == 0))
      fail(at(key), fmt::format("must be in {}0, 1e9], got {}", allow_zero ? "[" : "(", v->dump()));
    out = std::chrono::duration_cast<Duration>(std::chrono::duration<double, std::milli>(x));
  }
  void boolean(std::string_view key, bool& out) const {
    const json* v = get(key);
    if (!v) return;
    if (!v->is_boolean()) fail(at(key), fmt::format("expected true or false, got {}", v->dump()));
    out = v->get<bool>();
  }

 private:
  const json& j_;
  std::string path_;
};

}  // namespace

RemoteModelOptions remote_options_from_json(std::string_view text, const std::string& path) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    fail(path, e.what());
  }
  const Obj r(doc, path,
              {"model", "version", "local_zone", "min_local_available", "endpoints", "connect_timeout_ms",
               "attempt_timeout_ms", "default_timeout_ms", "max_attempts", "max_connections", "max_idle", "outlier",
               "health_interval_ms", "health_timeout_ms", "metadata_timeout_ms", "ewma_decay_ms", "name"});
  RemoteModelOptions o;
  r.str("model", o.model, true);
  r.str("version", o.version);
  r.str("local_zone", o.local_zone);
  r.str("name", o.name);
  r.uint("min_local_available", o.min_local_available, 0, 1'000'000);
  const json& eps = r.need("endpoints");
  if (!eps.is_array() || eps.empty()) fail(r.at("endpoints"), "expected a non-empty array of {\"host\", \"port\"}");
  for (std::size_t i = 0; i < eps.size(); ++i) {
    const Obj e(eps[i], fmt::format("{}[{}]", r.at("endpoints"), i), {"host", "port", "zone", "standby"});
    RemoteEndpoint ep;
    e.str("host", ep.host, true);
    if (!e.get("port")) fail(e.at("port"), "is required");
    e.uint("port", ep.port, 1, 65535);
    e.str("zone", ep.zone);
    e.boolean("standby", ep.standby);
    o.endpoints.push_back(std::move(ep));
  }
  r.ms("connect_timeout_ms", o.connect_timeout, false);
  r.ms("attempt_timeout_ms", o.attempt_timeout, false);
  r.ms("default_timeout_ms", o.default_timeout, false);
  r.uint("max_attempts", o.max_attempts, 1, 100);
  r.uint("max_connections", o.max_connections, 1, 1'000'000);
  r.uint("max_idle", o.max_idle, 0, 1'000'000);
  r.ms("health_interval_ms", o.health_interval, true);
  r.ms("health_timeout_ms", o.health_timeout, false);
  r.ms("metadata_timeout_ms", o.metadata_timeout, false);
  r.ms("ewma_decay_ms", o.ewma_decay, false);
  if (const json* out = r.get("outlier")) {
    const Obj ol(*out, r.at("outlier"),
                 {"consecutive_failures", "base_ejection_ms", "max_ejection_ms", "max_ejection_percent"});
    ol.uint("consecutive_failures", o.outlier.consecutive_failures, 1, 1'000'000);
    ol.ms("base_ejection_ms", o.outlier.base_ejection, false);
    ol.ms("max_ejection_ms", o.outlier.max_ejection, false);
    ol.uint("max_ejection_percent", o.outlier.max_ejection_percent, 0, 100);
  }
  return o;
}

void add_remote_models(ConfigOptions& options) {
  Clock* clock = options.clock;
  options.model_factories["remote"] = [clock](std::string_view text, const std::string& path,
                                              MetricsRegistry* metrics) -> ModelPtr {
    RemoteModelOptions o = remote_options_from_json(text, path);
    o.clock = clock;
    std::shared_ptr<RemoteModel> m;
    try {
      m = std::make_shared<RemoteModel>(std::move(o));
    } catch (const Error& e) {
      throw Error(Status(e.status()).with_context(path));
    }
    if (metrics) m->register_metrics(*metrics);
    return m;
  };
}

}  // namespace keel::net
