#include <keel/net/worker/stream_worker.hpp>

#include <keel/net/oip/codec.hpp>

#include <simdjson.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <span>
#include <thread>
#include <vector>

namespace keel::net {
namespace {

using Clock = std::chrono::steady_clock;

// Writes the result once per request id and acknowledges the entry, in one
// step. The marker holds a fingerprint of the features: the same id with
// other features is a conflict (the IETF draft's 422), dead-lettered here.
// KEYS: results, done marker, stream, dead letter. ARGV: ttl ms, entry id,
// request id, scores, stage, degraded, group, fingerprint, features,
// deliveries. Returns 1 written, 0 written before (acknowledged only),
// 2 dead-lettered as a conflict.
const RedisScript kWriteResult(R"lua(
local fresh = redis.call('SET', KEYS[2], ARGV[8], 'NX', 'PX', ARGV[1])
if fresh then
  redis.call('XADD', KEYS[1], '*', 'id', ARGV[3], 'entry', ARGV[2], 'scores', ARGV[4], 'stage', ARGV[5],
             'degraded', ARGV[6])
  redis.call('XACK', KEYS[3], ARGV[7], ARGV[2])
  return 1
end
local was = redis.call('GET', KEYS[2])
if was == ARGV[8] or was == ARGV[2] then
  redis.call('XACK', KEYS[3], ARGV[7], ARGV[2])
  return 0
end
redis.call('XADD', KEYS[4], '*', 'entry', ARGV[2], 'id', ARGV[3],
           'error', 'conflict: request id ' .. ARGV[3] .. ' was used before with other features', 'deliveries',
           ARGV[10], 'features', ARGV[9])
redis.call('XACK', KEYS[3], ARGV[7], ARGV[2])
return 2
)lua");

// Dead-letters an entry and acknowledges it, in one step. KEYS: dead letter,
// stream. ARGV: entry id, request id, error, deliveries, features, group.
const RedisScript kDeadLetter(R"lua(
redis.call('XADD', KEYS[1], '*', 'entry', ARGV[1], 'id', ARGV[2], 'error', ARGV[3], 'deliveries', ARGV[4],
           'features', ARGV[5])
redis.call('XACK', KEYS[2], ARGV[6], ARGV[1])
return 1
)lua");

struct Entry {
  std::string id;  // stream entry id
  std::string request_id;
  std::string features;
  bool has_features = false;
  std::uint64_t deliveries = 1;
};

// [[id, [f, v, ...]], ...] into entries; nil field lists (deleted) skipped.
void collect(RedisReply::View list, std::vector<Entry>& out) {
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto e = list[i];
    if (e.type() != RedisReply::Type::kArray || e.size() < 2 || e[1].type() != RedisReply::Type::kArray) continue;
    Entry x;
    x.id = std::string(e[0].str());
    const auto f = e[1];
    for (std::size_t k = 0; k + 1 < f.size(); k += 2) {
      if (f[k].str() == "id") x.request_id = std::string(f[k + 1].str());
      if (f[k].str() == "features") {
        x.features = std::string(f[k + 1].str());
        x.has_features = true;
      }
    }
    if (x.request_id.empty()) x.request_id = x.id;
    out.push_back(std::move(x));
  }
}

}  // namespace

struct StreamWorker::State {
  std::shared_ptr<RedisClient> redis;
  ScoringEngine& engine;
  StreamWorkerOptions o;
  std::string ttl_ms, claim_idle_ms, block_ms, batch;
  std::string cursor = "0-0";
  Clock::time_point next_claim{};
  simdjson::dom::parser parser;
  // A round's rows, JSON numbers as doubles: the models get them (LightGBM
  // compares in double).
  std::vector<double> rows;
  std::vector<std::size_t> scored;  // entry index of each row
  BatchResult result;
  Response resp;
  // A round's Redis commands, sent as one pipeline.
  enum class Kind : std::uint8_t { kWrite, kDeadLetter };
  struct Script {
    const RedisScript* script;
    Kind kind;
    std::vector<std::string> keys, args;
  };
  std::vector<Script> scripts;
  std::atomic<std::uint64_t> read{0}, claimed{0}, written{0}, already_written{0}, dead_lettered{0},
      left_pending{0}, redis_errors{0};

  State(std::shared_ptr<RedisClient> r, ScoringEngine& e, StreamWorkerOptions opts)
      : redis(std::move(r)), engine(e), o(std::move(opts)) {}

  Deadline redis_deadline(Duration extra = Duration::zero()) const {
    return Deadline::after(redis->options().command_timeout + extra + std::chrono::milliseconds(500));
  }

