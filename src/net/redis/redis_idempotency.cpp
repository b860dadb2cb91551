#include <keel/net/redis/redis_idempotency.hpp>

#include "net/redis/wire.hpp"

#include <fmt/format.h>

#include <random>
#include <thread>

namespace keel::net {

namespace {

// Claims KEYS[1] for the pending record ARGV[1] for ARGV[2] ms, or returns
// what is there: {1} when claimed, {0, record} otherwise. Atomic.
const RedisScript kClaim(R"(
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
return {0, redis.call('GET', KEYS[1])}
)");

// Replaces the claim with the result ARGV[2] (for ARGV[3] ms) only while the
// record still starts with the owner's claim prefix ARGV[1].
const RedisScript kComplete(R"(
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
)");

// Deletes the claim only while the caller still owns it.
const RedisScript kRelease(R"(
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
)");

constexpr std::string_view kMagic = "KI1";
constexpr char kPending = 'P';
constexpr char kDone = 'D';
constexpr std::size_t kOwnerLen = 32;

std::string new_owner() {
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   std::hash<std::thread::id>{}(std::this_thread::get_id())};
  return fmt::format("{:016x}{:016x}", rng(), rng());
}

std::string encode_payload(const IdempotencyKey& key) {
  detail::WireWriter w;
  w.str(key.model);
  w.floats(key.features);
  return w.bytes();
}

// A stored batch: the record's whole BatchResult (a single request is a
// batch of one), so a replay on any replica gives the same per-row answers.
void encode_batch(detail::WireWriter& w, const BatchResult& b) {
  w.str(b.id);
  w.u64(b.rows);
  w.u64(b.width);
  w.floats(b.scores);
  for (std::size_t r = 0; r < b.rows; ++r) {
    w.u8(static_cast<std::uint8_t>(b.status[r].code()));
    w.u8(b.status[r].retryable() ? 1 : 0);
    w.str(b.status[r].message());
    w.u8(b.stage[r]);
    w.u8(b.anomaly[r]);
    w.u8(b.cache_hit[r]);
    w.u32(b.attempts[r]);
    w.f64(b.anomaly_score[r]);
    w.str(b.degraded_reason[r]);
    w.str(b.anomaly_reason[r]);
  }
  w.u32(static_cast<std::uint32_t>(b.stage_names.size()));
  for (std::size_t i = 0; i < b.stage_names.size(); ++i) {
    w.str(b.stage_names[i]);
    w.str(b.stage_model_ids[i]);
    w.u64(b.stage_model_versions[i]);
    w.u64(b.stage_content_ids[i].hi);
    w.u64(b.stage_content_ids[i].lo);
  }
  w.str(b.model_id);
  w.u64(b.model_version);
  w.u64(b.model_content_id.hi);
  w.u64(b.model_content_id.lo);
  w.u64(b.failed);
  w.u64(b.degraded);
  w.u64(static_cast<std::uint64_t>(b.latency.count()));
  if (b.reason_k == 0) return;  // the reason-codes section only when asked (older records end here)
  w.u32(b.reason_k);
  w.u8(static_cast<std::uint8_t>(b.reason_mode));
  for (std::size_t r = 0; r < b.rows; ++r) {
    w.str(b.reasons_unavailable[r]);
    const std::span<const Reason> codes = b.row_reasons(r);
    w.u32(static_cast<std::uint32_t>(codes.size()));
    for (const Reason& c : codes) {
      w.str(c.feature);
      w.u32(c.index);
      w.u32(c.output);
      w.f64(c.value);
      w.f64(c.contribution);
    }
  }
}

// The reason-codes section of a record (encode_batch), if it has one.
bool decode_reasons(detail::WireReader& in, BatchResult& b) {
  b.reason_k = 0;
  if (in.done()) return true;
  std::uint32_t k = 0;
  std::uint8_t mode = 0;
  if (!in.u32(k) || k == 0 || !in.u8(mode) || mode > static_cast<std::uint8_t>(ReasonMode::kIncreasing)) return false;
  b.reasons.clear();
  b.reason_begin.assign(1, 0);
  b.reasons_unavailable.assign(b.rows, {});
  for (std::size_t r = 0; r < b.rows; ++r) {
    std::uint32_t count = 0;
    // Every code takes at least 28 bytes: a count beyond what is left is torn.
    if (!in.str(b.reasons_unavailable[r]) || !in.u32(count) || count > in.rest().size() / 28) return false;
    for (std::uint32_t c = 0; c < count; ++c) {
      Reason& x = b.reasons.emplace_back();
      double contribution = 0.0;
      if (!in.str(x.feature) || !in.u32(x.index) || !in.u32(x.output) || !in.f64(x.value) || !in.f64(contribution)) {
        return false;
      }
      x.contribution = static_cast<float>(contribution);
    }
    b.reason_begin.push_back(static_cast<std::uint32_t>(b.reasons.size()));
  }
  if (!in.done()) return false;
  b.reason_k = k;
  b.reason_mode = static_cast<ReasonMode>(mode);
  return true;
}

bool decode_batch(detail::WireReader& in, BatchResult& b) {
  std::uint64_t rows = 0, width = 0, failed = 0, degraded = 0, latency = 0;
  if (!in.str(b.id) || !in.u64(rows) || !in.u64(width) || !in.floats(b.scores)) return false;
  // Every row takes at least 23 bytes: a count beyond what is left is torn.
  if (rows > in.rest().size() / 23 || width == 0 || b.scores.size() != rows * width) return false;
  b.rows = rows;
  b.width = width;
  b.status.assign(rows, Status());
  b.stage.assign(rows, BatchResult::kNoStage);
  b.anomaly.assign(rows, 0);
  b.cache_hit.assign(rows, 0);
  b.attempts.assign(rows, 0);
  b.anomaly_score.assign(rows, 0.0);
  b.degraded_reason.assign(rows, {});
  b.anomaly_reason.assign(rows, {});
  for (std::size_t r = 0; r < rows; ++r) {
    std::uint8_t code = 0, retryable = 0;
    std::string message;
    if (!in.u8(code) || !in.u8(retryable) || !in.str(message) || !in.u8(b.stage[r]) || !in.u8(b.anomaly[r]) ||
        !in.u8(b.cache_hit[r]) || !in.u32(b.attempts[r]) || !in.f64(b.anomaly_score[r]) ||
        !in.str(b.degraded_reason[r]) || !in.str(b.anomaly_reason[r])) {
      return false;
    }
    if (code > static_cast<std::uint8_t>(StatusCode::kInternal)) return false;
    if (code != 0) b.status[r] = Status(static_cast<StatusCode>(code), std::move(message), retryable != 0);
  }
  std::uint32_t stages = 0;
  if (!in.u32(stages) || stages > in.rest().size() / 24) return false;
  b.stage_names.assign(stages, {});
  b.stage_model_ids.assign(stages, {});
  b.stage_model_versions.assign(stages, 0);
  b.stage_content_ids.assign(stages, {});
  for (std::size_t i = 0; i < stages; ++i) {
    if (!in.str(b.stage_names[i]) || !in.str(b.stage_model_ids[i]) || !in.u64(b.stage_model_versions[i]) ||
        !in.u64(b.stage_content_ids[i].hi) || !in.u64(b.stage_content_ids[i].lo)) {
      return false;
    }
  }
  for (std::size_t r = 0; r < rows; ++r) {
    if (b.stage[r] != BatchResult::kNoStage && b.stage[r] >= stages) return false;  // would index past the tables
  }
  if (!in.str(b.model_id) || !in.u64(b.model_version) || !in.u64(b.model_content_id.hi) ||
      !in.u64(b.model_content_id.lo) || !in.u64(failed) || !in.u64(degraded) || !in.u64(latency) ||
      !decode_reasons(in, b)) {
    return false;
  }
  b.failed = failed;
  b.degraded = degraded;
  b.latency = Duration(static_cast<std::int64_t>(latency));
  b.snapshot = 0;  // snapshot generations are this process's: never match one from elsewhere
  return true;
}

// What a record in Redis says.
struct Seen {
  char state = 0;
  std::string_view payload;
  detail::WireReader rest{{}};
};

bool parse(std::string_view v, Seen& s) {
  detail::WireReader in(v);
  std::uint8_t st = 0;
  if (!in.magic(kMagic) || !in.u8(st)) return false;
  s.state = static_cast<char>(st);
  if (s.state != kPending && s.state != kDone) return false;
  if (in.rest().size() < kOwnerLen) return false;
  s.rest = detail::WireReader(in.rest().substr(kOwnerLen));
  return s.rest.str(s.payload);
}

}  // namespace

