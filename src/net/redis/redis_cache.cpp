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
    if (r->type() != RedisReply::Type::kString) {
      if (r->type() == RedisReply::Type::kError) client_->count_fallback("cache", RedisFailure::kError);
      misses_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    detail::WireReader in(r->str());
    std::string_view features;
    std::size_t n_features = 0;
    if (!in.magic("KC1") || !in.float_bytes(features, n_features)) {
      misses_.fetch_add(1, std::memory_order_relaxed);  // not ours, or torn: never served
      return false;
    }
    if (!detail::same_floats(features, n_features, key.features)) {
      collisions_.fetch_add(1, std::memory_order_relaxed);
      misses_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    std::string_view scores;
    std::size_t n_scores = 0;
    if (!in.float_bytes(scores, n_scores) || !in.done() || n_scores != out.size()) {
      misses_.fetch_add(1, std::memory_order_relaxed);  // torn, or another width: never served
      return false;
    }
    if (n_scores != 0) std::memcpy(out.data(), scores.data(), scores.size());
    hits_.fetch_add(1, std::memory_order_relaxed);
    return true;
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
    detail::WireWriter w;
    w.magic("KC1");
    w.floats(key.features);
    w.floats(scores);
    Result<RedisReply> r = client_->command({"SET", k, w.bytes(), "PX", ttl_ms_}, *b);
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