  // The features field appended to `rows`, or why not (naming the element).
  Status parse(const Entry& e) {
    if (!e.has_features) return invalid_input("entry " + e.id + ": no 'features' field");
    simdjson::dom::element doc;
    if (parser.parse(e.features.data(), e.features.size()).get(doc) != simdjson::SUCCESS)
      return invalid_input("entry " + e.id + ": features is not JSON");
    simdjson::dom::array a;
    if (doc.get_array().get(a) != simdjson::SUCCESS) return invalid_input("entry " + e.id + ": features is not an array");
    if (a.size() != engine.num_features())
      return invalid_input("entry " + e.id + ": features has " + std::to_string(a.size()) + " values, the model takes " +
                           std::to_string(engine.num_features()));
    const std::size_t begin = rows.size();
    std::size_t i = 0;
    for (auto v : a) {
      double d = 0;
      if (v.is_null()) {
        rows.push_back(std::numeric_limits<double>::quiet_NaN());
      } else if (v.get_double().get(d) == simdjson::SUCCESS) {
        rows.push_back(d);
      } else {
        rows.resize(begin);
        return invalid_input("entry " + e.id + ": features[" + std::to_string(i) + "] is not a number or null");
      }
      ++i;
    }
    return {};
  }

  void dead_letter(const Entry& e, const std::string& error) {
    scripts.push_back({&kDeadLetter, Kind::kDeadLetter, {o.dead_letter, o.stream},
                       {e.id, e.request_id, error, std::to_string(e.deliveries), e.features, o.group}});
  }

