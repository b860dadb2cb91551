#include <keel/net/remote/remote_config.hpp>

#include "engine/config_node.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace keel::net {

namespace {

using detail::Node;

std::string nonempty(const Node& n) {
  std::string s = n.str();
  if (s.empty()) n.fail("must not be empty");
  return s;
}

template <class T>
void read_uint(const Node& obj, std::string_view key, T& out, std::uint64_t lo, std::uint64_t hi) {
  if (auto n = obj.get(key)) out = static_cast<T>(n->uint(lo, hi));
}

void read_ms(const Node& obj, std::string_view key, Duration& out, bool allow_zero) {
  if (auto n = obj.get(key)) out = n->ms(allow_zero);
}

}  // namespace

RemoteModelOptions remote_options_from_json(std::string_view text, const std::string& path) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(invalid_input(fmt::format("{}: {}", path, e.what())));
  }
  const Node r(doc, path);
  r.keys({"model", "version", "local_zone", "min_local_available", "endpoints", "connect_timeout_ms",
          "attempt_timeout_ms", "default_timeout_ms", "max_attempts", "max_connections", "max_idle", "outlier",
          "health_interval_ms", "health_timeout_ms", "metadata_timeout_ms", "ewma_decay_ms", "name", "hedge", "transport"});
  RemoteModelOptions o;
  o.model = nonempty(r.at("model"));
  if (auto n = r.get("version")) o.version = n->str();
  if (auto n = r.get("local_zone")) o.local_zone = n->str();
  if (auto n = r.get("name")) o.name = n->str();
  if (auto n = r.get("transport"))
    o.transport = n->choice<RemoteTransport>({{"rest", RemoteTransport::kRest}, {"grpc", RemoteTransport::kGrpc}});
  read_uint(r, "min_local_available", o.min_local_available, 0, 1'000'000);
  const std::vector<Node> eps = r.at("endpoints").items();
  if (eps.empty()) r.at("endpoints").fail("expected a non-empty array of {\"host\", \"port\"}");
  for (const Node& e : eps) {
    e.keys({"host", "port", "zone", "standby"});
    RemoteEndpoint ep;
    ep.host = nonempty(e.at("host"));
    ep.port = static_cast<int>(e.at("port").uint(1, 65535));
    if (auto n = e.get("zone")) ep.zone = n->str();
    if (auto n = e.get("standby")) ep.standby = n->boolean();
    o.endpoints.push_back(std::move(ep));
  }
  read_ms(r, "connect_timeout_ms", o.connect_timeout, false);
  read_ms(r, "attempt_timeout_ms", o.attempt_timeout, false);
  read_ms(r, "default_timeout_ms", o.default_timeout, false);
  read_uint(r, "max_attempts", o.max_attempts, 1, 100);
  read_uint(r, "max_connections", o.max_connections, 1, 1'000'000);
  read_uint(r, "max_idle", o.max_idle, 0, 1'000'000);
  read_ms(r, "health_interval_ms", o.health_interval, true);
  read_ms(r, "health_timeout_ms", o.health_timeout, false);
  read_ms(r, "metadata_timeout_ms", o.metadata_timeout, false);
  read_ms(r, "ewma_decay_ms", o.ewma_decay, false);
  if (auto ol = r.get("outlier")) {
    ol->keys({"consecutive_failures", "base_ejection_ms", "max_ejection_ms", "max_ejection_percent"});
    read_uint(*ol, "consecutive_failures", o.outlier.consecutive_failures, 1, 1'000'000);
    read_ms(*ol, "base_ejection_ms", o.outlier.base_ejection, false);
    read_ms(*ol, "max_ejection_ms", o.outlier.max_ejection, false);
    read_uint(*ol, "max_ejection_percent", o.outlier.max_ejection_percent, 0, 100);
  }
  if (auto h = r.get("hedge")) {
    h->keys({"quantile", "min_delay_ms", "min_samples", "budget_percent", "burst", "threads"});
    auto& g = o.hedge;
    g.enabled = true;
    if (auto n = h->get("quantile")) g.quantile = n->number(0.0, 1.0, true, true);
    read_ms(*h, "min_delay_ms", g.min_delay, true);
    read_uint(*h, "min_samples", g.min_samples, 1, 1'000'000);
    if (auto n = h->get("budget_percent")) g.budget_percent = n->number(0.0, 100.0);
    if (auto n = h->get("burst")) g.burst = n->number(0.0, 1e6);
    read_uint(*h, "threads", g.threads, 1, 256);
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