RedisIdempotencyStore::RedisIdempotencyStore(std::shared_ptr<RedisClient> client, RedisIdempotencyOptions opts)
    : client_(std::move(client)), opts_(std::move(opts)) {
  if (!client_) throw Error(StatusCode::kInvalidInput, "redis idempotency: no client");
  auto ms = [](Duration d, const char* field) {
    const auto n = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    if (n <= 0) throw Error(StatusCode::kInvalidInput, fmt::format("redis idempotency: {} must be >= 1 ms", field));
    return std::to_string(n);
  };
  ttl_ms_ = ms(opts_.ttl, "ttl");
  claim_ms_ = ms(opts_.claim_ttl, "claim_ttl");
  if (opts_.poll_interval <= Duration::zero()) opts_.poll_interval = std::chrono::milliseconds(1);
  if (!(opts_.deadline_share > 0.0))
    throw Error(StatusCode::kInvalidInput, "redis idempotency: deadline_share must be > 0");
  local_ = std::make_unique<InMemoryIdempotencyStore>(opts_.local);
}

RedisIdempotencyStore::~RedisIdempotencyStore() = default;

Result<StoredBatch> RedisIdempotencyStore::run_erased(const IdempotencyKey& key, TimePoint now, Deadline deadline,
                                                   ComputeFn fn, void* ctx) noexcept {
  return local_->run(key, now, deadline, [&]() noexcept { return shared(key, now, deadline, fn, ctx); });
}

