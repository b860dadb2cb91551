// keel serve: the OIP REST and gRPC servers over a model repository.
#include "cli/registry.hpp"

#ifdef KEEL_HAVE_NET
#include <keel/engine/metrics.hpp>
#include <keel/net/grpc/grpc_server.hpp>
#include <keel/net/redis/redis_cache.hpp>
#include <keel/net/redis/redis_client.hpp>
#include <keel/net/redis/redis_idempotency.hpp>
#include <keel/net/server/http_server.hpp>
#include <keel/net/server/model_repository.hpp>
#include <keel/net/server/rest_service.hpp>
#include <keel/net/server/systemd_notify.hpp>

#include <nlohmann/json.hpp>

#include <cctype>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using keel::Duration;
using ms = std::chrono::milliseconds;

// Redis as the cache and idempotency store every replica shares (serve.json
// "redis", --redis, --redis-sentinels). Off unless an address or sentinels
// are given.
struct RedisServeOptions {
  bool enabled = false;
  keel::net::RedisOptions client;
  std::string prefix = "keel";
  double deadline_share = 0.5;
  bool cache = true;
  Duration cache_ttl = ms(300000);
  bool idempotency = true;
  keel::net::RedisIdempotencyOptions idem;
  RedisServeOptions() {
    // Tighter than the client's defaults: Redis sits next to the replicas,
    // and a Redis that stops answering costs each request at most this much
    // until the breaker opens.
    client.connect_timeout = ms(20);
    client.command_timeout = ms(10);
    client.pool_wait_timeout = ms(2);
    client.breaker.wait_in_open = ms(250);
    client.breaker.max_wait_in_open = ms(1000);
  }
};

struct ServeOptions {
  std::string models_dir;
  std::map<std::string, std::string> models;  // name -> file
  keel::net::HttpServerConfig http;
  keel::net::GrpcServerConfig grpc;
  bool grpc_enabled = true;
  keel::net::ServiceConfig service;
  Duration poll = ms(0);
  std::string token_file;  // bearer token, read at start
  Duration drain_delay = ms(5000);
  Duration drain_timeout = ms(30000);
  RedisServeOptions redis;
};

[[noreturn]] void bad(const std::string& path, const std::string& why) {
  throw keel::Error(keel::StatusCode::kInvalidInput, path + ": " + why);
}

template <class T>
T number(const nlohmann::json& v, const std::string& path, double lo, double hi) {
  if (!v.is_number()) bad(path, "expected a number, got " + v.dump());
  const double d = v.get<double>();
  if (d < lo || d > hi) bad(path, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v.dump());
  if (std::is_integral_v<T> && d != static_cast<double>(static_cast<long long>(d))) bad(path, "must be a whole number");
  return static_cast<T>(d);
}

Duration millis(const nlohmann::json& v, const std::string& path) {
  return ms(number<long long>(v, path, 0, 1e9));
}

bool boolean(const nlohmann::json& v, const std::string& path) {
  if (!v.is_boolean()) bad(path, "expected true or false, got " + v.dump());
  return v.get<bool>();
}

std::string string(const nlohmann::json& v, const std::string& path) {
  if (!v.is_string()) bad(path, "expected a string, got " + v.dump());
  return v.get<std::string>();
}

// "host:port" (or "[v6]:port").
keel::net::RedisAddress redis_address(const std::string& text, const std::string& path) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) bad(path, "expected host:port, got '" + text + "'");
  keel::net::RedisAddress a;
  a.host = text.substr(0, colon);
  if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']') a.host = a.host.substr(1, a.host.size() - 2);
  const std::string port = text.substr(colon + 1);
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) bad(path, "bad port in '" + text + "'");
  a.port = std::stoi(port);
  if (a.port < 1 || a.port > 65535) bad(path, "port must be in [1, 65535], got " + port);
  return a;
}

