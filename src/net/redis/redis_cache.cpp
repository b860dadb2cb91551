#include <keel/net/redis/redis_cache.hpp>

#include "net/redis/wire.hpp"

#include <fmt/format.h>

#include <cstring>

namespace keel::net {

std::string_view cache_model_part(const CacheKey& key) { return key.model; }

RedisCache::RedisCache(std::shared_ptr<RedisClient> client, RedisCacheOptions opts)
    : client_(std::move(client)), opts_(std::move(opts)) {
  if (!client_) throw Error(StatusCode::kInvalidInput, "redis cache: no client");
  if (opts_.ttl <= Duration::zero()) throw Error(StatusCode::kInvalidInput, "redis cache: ttl must be positive");
  if (!(opts_.deadline_share > 0.0)) throw Error(StatusCode::kInvalidInput, "redis cache: deadline_share must be > 0");
  ttl_ms_ = std::to_string(std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::milliseconds>(opts_.ttl).count()));
}

std::string RedisCache::redis_key(const CacheKey& key) const {
  return fmt::format("{}:v1:{}:{:016x}", opts_.prefix, cache_model_part(key), opts_.hash(key));
}

std::optional<Deadline> RedisCache::budget(TimePoint t0, Deadline deadline) noexcept {
  if (opts_.deadline_share >= 1.0) return deadline;
  const Deadline b = redis_budget(t0, deadline, opts_.deadline_share);
  Clock& clock = client_->options().clock != nullptr ? *client_->options().clock : system_clock();
  if (!b.expired(clock.now())) return b;
  client_->count_fallback("cache", RedisFailure::kBudget);
  return std::nullopt;
}