Result<StoredBatch> RedisIdempotencyStore::local_only(RedisFailure why, ComputeFn fn, void* ctx) noexcept {
  client_->count_fallback("idempotency", why);
  computed_.fetch_add(1, std::memory_order_relaxed);
  return fn(ctx);
}

Result<StoredBatch> RedisIdempotencyStore::shared(const IdempotencyKey& key, TimePoint t0, Deadline deadline,
                                               ComputeFn fn, void* ctx) noexcept {
  try {
    const std::string rkey = fmt::format("{}:v1:{}", opts_.prefix, key.id);
    const std::string payload = encode_payload(key);
    const std::string owner = new_owner();
    const std::string claim_prefix = fmt::format("{}{}{}", kMagic, kPending, owner);
    std::string pending = claim_prefix;
    {
      detail::WireWriter w;
      w.str(payload);
      pending += w.bytes();
    }
    const std::string_view keys[] = {rkey};
    Clock& clock = client_->options().clock != nullptr ? *client_->options().clock : system_clock();
    const TimePoint start = clock.now();
    // The claim: within the request's share for Redis, so that a slow Redis
    // leaves the computation its time. The wait for another replica's
    // result: to the deadline, since this request will not compute then.
    const Deadline budget = redis_budget(t0, deadline, opts_.deadline_share);
    if (budget.expired(start)) return local_only(RedisFailure::kBudget, fn, ctx);
    const Deadline wait_until = deadline.is_never() ? Deadline::after(opts_.max_wait, start) : deadline;
    Duration poll = opts_.poll_interval;
    bool waited = false;

    for (;;) {
      const std::string_view claim_args[] = {pending, claim_ms_};
      Result<RedisReply> r = client_->eval(kClaim, keys, claim_args, waited ? wait_until : budget);
      if (!r.ok()) return local_only(classify(r.status()), fn, ctx);
      if (r->type() != RedisReply::Type::kArray || r->size() == 0) return local_only(RedisFailure::kError, fn, ctx);

      if ((*r)[0].integer() == 1) {  // ours: compute, then publish or release
        computed_.fetch_add(1, std::memory_order_relaxed);
        Result<StoredBatch> result = fn(ctx);
        if (remembered(result)) {
          detail::WireWriter w;
          w.magic(kMagic);
          w.u8(static_cast<std::uint8_t>(kDone));
          w.magic(owner);
          w.str(payload);
          encode_batch(w, **result);
          const std::string_view args[] = {claim_prefix, w.bytes(), ttl_ms_};
          Result<RedisReply> c = client_->eval(kComplete, keys, args, deadline);
          if (!c.ok()) client_->count_fallback("idempotency", classify(c.status()));
        } else {
          const std::string_view args[] = {claim_prefix};
          Result<RedisReply> c = client_->eval(kRelease, keys, args, Deadline::after(client_->options().command_timeout));
          if (!c.ok()) client_->count_fallback("idempotency", classify(c.status()));
        }
        return result;
      }

      // Someone else's record: compare payloads, replay, or wait.
      const RedisReply::View value = (*r)[1];
      Seen seen;
      if (value.type() != RedisReply::Type::kString || !parse(value.str(), seen)) {
        if (value.is_nil()) continue;  // expired between the calls: claim again
        return local_only(RedisFailure::kError, fn, ctx);
      }
      if (seen.payload != payload) {
        conflicts_.fetch_add(1, std::memory_order_relaxed);
        return conflict(fmt::format("request id '{}': reused with a different payload (model or features)", key.id));
      }
      if (seen.state == kDone) {
        auto stored = std::make_shared<BatchResult>();
        if (!decode_batch(seen.rest, *stored)) return local_only(RedisFailure::kError, fn, ctx);
        (waited ? joined_ : replayed_).fetch_add(1, std::memory_order_relaxed);
        return StoredBatch(std::move(stored));
      }
      // In flight on another replica (or another process): poll until done,
      // gone (then claim), or out of time.
      waited = true;
      const TimePoint now = clock.now();
      if (wait_until.remaining(now) <= poll) {
        in_flight_conflicts_.fetch_add(1, std::memory_order_relaxed);
        return Status(StatusCode::kConflict,
                      fmt::format("request id '{}': still in flight on another replica; retry later", key.id),
                      /*retryable=*/true);
      }
      std::this_thread::sleep_for(poll);
      poll = std::min(poll * 2, opts_.poll_interval * 16);
    }
  } catch (...) {
    return internal_error(fmt::format("request id '{}': redis idempotency out of memory", key.id));
  }
}

IdempotencyStats RedisIdempotencyStore::stats() const noexcept {
  IdempotencyStats s = local_->stats();
  s.computed = computed_.load(std::memory_order_relaxed);
  s.replayed += replayed_.load(std::memory_order_relaxed);
  s.joined += joined_.load(std::memory_order_relaxed);
  s.conflicts += conflicts_.load(std::memory_order_relaxed) + in_flight_conflicts_.load(std::memory_order_relaxed);
  return s;
}

std::size_t RedisIdempotencyStore::waiting(std::string_view id) const noexcept { return local_->waiting(id); }

void RedisIdempotencyStore::clear() noexcept {
  local_->clear();
  (void)client_->unlink_matching(opts_.prefix + ":v1:*", Deadline::after(std::chrono::seconds(5)));
}

}  // namespace keel::net