std::vector<keel::net::RedisAddress> redis_addresses(const std::string& list, const std::string& path) {
  std::vector<keel::net::RedisAddress> out;
  std::size_t from = 0;
  while (from <= list.size()) {
    const auto comma = std::min(list.find(',', from), list.size());
    out.push_back(redis_address(list.substr(from, comma - from), path));
    from = comma + 1;
  }
  return out;
}

template <class F>
void each_key(const nlohmann::json& v, const std::string& path, F&& f) {
  if (!v.is_object()) bad(path, "expected an object");
  for (const auto& [k, kv] : v.items()) f(k, kv, path + "." + k);
}

// serve.json "redis": see README ("Redis: shared cache and idempotency").
void apply_redis(const nlohmann::json& j, const std::function<std::string(const std::string&)>& rel,
                 RedisServeOptions& r) {
  auto& c = r.client;
  bool direct = false;
  each_key(j, "redis", [&](const std::string& k, const nlohmann::json& v, const std::string& p) {
    if (k == "address") {
      c.address = redis_address(string(v, p), p);
      direct = true;
    } else if (k == "sentinels") {
      if (!v.is_array() || v.empty()) bad(p, "expected a non-empty array of \"host:port\"");
      c.sentinel.sentinels.clear();
      for (std::size_t i = 0; i < v.size(); ++i) {
        const std::string pi = p + "[" + std::to_string(i) + "]";
        c.sentinel.sentinels.push_back(redis_address(string(v[i], pi), pi));
      }
    } else if (k == "master_name") c.sentinel.master_name = string(v, p);
    else if (k == "database") c.database = number<int>(v, p, 0, 1000);
    else if (k == "user") c.auth.user = string(v, p);
    else if (k == "user_file") {  // the ACL user name, e.g. from a Kubernetes Secret (first line)
      const std::string f = rel(string(v, p));
      std::ifstream in(f);
      if (!in) bad(p, "cannot read " + f);
      std::getline(in, c.auth.user);
      while (!c.auth.user.empty() && std::isspace(static_cast<unsigned char>(c.auth.user.back()))) c.auth.user.pop_back();
      if (c.auth.user.empty()) bad(p, f + " is empty");
    }
    else if (k == "password_file") c.auth.password_file = rel(string(v, p));
    else if (k == "password_env") c.auth.password_env = string(v, p);
    else if (k == "pool_size") c.pool_size = number<std::size_t>(v, p, 1, 1024);
    else if (k == "connect_timeout_ms") c.connect_timeout = ms(number<long long>(v, p, 1, 60000));
    else if (k == "command_timeout_ms") c.command_timeout = ms(number<long long>(v, p, 1, 60000));
    else if (k == "pool_wait_timeout_ms") c.pool_wait_timeout = millis(v, p);
    else if (k == "deadline_share") r.deadline_share = number<double>(v, p, 0.05, 1.0);
    else if (k == "prefix") {
      r.prefix = string(v, p);
      if (r.prefix.empty() || r.prefix.find_first_of("*?[] \t\r\n") != std::string::npos)
        bad(p, "must be non-empty, without spaces or glob characters");
    } else if (k == "breaker") {
      each_key(v, p, [&](const std::string& bk, const nlohmann::json& bv, const std::string& bp) {
        if (bk == "minimum_calls") c.breaker.minimum_calls = number<std::uint32_t>(bv, bp, 1, 1e6);
        else if (bk == "failure_rate") c.breaker.failure_rate_threshold = number<double>(bv, bp, 0.01, 1.0);
        else if (bk == "wait_in_open_ms") c.breaker.wait_in_open = ms(number<long long>(bv, bp, 1, 600000));
        else if (bk == "max_wait_in_open_ms") c.breaker.max_wait_in_open = ms(number<long long>(bv, bp, 1, 600000));
        else bad(bp, "unknown key");
      });
    } else if (k == "cache") {
      each_key(v, p, [&](const std::string& ck, const nlohmann::json& cv, const std::string& cp) {
        if (ck == "enabled") r.cache = boolean(cv, cp);
        else if (ck == "ttl_ms") r.cache_ttl = ms(number<long long>(cv, cp, 1, 1e9));
        else bad(cp, "unknown key");
      });
    } else if (k == "idempotency") {
      each_key(v, p, [&](const std::string& ik, const nlohmann::json& iv, const std::string& ip) {
        if (ik == "enabled") r.idempotency = boolean(iv, ip);
        else if (ik == "ttl_ms") r.idem.ttl = ms(number<long long>(iv, ip, 1, 1e9));
        else if (ik == "claim_ttl_ms") r.idem.claim_ttl = ms(number<long long>(iv, ip, 1, 1e9));
        else if (ik == "local_ttl_ms") r.idem.local.ttl = ms(number<long long>(iv, ip, 1, 1e9));
        else if (ik == "local_max_entries") r.idem.local.max_entries = number<std::size_t>(iv, ip, 1, 1e8);
        else bad(ip, "unknown key");
      });
    } else {
      bad(p, "unknown key");
    }
  });
  if (direct && !c.sentinel.sentinels.empty()) bad("redis", "give either address or sentinels, not both");
  if (!direct && c.sentinel.sentinels.empty()) bad("redis", "needs address (host:port) or sentinels");
  if (c.breaker.max_wait_in_open < c.breaker.wait_in_open) bad("redis.breaker.max_wait_in_open_ms", "must be >= wait_in_open_ms");
  r.enabled = true;
}

