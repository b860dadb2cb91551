#include <keel/net/worker/stream_worker.hpp>

#include <keel/net/oip/codec.hpp>

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

namespace keel::net {
namespace {

using Clock = std::chrono::steady_clock;

// Writes the result once per request id and acknowledges the entry, in one
// step. KEYS: results, done marker, stream. ARGV: ttl ms, entry id, request
// id, scores, stage, degraded, group.
const RedisScript kWriteResult(R"lua(
local fresh = redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[1])
if fresh then
  redis.call('XADD', KEYS[1], '*', 'id', ARGV[3], 'entry', ARGV[2], 'scores', ARGV[4], 'stage', ARGV[5],
             'degraded', ARGV[6])
end
redis.call('XACK', KEYS[3], ARGV[7], ARGV[2])
if fresh then return 1 end
return 0
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
  std::vector<double> row;  // JSON numbers are doubles: the models get them (LightGBM compares in double)
  std::atomic<std::uint64_t> read{0}, claimed{0}, written{0}, already_written{0}, dead_lettered{0},
      left_pending{0}, redis_errors{0};

  State(std::shared_ptr<RedisClient> r, ScoringEngine& e, StreamWorkerOptions opts)
      : redis(std::move(r)), engine(e), o(std::move(opts)) {}

  Deadline redis_deadline(Duration extra = Duration::zero()) const {
    return Deadline::after(redis->options().command_timeout + extra + std::chrono::milliseconds(500));
  }

  // The features field as a row, or why not (naming the element).
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
    row.clear();
    std::size_t i = 0;
    for (auto v : a) {
      double d = 0;
      if (v.is_null()) {
        row.push_back(std::numeric_limits<double>::quiet_NaN());
      } else if (v.get_double().get(d) == simdjson::SUCCESS) {
        row.push_back(d);
      } else {
        return invalid_input("entry " + e.id + ": features[" + std::to_string(i) + "] is not a number or null");
      }
      ++i;
    }
    return {};
  }

  Status dead_letter(const Entry& e, const std::string& error) {
    const std::string keys[] = {o.dead_letter, o.stream};
    const std::string deliveries = std::to_string(e.deliveries);
    const std::string_view k[] = {keys[0], keys[1]};
    const std::string_view a[] = {e.id, e.request_id, error, deliveries, e.features, o.group};
    auto r = redis->eval(kDeadLetter, k, a, redis_deadline());
    if (!r) return r.status();
    if (r->type() == RedisReply::Type::kError) return unavailable("dead-letter script: " + std::string(r->str()));
    dead_lettered.fetch_add(1, std::memory_order_relaxed);
    return {};
  }

  Status write(const Entry& e, const Response& resp) {
    std::string scores = "[";
    for (std::size_t i = 0; i < resp.scores.size(); ++i) {
      if (i) scores.push_back(',');
      oip::append_json_float(scores, resp.scores[i]);
    }
    scores.push_back(']');
    const std::string done = o.done_prefix + ":" + e.request_id;
    const std::string_view k[] = {o.results, done, o.stream};
    const std::string_view a[] = {ttl_ms, e.id, e.request_id, scores, resp.stage, resp.degraded ? "1" : "0", o.group};
    auto r = redis->eval(kWriteResult, k, a, redis_deadline());
    if (!r) return r.status();
    if (r->type() == RedisReply::Type::kError) return unavailable("result script: " + std::string(r->str()));
    (r->integer() == 1 ? written : already_written).fetch_add(1, std::memory_order_relaxed);
    return {};
  }

  // Handles one entry; an error return means Redis could not be reached
  // (the entry stays pending).
  Status handle(const Entry& e) {
    if (e.deliveries > o.max_deliveries)
      return dead_letter(e, "delivered " + std::to_string(e.deliveries) + " times without being acknowledged");
    if (Status s = parse(e); !s) return dead_letter(e, s.to_string());
    Request req;
    req.id = e.request_id;
    req.features64 = row;
    req.deadline = Deadline::after(o.score_timeout);
    auto r = engine.score(req);
    if (!r) {
      if (!r.status().retryable()) return dead_letter(e, r.status().to_string());
      if (e.deliveries >= o.max_deliveries)
        return dead_letter(e, "delivered " + std::to_string(e.deliveries) + " times; last error: " +
                                  r.status().to_string());
      left_pending.fetch_add(1, std::memory_order_relaxed);
      return {};
    }
    return write(e, *r);
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
    // The delivery count, which XAUTOCLAIM has just raised.
    for (auto& e : out) {
      auto p = redis->command({"XPENDING", o.stream, o.group, e.id, e.id, "1"}, redis_deadline());
      if (p && p->type() == RedisReply::Type::kArray && p->size() == 1 && (*p)[0].size() >= 4)
        e.deliveries = static_cast<std::uint64_t>((*p)[0][3].integer());
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
  std::size_t handled = 0;
  for (const auto& e : entries) {
    if (Status st = s.handle(e); !st) return st;  // Redis unreachable: the rest stay pending
    ++handled;
  }
  return handled;
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