// What a GET (or one MGET element) answered for `key`: a hit writes the
// scores to `out`. Counts the miss or hit, and a collision.
bool RedisCache::take(RedisReply::View v, const CacheKey& key, std::span<float> out) noexcept {
  const auto miss = [this] {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return false;
  };
  if (v.type() != RedisReply::Type::kString) {
    if (v.type() == RedisReply::Type::kError) client_->count_fallback("cache", RedisFailure::kError);
    return miss();
  }
  detail::WireReader in(v.str());
  std::string_view features;
  std::size_t n_features = 0;
  if (!in.magic("KC1") || !in.float_bytes(features, n_features)) return miss();  // not ours, or torn: never served
  if (!detail::same_floats(features, n_features, key.features)) {
    collisions_.fetch_add(1, std::memory_order_relaxed);
    return miss();
  }
  std::string_view scores;
  std::size_t n_scores = 0;
  if (!in.float_bytes(scores, n_scores) || !in.done() || n_scores != out.size()) {
    return miss();  // torn, or another width: never served
  }
  if (n_scores != 0) std::memcpy(out.data(), scores.data(), scores.size());
  hits_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

std::string RedisCache::record(const CacheKey& key, std::span<const float> scores) {
  detail::WireWriter w;
  w.magic("KC1");
  w.floats(key.features);
  w.floats(scores);
  return w.release();
}

bool RedisCache::lookup(const CacheKey& key, TimePoint now, Deadline deadline, std::span<float> out) noexcept {
  try {
    const std::optional<Deadline> b = budget(now, deadline);
    if (!b) {
      misses_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    const std::string k = redis_key(key);
    Result<RedisReply> r = client_->command({"GET", k}, *b);
    if (!r.ok()) {
      client_->count_fallback("cache", classify(r.status()));
      misses_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    return take(r->view(), key, out);
  } catch (...) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
}

void RedisCache::insert(const CacheKey& key, std::span<const float> scores, TimePoint now,
                        Deadline deadline) noexcept {
  try {
    const std::optional<Deadline> b = budget(now, deadline);
    if (!b) return;
    const std::string k = redis_key(key);
    const std::string v = record(key, scores);
    Result<RedisReply> r = client_->command({"SET", k, v, "PX", ttl_ms_}, *b);
    if (!r.ok()) {
      client_->count_fallback("cache", classify(r.status()));
      return;
    }
    if (r->type() == RedisReply::Type::kError) {
      client_->count_fallback("cache", RedisFailure::kError);
      return;
    }
    insertions_.fetch_add(1, std::memory_order_relaxed);
  } catch (...) {
  }
}

std::size_t RedisCache::lookup_many(const CacheRows& batch, TimePoint now, Deadline deadline,
                                    std::span<float> scores, std::size_t out_width,
                                    std::span<std::uint8_t> hit) noexcept {
  const std::size_t n = batch.rows.size();
  if (n <= 1) return Cache::lookup_many(batch, now, deadline, scores, out_width, hit);  // GET: no batch buffers
  try {
    const std::optional<Deadline> b = budget(now, deadline);
    if (!b) {
      misses_.fetch_add(n, std::memory_order_relaxed);
      return 0;
    }
    std::vector<std::string> keys;
    keys.reserve(n);
    std::vector<std::string_view> argv;
    argv.reserve(n + 1);
    argv.emplace_back("MGET");
    for (std::uint32_t r : batch.rows) argv.emplace_back(keys.emplace_back(redis_key(batch.key(r))));
    const std::span<const std::string_view> cmd(argv);
    Result<std::vector<RedisReply>> res = client_->pipeline(std::span(&cmd, 1), *b);
    if (!res.ok() || (*res)[0].type() != RedisReply::Type::kArray || (*res)[0].size() != n) {
      client_->count_fallback("cache", res.ok() ? RedisFailure::kError : classify(res.status()));
      misses_.fetch_add(n, std::memory_order_relaxed);
      return 0;
    }
    const RedisReply::View values = (*res)[0].view();
    std::size_t hits = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t r = batch.rows[i];
      if (take(values[i], batch.key(r), scores.subspan(r * out_width, out_width))) {
        hit[r] = 1;
        ++hits;
      }
    }
    return hits;
  } catch (...) {
    misses_.fetch_add(n, std::memory_order_relaxed);
    return 0;
  }
}

void RedisCache::insert_many(const CacheRows& batch, std::span<const float> scores, std::size_t out_width,
                             TimePoint now, Deadline deadline) noexcept {
  const std::size_t n = batch.rows.size();
  if (n <= 1) return Cache::insert_many(batch, scores, out_width, now, deadline);
  try {
    const std::optional<Deadline> b = budget(now, deadline);
    if (!b) return;
    // SET key value PX ttl, pipelined: Redis has no MSET with a TTL.
    std::vector<std::string> strs;  // key, value per row
    strs.reserve(2 * n);
    std::vector<std::string_view> args;
    args.reserve(5 * n);
    std::vector<std::span<const std::string_view>> cmds;
    cmds.reserve(n);
    for (std::uint32_t r : batch.rows) {
      const CacheKey key = batch.key(r);
      const std::string& k = strs.emplace_back(redis_key(key));
      const std::string& v = strs.emplace_back(record(key, scores.subspan(r * out_width, out_width)));
      args.insert(args.end(), {"SET", k, v, "PX", ttl_ms_});
      cmds.emplace_back(&args[args.size() - 5], 5);
    }
    Result<std::vector<RedisReply>> res = client_->pipeline(cmds, *b);
    if (!res.ok()) {
      client_->count_fallback("cache", classify(res.status()));
      return;
    }
    std::size_t stored = 0;
    for (const RedisReply& r : *res) stored += r.type() == RedisReply::Type::kError ? 0 : 1;
    if (stored != n) client_->count_fallback("cache", RedisFailure::kError);
    insertions_.fetch_add(stored, std::memory_order_relaxed);
  } catch (...) {
  }
}

void RedisCache::clear() noexcept {
  (void)client_->unlink_matching(opts_.prefix + ":v1:*", Deadline::after(std::chrono::seconds(5)));
}

CacheStats RedisCache::stats() const noexcept {
  CacheStats s;
  s.hits = hits_.load(std::memory_order_relaxed);
  s.misses = misses_.load(std::memory_order_relaxed);
  s.insertions = insertions_.load(std::memory_order_relaxed);
  s.collisions = collisions_.load(std::memory_order_relaxed);
  return s;  // entries/bytes live in Redis, shared with other replicas
}

}  // namespace keel::net