// serve.json "grpc_tls" and "http_tls": the PEM files, relative to serve.json.
void apply_tls(const nlohmann::json& j, const std::string& section,
               const std::function<std::string(const std::string&)>& rel, std::string& cert_file,
               std::string& key_file, std::string& client_ca_file) {
  each_key(j, section, [&](const std::string& k, const nlohmann::json& v, const std::string& p) {
    if (k == "cert_file") cert_file = rel(string(v, p));
    else if (k == "key_file") key_file = rel(string(v, p));
    else if (k == "client_ca_file") client_ca_file = rel(string(v, p));
    else bad(p, "unknown key");
  });
}

// serve.json: every option; unknown keys are errors naming their path.
void apply_config(const std::string& file, ServeOptions& o) {
  std::ifstream in(file);
  if (!in) bad(file, "cannot read");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    bad(file, std::string("not JSON: ") + e.what());
  }
  if (!j.is_object()) bad(file, "expected a JSON object");
  const auto base = std::filesystem::path(file).parent_path();
  const std::function<std::string(const std::string&)> rel = [&](const std::string& p) {
    return std::filesystem::path(p).is_absolute() ? p : (base / p).string();
  };
  auto& L = o.http.limits;
  for (const auto& [k, v] : j.items()) {
    if (k == "host") o.http.host = string(v, k);
    else if (k == "http_port") o.http.port = number<std::uint16_t>(v, k, 0, 65535);
    else if (k == "grpc_port") {
      const int p = number<int>(v, k, -1, 65535);
      o.grpc_enabled = p >= 0;
      if (p >= 0) o.grpc.port = static_cast<std::uint16_t>(p);
    } else if (k == "io_threads") o.http.io_threads = number<unsigned>(v, k, 1, 256);
    else if (k == "models") o.models_dir = rel(string(v, k));
    else if (k == "model") {
      if (!v.is_object()) bad(k, "expected an object of name: file");
      for (const auto& [name, f] : v.items()) o.models[name] = rel(string(f, k + "." + name));
    } else if (k == "poll_ms") o.poll = millis(v, k);
    else if (k == "drain_delay_ms") o.drain_delay = millis(v, k);
    else if (k == "drain_timeout_ms") o.drain_timeout = millis(v, k);
    else if (k == "default_timeout_ms") o.service.default_timeout = millis(v, k);
    else if (k == "max_timeout_ms") o.service.max_timeout = millis(v, k);
    else if (k == "scoring_threads") o.service.scoring_threads = number<unsigned>(v, k, 0, 1024);
    else if (k == "inline_rows") o.service.inline_rows = number<std::size_t>(v, k, 0, 1 << 20);
    else if (k == "inline_budget_us") o.service.inline_budget = std::chrono::microseconds(number<std::int64_t>(v, k, 0, 10'000'000));
    else if (k == "retry_after_s") o.service.retry_after_s = number<int>(v, k, 0, 3600);
    else if (k == "access_log") o.service.access_log = boolean(v, k);
    else if (k == "limits") {
      if (!v.is_object()) bad(k, "expected an object");
      for (const auto& [lk, lv] : v.items()) {
        const std::string p = "limits." + lk;
        if (lk == "max_header_bytes") L.max_header_bytes = number<std::size_t>(lv, p, 256, 1 << 24);
        else if (lk == "max_body_bytes") L.max_body_bytes = number<std::size_t>(lv, p, 1, 1ull << 32);
        else if (lk == "header_timeout_ms") L.header_timeout = millis(lv, p);
        else if (lk == "body_timeout_ms") L.body_timeout = millis(lv, p);
        else if (lk == "idle_timeout_ms") L.idle_timeout = millis(lv, p);
        else if (lk == "write_timeout_ms") L.write_timeout = millis(lv, p);
        else if (lk == "max_connections") L.max_connections = number<std::size_t>(lv, p, 1, 1e7);
        else bad(p, "unknown key");
      }
    } else if (k == "grpc_tls") {
      apply_tls(v, k, rel, o.grpc.tls_cert_file, o.grpc.tls_key_file, o.grpc.tls_client_ca_file);
    } else if (k == "http_tls") {
      apply_tls(v, k, rel, o.http.tls_cert_file, o.http.tls_key_file, o.http.tls_client_ca_file);
    } else if (k == "auth") {
      if (!v.is_object()) bad(k, "expected an object");
      for (const auto& [ak, av] : v.items()) {
        const std::string p = "auth." + ak;
        if (ak == "token_file") o.token_file = rel(string(av, p));
        else if (ak == "infer") o.service.auth_infer = boolean(av, p);
        else bad(p, "unknown key");
      }
    } else if (k == "redis") {
      apply_redis(v, rel, o.redis);
    } else if (k == "admission") {
      if (!v.is_object()) bad(k, "expected an object");
      auto& a = o.service.admission;
      for (const auto& [ak, av] : v.items()) {
        const std::string p = "admission." + ak;
        if (ak == "initial_limit") a.initial_limit = number<std::uint32_t>(av, p, 1, 1e6);
        else if (ak == "min_limit") a.min_limit = number<std::uint32_t>(av, p, 1, 1e6);
        else if (ak == "max_limit") a.max_limit = number<std::uint32_t>(av, p, 1, 1e6);
        else if (ak == "backoff_ratio") a.backoff_ratio = number<double>(av, p, 0.5, 0.999);
        else if (ak == "latency_threshold_ms") a.latency_threshold = millis(av, p);
        else bad(p, "unknown key");
      }
    } else {
      bad(k, "unknown key");
    }
  }
}