  // The row's fingerprint: its doubles' bytes (so "1" and "1.0" agree).
  static std::string fingerprint(std::span<const double> row) {
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx",
                  static_cast<unsigned long long>(XXH3_64bits(row.data(), row.size_bytes())));
    return std::string(hex, 16);
  }

  void write(const Entry& e, std::span<const double> row) {
    std::string scores = "[";
    for (std::size_t i = 0; i < resp.scores.size(); ++i) {
      if (i) scores.push_back(',');
      oip::append_json_float(scores, resp.scores[i]);
    }
    scores.push_back(']');
    scripts.push_back({&kWriteResult, Kind::kWrite, {o.results, o.done_prefix + ":" + e.request_id, o.stream, o.dead_letter},
                       {ttl_ms, e.id, e.request_id, std::move(scores), resp.stage, resp.degraded ? "1" : "0", o.group,
                        fingerprint(row), e.features, std::to_string(e.deliveries)}});
  }

  // What a failed row comes to: dead-lettered when it can never succeed or
  // has been delivered too often, else left pending for redelivery.
  void failed(const Entry& e, const Status& st) {
    if (!st.retryable()) return dead_letter(e, st.to_string());
    if (e.deliveries >= o.max_deliveries)
      return dead_letter(e, "delivered " + std::to_string(e.deliveries) + " times; last error: " + st.to_string());
    left_pending.fetch_add(1, std::memory_order_relaxed);
  }

  // Handles a round's entries: poison ones are dead-lettered, the rest are
  // scored in one score_batch, and every result and dead letter goes to
  // Redis in one pipeline (each entry's script is atomic on its own). An
  // error return means Redis could not be reached: the entries whose
  // scripts did not run stay pending and are delivered again.
  Status handle(const std::vector<Entry>& entries) {
    scripts.clear();
    rows.clear();
    scored.clear();
    const std::size_t nf = engine.num_features();
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const Entry& e = entries[i];
      if (e.deliveries > o.max_deliveries) {
        dead_letter(e, "delivered " + std::to_string(e.deliveries) + " times without being acknowledged");
      } else if (Status st = parse(e); !st) {
        dead_letter(e, st.to_string());
      } else {
        scored.push_back(i);
      }
    }
    if (!scored.empty()) {
      BatchView view;
      view.values64 = rows;
      view.rows = scored.size();
      view.cols = nf;
      // No idempotency key: a request id's one result is kept by the done
      // marker in kWriteResult, per entry, which also refuses other features.
      const Status batch = engine.score_batch(view, result, Deadline::after(o.score_timeout));
      for (std::size_t k = 0; k < scored.size(); ++k) {
        const Entry& e = entries[scored[k]];
        if (!batch) {
          failed(e, batch);
        } else if (!result.status[k]) {
          failed(e, result.status[k]);
        } else if (result.response(k, resp)) {
          write(e, std::span<const double>(rows).subspan(k * nf, nf));
        } else {
          failed(e, internal_error("entry " + e.id + ": answered without a stage"));
        }
      }
    }
    return send();
  }

  Status send() {
    if (scripts.empty()) return {};
    std::vector<std::vector<std::string_view>> argv(scripts.size());
    std::vector<std::string> nkeys(scripts.size());
    const auto build = [&](std::size_t i, bool with_text) {
      const Script& sc = scripts[i];
      nkeys[i] = std::to_string(sc.keys.size());
      auto& v = argv[i];
      v.clear();
      v.push_back(with_text ? "EVAL" : "EVALSHA");
      v.push_back(with_text ? std::string_view(sc.script->text()) : std::string_view(sc.script->sha1()));
      v.push_back(nkeys[i]);
      v.insert(v.end(), sc.keys.begin(), sc.keys.end());
      v.insert(v.end(), sc.args.begin(), sc.args.end());
    };
    for (std::size_t i = 0; i < scripts.size(); ++i) build(i, false);
    std::vector<std::span<const std::string_view>> cmds(argv.begin(), argv.end());
    auto replies = redis->pipeline(cmds, redis_deadline());
    if (!replies) return replies.status();
    // A Redis that does not know the scripts yet (restarted, flushed): the
    // scripts it refused go again with their text.
    std::vector<std::size_t> again;
    for (std::size_t i = 0; i < replies->size(); ++i) {
      const RedisReply& r = (*replies)[i];
      if (r.type() == RedisReply::Type::kError && r.str().starts_with("NOSCRIPT")) again.push_back(i);
    }
    if (!again.empty()) {
      std::vector<std::span<const std::string_view>> retry;
      for (std::size_t i : again) {
        build(i, true);
        retry.emplace_back(argv[i]);
      }
      auto r2 = redis->pipeline(retry, redis_deadline());
      if (!r2) return r2.status();
      for (std::size_t j = 0; j < again.size(); ++j) (*replies)[again[j]] = std::move((*r2)[j]);
    }
    Status first_error;
    for (std::size_t i = 0; i < replies->size(); ++i) {
      const RedisReply& r = (*replies)[i];
      if (r.type() == RedisReply::Type::kError) {
        if (first_error) first_error = unavailable("worker script: " + std::string(r.str()));
        continue;  // that entry stays pending
      }
      if (scripts[i].kind == Kind::kDeadLetter) {
        dead_lettered.fetch_add(1, std::memory_order_relaxed);
      } else {
        const long long n = r.integer();
        (n == 1 ? written : n == 0 ? already_written : dead_lettered).fetch_add(1, std::memory_order_relaxed);
      }
    }
    return first_error;
  }

  Result<std::vector<Entry>> claim() {
    std::vector<Entry> out;
    auto r = redis->command({"XAUTOCLAIM", o.stream, o.group, o.consumer, claim_idle_ms, cursor, "COUNT", batch},
                            redis_deadline());
    if (!r) return r.status();
    if (r->type() == RedisReply::Type::kError) return unavailable("XAUTOCLAIM: " + std::string(r->str()));
    if (r->size() < 2) return out;
    cursor = std::string((*r)[0].str());
    collect((*r)[1], out);
    // The delivery counts, which XAUTOCLAIM has just raised: one pipeline.
    if (!out.empty()) {
      std::vector<std::array<std::string_view, 7>> argv;
      argv.reserve(out.size());
      for (const auto& e : out) argv.push_back({"XPENDING", o.stream, o.group, e.id, e.id, "1", ""});
      std::vector<std::span<const std::string_view>> cmds;
      for (const auto& a : argv) cmds.emplace_back(a.data(), 6);
      auto p = redis->pipeline(cmds, redis_deadline());
      if (!p) return p.status();
      for (std::size_t i = 0; i < out.size(); ++i) {
        const RedisReply& r = (*p)[i];
        if (r.type() == RedisReply::Type::kArray && r.size() == 1 && r[0].size() >= 4)
          out[i].deliveries = static_cast<std::uint64_t>(r[0][3].integer());
      }
    }
    claimed.fetch_add(out.size(), std::memory_order_relaxed);
    return out;
  }

  Result<std::vector<Entry>> read_new() {
    std::vector<Entry> out;
    CommandOptions co;
    co.timeout = o.block + redis->options().command_timeout;
    auto r = redis->command({"XREADGROUP", "GROUP", o.group, o.consumer, "COUNT", batch, "BLOCK", block_ms,
                             "STREAMS", o.stream, ">"},
                            redis_deadline(o.block), co);
    if (!r) return r.status();
    if (r->type() == RedisReply::Type::kError) return unavailable("XREADGROUP: " + std::string(r->str()));
    if (r->is_nil()) return out;
    for (std::size_t i = 0; i < r->size(); ++i)
      if ((*r)[i].size() >= 2) collect((*r)[i][1], out);
    read.fetch_add(out.size(), std::memory_order_relaxed);
    return out;
  }
};

