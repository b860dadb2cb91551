// keel worker: scores requests taken off a Redis Stream (consumer group,
// at-least-once delivery, one result per request id kept by a done marker in
// Redis, dead letters). See net/worker/stream_worker.hpp.
#include "cli/registry.hpp"

#ifdef KEEL_HAVE_NET
#include <keel/engine/config.hpp>
#include <keel/net/remote/remote_config.hpp>
#include <keel/net/worker/stream_worker.hpp>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>
#include <unistd.h>

namespace {

using ms = std::chrono::milliseconds;

keel::net::RedisAddress address(const std::string& flag, const std::string& s) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0)
    throw keel::Error(keel::StatusCode::kInvalidInput, flag + " " + s + ": expected HOST:PORT");
  keel::net::RedisAddress a;
  a.host = s.substr(0, colon);
  try {
    a.port = std::stoi(s.substr(colon + 1));
  } catch (const std::exception&) {
    a.port = 0;
  }
  if (a.port <= 0 || a.port > 65535)
    throw keel::Error(keel::StatusCode::kInvalidInput, flag + " " + s + ": port must be in [1, 65535]");
  return a;
}

void log_line(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

struct WorkerArgs {
  std::string model, engine, redis = "127.0.0.1:6379", master_name = "mymaster";
  std::vector<std::string> sentinels;
  keel::net::RedisAuthOptions auth;
  keel::net::StreamWorkerOptions w;
  long block_ms = 200, claim_idle_ms = 30000, claim_interval_ms = 1000, timeout_ms = 1000, stats_ms = 1000;
  long done_ttl_ms = 24L * 3600 * 1000;
};

int run_worker(WorkerArgs a) {
  if (a.model.empty() == a.engine.empty())
    throw keel::Error(keel::StatusCode::kInvalidInput, "give exactly one of --model FILE or --engine engine.json");
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  keel::net::RedisOptions ro;
  if (a.sentinels.empty()) ro.address = address("--redis", a.redis);
  for (const auto& s : a.sentinels) ro.sentinel.sentinels.push_back(address("--sentinel", s));
  ro.sentinel.master_name = a.master_name;
  ro.auth = a.auth;
  ro.name = "worker";
  auto client = std::make_shared<keel::net::RedisClient>(ro);
  auto metrics = std::make_shared<keel::MetricsRegistry>();
  keel::EngineBuilder b;
  if (!a.engine.empty()) {
    keel::ConfigOptions co;
    co.metrics = metrics;
    keel::net::add_remote_models(co);
    b = keel::builder_from_config(a.engine, co);
  } else {
    b.model_file("primary", a.model).stage("primary").metrics(metrics);
  }
  b.name("worker");
  auto engine = b.build();
  client->register_metrics(*metrics);

  auto& w = a.w;
  if (w.consumer.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    w.consumer = std::string(host) + "-" + std::to_string(::getpid());
  }
  w.block = ms(a.block_ms);
  w.claim_idle = ms(a.claim_idle_ms);
  w.claim_interval = ms(a.claim_interval_ms);
  w.score_timeout = ms(a.timeout_ms);
  w.done_ttl = ms(a.done_ttl_ms);
  keel::net::StreamWorker worker(client, *engine, w);
  worker.register_metrics(*metrics);
  if (keel::Status s = worker.ensure_group(); !s) std::cerr << "keel worker: " << s.to_string() << " (retrying)\n";

  std::atomic<bool> stop{false};
  std::thread t([&] { worker.run(stop); });
  log_line("{\"event\":\"started\",\"consumer\":\"" + w.consumer + "\",\"stream\":\"" + w.stream + "\"}");
  for (;;) {
    timespec ts{a.stats_ms / 1000, (a.stats_ms % 1000) * 1000000};
    const int sig = sigtimedwait(&sigs, nullptr, &ts);
    log_line("{\"event\":\"stats\",\"worker\":" + worker.stats_json() + "}");
    if (sig == SIGTERM || sig == SIGINT) break;
  }
  stop = true;
  t.join();
  log_line("{\"event\":\"stopped\",\"worker\":" + worker.stats_json() + "}");
  return 0;
}

}  // namespace

KEEL_CLI_COMMAND(worker) {
  auto* sub = app.add_subcommand("worker", "Score requests from a Redis Stream (consumer group, dead letters)");
  auto a = std::make_shared<WorkerArgs>();
  auto max_deliveries = std::make_shared<unsigned>(5);
  auto batch = std::make_shared<std::size_t>(32);
  sub->add_option("--model", a->model, "Model file to score with");
  sub->add_option("--engine", a->engine, "engine.json (the same configs as keel serve)");
  sub->add_option("--redis", a->redis, "Redis HOST:PORT (default 127.0.0.1:6379)");
  sub->add_option("--sentinel", a->sentinels, "Sentinel HOST:PORT (repeat; replaces --redis)");
  sub->add_option("--master-name", a->master_name, "Sentinel master name (default mymaster)");
  sub->add_option("--redis-user", a->auth.user, "ACL user");
  sub->add_option("--redis-password-file", a->auth.password_file, "File whose first line is the password");
  sub->add_option("--redis-password-env", a->auth.password_env, "Environment variable holding the password");
  sub->add_option("--stream", a->w.stream, "Request stream (default keel:requests)");
  sub->add_option("--group", a->w.group, "Consumer group (default keel)");
  sub->add_option("--consumer", a->w.consumer, "Consumer name (default HOST-PID)");
  sub->add_option("--results", a->w.results, "Results stream (default keel:results)");
  sub->add_option("--dead-letter", a->w.dead_letter, "Dead-letter stream (default keel:dead)");
  sub->add_option("--batch", *batch, "Entries read at once: the bound on entries held (default 32)");
  sub->add_option("--block-ms", a->block_ms, "XREADGROUP BLOCK (default 200)");
  sub->add_option("--claim-idle-ms", a->claim_idle_ms, "Take over entries pending this long (default 30000)");
  sub->add_option("--claim-interval-ms", a->claim_interval_ms, "How often to look for them (default 1000)");
  sub->add_option("--max-deliveries", *max_deliveries, "Dead-letter after this many deliveries (default 5)");
  sub->add_option("--timeout-ms", a->timeout_ms, "Each request's deadline (default 1000)");
  sub->add_option("--done-ttl-ms,--idempotency-ttl-ms", a->done_ttl_ms,
                  "How long a request id is remembered: a later entry with it gets no second result (default "
                  "86400000)");
  sub->add_option("--stats-ms", a->stats_ms, "Print a stats line this often (default 1000)");
  return [=] {
    try {
      WorkerArgs args = *a;
      args.w.batch = *batch;
      args.w.max_deliveries = *max_deliveries;
      for (long v : {args.block_ms, args.claim_idle_ms, args.claim_interval_ms, args.timeout_ms, args.stats_ms,
                     args.done_ttl_ms})
        if (v <= 0) throw keel::Error(keel::StatusCode::kInvalidInput, "every *-ms option must be positive");
      return run_worker(std::move(args));
    } catch (const std::exception& e) {
      std::cerr << "keel worker: " << e.what() << "\n";
      return 2;
    }
  };
}
#endif  // KEEL_HAVE_NET