std::string redis_target(const RedisServeOptions& r) {
  const auto& c = r.client;
  const auto addr = [](const keel::net::RedisAddress& a) { return a.host + ":" + std::to_string(a.port); };
  if (c.sentinel.sentinels.empty()) return addr(c.address);
  std::string s = "master '" + c.sentinel.master_name + "' via sentinels";
  for (const auto& a : c.sentinel.sentinels) s += " " + addr(a);
  return s;
}

// One client for the process; every engine gets its own RedisCache and
// RedisIdempotencyStore over it (their counters are the engine's metrics).
// Cache keys carry the model's content identity, so engines share one
// prefix; idempotency keys are per engine (an id reused for another model
// is not a conflict, as in the in-process store).
// An engine built again under the same name (a version loaded again, a
// changed engine.json) gets the same two objects: counters stay monotonic
// and the in-process idempotency records in front of Redis are kept.
std::shared_ptr<keel::net::RedisClient> redis_state(const RedisServeOptions& r, keel::net::RepositoryOptions& ropts) {
  auto client = std::make_shared<keel::net::RedisClient>(r.client);
  auto made = std::make_shared<std::pair<std::mutex, std::map<std::string, keel::net::EngineSharedState>>>();
  ropts.shared_state = [client, r, made](const std::string& engine) {
    std::lock_guard lock(made->first);
    auto [it, fresh] = made->second.try_emplace(engine);
    if (!fresh) return it->second;
    keel::net::EngineSharedState& st = it->second;
    if (r.cache) {
      keel::net::RedisCacheOptions co;
      co.prefix = r.prefix + ":cache";
      co.ttl = r.cache_ttl;
      co.deadline_share = r.deadline_share;
      st.cache = std::make_shared<keel::net::RedisCache>(client, co);
    }
    if (r.idempotency) {
      keel::net::RedisIdempotencyOptions io = r.idem;
      io.prefix = r.prefix + ":idem:" + engine;
      io.deadline_share = r.deadline_share;
      st.idempotency = std::make_shared<keel::net::RedisIdempotencyStore>(client, io);
    }
    return st;
  };
  return client;
}