StreamWorker::StreamWorker(std::shared_ptr<RedisClient> redis, ScoringEngine& engine, StreamWorkerOptions opts)
    : s_(std::make_shared<State>(std::move(redis), engine, std::move(opts))) {
  auto& o = s_->o;
  const auto bad = [](const std::string& w) { throw Error(StatusCode::kInvalidInput, "StreamWorker: " + w); };
  if (o.consumer.empty()) bad("consumer: a name unique to this worker is needed");
  if (o.stream.empty() || o.group.empty() || o.results.empty() || o.dead_letter.empty())
    bad("stream, group, results and dead_letter must not be empty");
  if (o.batch == 0) bad("batch must be at least 1");
  if (o.max_deliveries == 0) bad("max_deliveries must be at least 1");
  const auto ms = [](Duration d) {
    return std::to_string(std::max<long long>(1, std::chrono::duration_cast<std::chrono::milliseconds>(d).count()));
  };
  s_->ttl_ms = ms(o.done_ttl);
  s_->claim_idle_ms = ms(o.claim_idle);
  s_->block_ms = ms(o.block);
  s_->batch = std::to_string(o.batch);
}

StreamWorker::~StreamWorker() = default;

Status StreamWorker::ensure_group() {
  auto& s = *s_;
  auto r = s.redis->command({"XGROUP", "CREATE", s.o.stream, s.o.group, s.o.start_id, "MKSTREAM"}, s.redis_deadline());
  if (!r) return r.status();
  if (r->type() == RedisReply::Type::kError && !r->str().starts_with("BUSYGROUP"))
    return unavailable("XGROUP CREATE: " + std::string(r->str()));
  return {};
}

Result<std::size_t> StreamWorker::poll_once() {
  auto& s = *s_;
  std::vector<Entry> entries;
  if (Clock::now() >= s.next_claim) {
    auto c = s.claim();
    if (!c) return c.status();
    entries = std::move(*c);
    s.next_claim = Clock::now() + s.o.claim_interval;
  }
  if (entries.empty()) {
    auto n = s.read_new();
    if (!n) return n.status();
    entries = std::move(*n);
  }
  if (Status st = s.handle(entries); !st) return st;  // Redis unreachable: what was not written stays pending
  return entries.size();
}

void StreamWorker::run(const std::atomic<bool>& stop) {
  Duration backoff = std::chrono::milliseconds(10);
  bool group_ok = false;
  while (!stop.load(std::memory_order_relaxed)) {
    Status st = group_ok ? Status{} : ensure_group();
    if (st) {
      group_ok = true;
      auto r = poll_once();
      if (r) {
        backoff = std::chrono::milliseconds(10);
        continue;
      }
      st = r.status();
    }
    s_->redis_errors.fetch_add(1, std::memory_order_relaxed);
    std::this_thread::sleep_for(backoff);
    backoff = std::min<Duration>(backoff * 2, std::chrono::seconds(1));
  }
}

StreamWorkerStats StreamWorker::stats() const noexcept {
  const auto& s = *s_;
  StreamWorkerStats st;
  st.read = s.read.load();
  st.claimed = s.claimed.load();
  st.written = s.written.load();
  st.already_written = s.already_written.load();
  st.dead_lettered = s.dead_lettered.load();
  st.left_pending = s.left_pending.load();
  st.redis_errors = s.redis_errors.load();
  return st;
}

std::string StreamWorker::stats_json() const {
  const auto st = stats();
  return "{\"read\":" + std::to_string(st.read) + ",\"claimed\":" + std::to_string(st.claimed) +
         ",\"written\":" + std::to_string(st.written) + ",\"already_written\":" + std::to_string(st.already_written) +
         ",\"dead_lettered\":" + std::to_string(st.dead_lettered) + ",\"left_pending\":" +
         std::to_string(st.left_pending) + ",\"redis_errors\":" + std::to_string(st.redis_errors) + "}";
}

void StreamWorker::register_metrics(MetricsRegistry& reg) const {
  std::shared_ptr<State> s = s_;
  const auto entries = [&](const char* result, std::atomic<std::uint64_t> State::*field) {
    reg.counter_fn("keel_worker_entries_total",
                   "Stream entries by what happened to them (read, claimed, written, already_written, "
                   "dead_lettered, left_pending).",
                   {{"stream", s->o.stream}, {"result", result}},
                   [s, field] { return static_cast<double>(((*s).*field).load()); });
  };
  entries("read", &State::read);
  entries("claimed", &State::claimed);
  entries("written", &State::written);
  entries("already_written", &State::already_written);
  entries("dead_lettered", &State::dead_lettered);
  entries("left_pending", &State::left_pending);
  reg.counter_fn("keel_worker_redis_errors_total", "Worker rounds that could not reach Redis.",
                 {{"stream", s->o.stream}}, [s] { return static_cast<double>(s->redis_errors.load()); });
}

}  // namespace keel::net