void log_line(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

int serve(ServeOptions o, bool check) {
  // Signals are taken by sigwait on this thread only: block them before
  // any thread starts, so every thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  if (!o.token_file.empty()) {
    std::ifstream in(o.token_file);
    if (!in) bad("auth.token_file", "cannot read " + o.token_file);
    std::string token((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
    if (token.size() < 16) bad("auth.token_file", "the token must have at least 16 characters");
    if (token.find_first_of(" \t\r\n") != std::string::npos) bad("auth.token_file", "the token must be one word");
    o.service.auth_token = std::move(token);
  } else if (o.service.auth_infer) {
    bad("auth.infer", "needs auth.token_file");
  }
  auto registry = std::make_shared<keel::MetricsRegistry>(4096);
  const auto refused = [](const std::string& error) {
    log_line(nlohmann::json{{"event", "reload_refused"}, {"error", error}}.dump());
  };
  keel::net::RepositoryOptions ropts{registry, refused, {}};
  std::shared_ptr<keel::net::RedisClient> redis;
  if (o.redis.enabled) {
    redis = redis_state(o.redis, ropts);  // throws on a missing password file or variable
    redis->register_metrics(*registry);
  }
  keel::net::ModelRepository repo(ropts);
  if (!o.models_dir.empty()) repo.add_directory(o.models_dir);
  for (const auto& [name, file] : o.models) repo.add_file(name, file);
  if (repo.empty()) bad("keel serve", "no models: give --models DIR or --model NAME=FILE");
  if (check) {
    const auto tls_ok = [](const char* section, const std::string& cert, const std::string& client_ca) {
      if (!cert.empty())
        std::cout << "ok: " << section << " " << cert << (client_ca.empty() ? "" : " (client certificates required)")
                  << "\n";
    };
    keel::net::HttpServer::check_tls(o.http);  // throws naming the http_tls field
    tls_ok("http_tls", o.http.tls_cert_file, o.http.tls_client_ca_file);
    if (o.grpc_enabled) {  // as at the start: without gRPC its files are not read
      keel::net::GrpcServer::check_tls(o.grpc);  // throws naming the grpc_tls field
      tls_ok("grpc_tls", o.grpc.tls_cert_file, o.grpc.tls_client_ca_file);
    }
    for (const auto* m : repo.all())
      std::cout << "ok: model '" << m->name << "' version " << m->version << " (" << m->features << " features)\n";
    if (redis) {
      const keel::Status st = redis->ping(keel::Deadline::after(ms(1000)));
      std::cout << (st ? "ok: redis " : "warning: redis ") << redis_target(o.redis)
                << (st ? " answers" : " does not answer (keel serve would start without it): " + st.message())
                << "\n";
    }
    return 0;
  }
  keel::net::RestService service(repo, *registry, o.service);
  keel::net::HttpServer server(o.http, service, *registry);
  server.start();
  o.grpc.host = o.http.host;
  o.grpc.max_message_bytes = o.http.limits.max_body_bytes;
  std::unique_ptr<keel::net::GrpcServer> grpc;
  if (o.grpc_enabled) {
    grpc = std::make_unique<keel::net::GrpcServer>(o.grpc, service, *registry);
    grpc->start();
  }
  if (o.poll > Duration::zero()) repo.watch(o.poll);
  log_line("{\"event\":\"listening\",\"http\":\"" + server.bound_address() + "\"" +
           (server.tls() ? ",\"http_scheme\":\"https\",\"http_tls\":true" : ",\"http_scheme\":\"http\"") +
           (grpc ? ",\"grpc\":\"" + grpc->bound_address() + "\"" : std::string()) +
           (grpc && !o.grpc.tls_cert_file.empty() ? ",\"grpc_tls\":true" : "") +
           ",\"models\":" + std::to_string(repo.all().size()) + "}");
  if (redis) {
    // Not a start condition: without Redis every request is answered with
    // no shared cache and local idempotency, and the client reconnects.
    const keel::Status st = redis->ping(keel::Deadline::after(ms(500)));
    nlohmann::json ev{{"event", "redis"},
                      {"mode", o.redis.client.sentinel.sentinels.empty() ? "direct" : "sentinel"},
                      {"target", redis_target(o.redis)},
                      {"state", st ? "up" : "unreachable"},
                      {"cache", o.redis.cache},
                      {"idempotency", o.redis.idempotency}};
    if (st) ev["master"] = redis->master();
    else ev["error"] = st.message();
    log_line(ev.dump());
  }
  // systemd (Type=notify): ready now that every model is loaded and the
  // listeners are bound; the watchdog is fed from the signal loop below
  // while every I/O loop keeps running.
  const keel::net::SystemdNotifier systemd;
  systemd.notify("READY=1\nSTATUS=serving " + std::to_string(repo.all().size()) + " model(s) on " +
                 (server.tls() ? "https://" : "http://") + server.bound_address());
  const Duration watchdog = systemd.watchdog_interval();
  auto last_ping = std::chrono::steady_clock::now();
  const auto feed_watchdog = [&] {
    if (watchdog <= Duration::zero()) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ping < watchdog) return;
    last_ping = now;
    if (server.responsive(watchdog)) systemd.notify("WATCHDOG=1");
  };

  const auto wait = [&](Duration d) {  // next signal within d, flushing the access log meanwhile
    const auto until = std::chrono::steady_clock::now() + d;
    const Duration tick = watchdog > Duration::zero() ? std::min<Duration>(ms(200), watchdog / 2) : ms(200);
    while (true) {
      feed_watchdog();
      const auto left = until - std::chrono::steady_clock::now();
      if (left <= Duration::zero()) return 0;
      const auto step = std::min<Duration>(left, tick);
      timespec ts{static_cast<time_t>(step.count() / 1000000000), static_cast<long>(step.count() % 1000000000)};
      const int sig = sigtimedwait(&sigs, nullptr, &ts);
      std::fflush(stdout);
      if (sig > 0) return sig;
    }
  };
  int sig = 0;
  while (true) {
    sig = wait(std::chrono::hours(24 * 365));
    if (sig == SIGHUP) {
      std::vector<std::string> errors;
      const auto n = repo.reload_changed(&errors);
      for (const auto& e : errors) refused(e);
      log_line("{\"event\":\"reload\",\"swapped\":" + std::to_string(n) + "}");
      systemd.notify("STATUS=reloaded: " + std::to_string(n) + " swapped, " + std::to_string(errors.size()) +
                     " refused");
      continue;
    }
    if (sig == SIGTERM || sig == SIGINT) break;
  }
  // Drain: not ready at once, keep accepting for drain_delay so load
  // balancers notice, then finish what is in flight within drain_timeout.
  systemd.notify("STOPPING=1\nSTATUS=draining");
  service.set_draining();
  server.end_keep_alive();
  log_line("{\"event\":\"draining\",\"signal\":" + std::to_string(sig) + "}");
  if (int s2 = wait(o.drain_delay); s2 == SIGTERM || s2 == SIGINT) {
    log_line("{\"event\":\"exit\",\"reason\":\"second signal\"}");
    std::_Exit(1);
  }
  server.stop_accepting();
  // gRPC refuses new calls and finishes in-flight ones within drain_timeout.
  std::thread grpc_drain([&] {
    if (grpc) grpc->shutdown(o.drain_timeout);
  });
  const auto until = std::chrono::steady_clock::now() + o.drain_timeout;
  // Busy connections include requests still being read: they get a 503
  // once read, rather than a reset by stop(). Once nothing is busy, the
  // drain settles for kDrainSettle before stop(): a connection accepted
  // just before the last request finished may not have sent its request
  // yet (stop() would cut it off unanswered). It gets that long to send
  // it, and a 503; the HTTP server's sweep closes it after 100 ms idle.
  constexpr Duration kDrainSettle = ms(300);
  bool settled = false;
  for (;;) {
    const bool idle = server.busy_connections() == 0 && service.in_flight() == 0;
    if (idle && settled) break;
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) {
      if (!idle) {
        log_line("{\"event\":\"drain_timeout\",\"busy_connections\":" +
                 std::to_string(server.busy_connections()) + "}");
      }
      break;
    }
    settled = idle;
    const Duration step = idle ? std::min<Duration>(kDrainSettle, until - now) : ms(10);
    if (int s2 = wait(step); s2 == SIGTERM || s2 == SIGINT) {
      log_line("{\"event\":\"exit\",\"reason\":\"second signal\"}");
      std::_Exit(1);
    }
  }
  grpc_drain.join();
  server.stop();
  log_line("{\"event\":\"stopped\"}");
  return 0;
}

}  // namespace

KEEL_CLI_COMMAND(serve) {
  auto* sub = app.add_subcommand("serve", "Serve models over the Open Inference Protocol (KServe v2 REST and gRPC)");
  auto opts = std::make_shared<ServeOptions>();
  auto model_args = std::make_shared<std::vector<std::string>>();
  auto config = std::make_shared<std::string>();
  auto check = std::make_shared<bool>(false);
  auto port = std::make_shared<int>(-1);
  auto grpc_port = std::make_shared<int>(-2);
  auto host = std::make_shared<std::string>();
  auto io = std::make_shared<unsigned>(0);
  auto scoring = std::make_shared<int>(-1);
  auto drain_delay = std::make_shared<long>(-1);
  auto drain_timeout = std::make_shared<long>(-1);
  auto poll = std::make_shared<long>(-1);
  auto models_dir = std::make_shared<std::string>();
  auto token_file = std::make_shared<std::string>();
  auto auth_infer = std::make_shared<bool>(false);
  auto redis_addr = std::make_shared<std::string>();
  auto redis_sentinels = std::make_shared<std::string>();
  auto redis_master = std::make_shared<std::string>();
  sub->add_option("--models", *models_dir, "Model repository: one folder per model");
  sub->add_option("--model", *model_args, "NAME=FILE: serve one model file");
  sub->add_option("--http-port,--port", *port, "HTTP port (0: a free one; default 8000)");
  sub->add_option("--grpc-port", *grpc_port, "gRPC port (0: a free one; -1: no gRPC; default 8001)");
  sub->add_option("--host", *host, "Address to bind (default 127.0.0.1)");
  sub->add_option("--config", *config, "serve.json with every option; flags override it");
  sub->add_option("--io-threads", *io, "I/O threads (default 1)");
  sub->add_option("--scoring-threads", *scoring, "Scoring pool threads, apart from I/O (0: score on the I/O thread; default 2)");
  sub->add_option("--poll-ms", *poll, "Reload changed model files every this many ms (0: only on SIGHUP)");
  sub->add_option("--drain-delay-ms", *drain_delay, "After SIGTERM, keep accepting this long (default 5000)");
  sub->add_option("--drain-timeout-ms", *drain_timeout, "Then finish in-flight requests within this (default 30000)");
  sub->add_option("--auth-token-file", *token_file,
                  "Bearer token file: required for /v2/repository (disabled without one)");
  sub->add_flag("--auth-infer", *auth_infer, "Require the bearer token for inference too");
  sub->add_option("--redis", *redis_addr,
                  "HOST:PORT of the Redis every replica shares as its cache and idempotency store");
  sub->add_option("--redis-sentinels", *redis_sentinels, "HOST:PORT,...: find the Redis master through Sentinel");
  sub->add_option("--redis-master-name", *redis_master, "The Sentinel master name (default mymaster)");
  sub->add_flag("--check", *check, "Validate the config and every model, then exit");
  return [=] {
    try {
      ServeOptions o;
      if (!config->empty()) apply_config(*config, o);
      if (!models_dir->empty()) o.models_dir = *models_dir;
      for (const auto& m : *model_args) {
        const auto eq = m.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == m.size()) bad("--model " + m, "expected NAME=FILE");
        o.models[m.substr(0, eq)] = m.substr(eq + 1);
      }
      if (*port >= 0) {
        if (*port > 65535) bad("--http-port", "must be in [0, 65535]");
        o.http.port = static_cast<std::uint16_t>(*port);
      }
      if (*grpc_port != -2) {
        if (*grpc_port < -1 || *grpc_port > 65535) bad("--grpc-port", "must be in [-1, 65535]");
        o.grpc_enabled = *grpc_port >= 0;
        if (o.grpc_enabled) o.grpc.port = static_cast<std::uint16_t>(*grpc_port);
      }
      if (!host->empty()) o.http.host = *host;
      if (*io > 0) o.http.io_threads = *io;
      if (*scoring >= 0) o.service.scoring_threads = static_cast<unsigned>(*scoring);
      if (*poll >= 0) o.poll = ms(*poll);
      if (!token_file->empty()) o.token_file = *token_file;
      if (*auth_infer) o.service.auth_infer = true;
      if (*drain_delay >= 0) o.drain_delay = ms(*drain_delay);
      if (*drain_timeout >= 0) o.drain_timeout = ms(*drain_timeout);
      if (!redis_addr->empty() && !redis_sentinels->empty()) bad("--redis", "give --redis or --redis-sentinels, not both");
      if (!redis_addr->empty()) {
        o.redis.client.address = redis_address(*redis_addr, "--redis");
        o.redis.client.sentinel.sentinels.clear();
        o.redis.enabled = true;
      }
      if (!redis_sentinels->empty()) {
        o.redis.client.sentinel.sentinels = redis_addresses(*redis_sentinels, "--redis-sentinels");
        o.redis.enabled = true;
      }
      if (!redis_master->empty()) {
        if (!o.redis.enabled || o.redis.client.sentinel.sentinels.empty())
          bad("--redis-master-name", "needs sentinels (--redis-sentinels or redis.sentinels)");
        o.redis.client.sentinel.master_name = *redis_master;
      }
      return serve(std::move(o), *check);
    } catch (const keel::Error& e) {
      std::cerr << "keel serve: " << e.what() << "\n";
      return 2;
    } catch (const std::exception& e) {
      std::cerr << "keel serve: " << e.what() << "\n";
      return 2;
    }
  };
}
#endif  // KEEL_HAVE_NET
