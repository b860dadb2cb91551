#pragma once
// RedisCache: keel's Cache shared by replicas through Redis.
//
// Key:   <prefix>:v1:<model part>:<16 hex digits of the feature hash>
// Value: "KC1" | u32 feature count | feature bytes | u32 score count | scores
// The exact feature bytes are stored beside the scores and compared on
// read, so a hash collision is a miss (counted), never another row's score.
// Redis expires entries itself (SET ... PX ttl).
//
// Redis down, slow or its breaker open: a lookup is a miss and an insert is
// skipped, each bounded by the client's command timeout (and the caller's
// deadline), and counted in the client's fallbacks ("cache"); the client's
// health says degraded or open. When Redis is back the breaker closes and
// the cache is used again.
//
// deadline_share < 1 bounds a request's cache work as a whole, not only each
// command: lookups and inserts take `now` as the request's entry time (the
// engine passes it for every row), and once t0 + share x (deadline - t0) has
// passed a row is a miss, or its insert is skipped, without a call (fallback
// reason "budget"). A batch of many rows then spends at most that share of
// its deadline on Redis round trips: with lookup_many / insert_many (what
// the engine calls) one each way, however many rows.
//
// Thread-safe.

#include <keel/net/redis/redis_client.hpp>
#include <keel/resilience/cache.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <string>

namespace keel::net {

struct RedisCacheOptions {
  std::string prefix = "keel:cache";
  Duration ttl = std::chrono::minutes(5);
  double deadline_share = 1.0;  // of each request's time, for its lookups and inserts together
  CacheHashFn hash = &default_cache_hash;  // tests force collisions with a constant hash
};

// The model part of a cache key: CacheKey::model, which the engine fills
// with the primary's content identity and output kind (the same in every
// replica loading the same file), so replicas share entries.
std::string_view cache_model_part(const CacheKey& key);

class RedisCache final : public Cache {
 public:
  RedisCache(std::shared_ptr<RedisClient> client, RedisCacheOptions opts = {});

  // Each within the caller's deadline and the client's command timeout.
  // `now`: the request's entry time (the same for every row of a batch).
  bool lookup(const CacheKey& key, TimePoint now, Deadline deadline, std::span<float> out) noexcept override;
  void insert(const CacheKey& key, std::span<const float> scores, TimePoint now,
              Deadline deadline) noexcept override;
  // A batch of rows: one MGET for the lookup, one pipeline of SET ... PX
  // for the insert (one round trip each), within the same budget as a row;
  // every row's record is checked as lookup() checks it. A batch that
  // cannot reach Redis is all misses (or no inserts) and counts one
  // fallback. A batch of one row is lookup() / insert().
  std::size_t lookup_many(const CacheRows& batch, TimePoint now, Deadline deadline, std::span<float> scores,
                          std::size_t out_width, std::span<std::uint8_t> hit) noexcept override;
  void insert_many(const CacheRows& batch, std::span<const float> scores, std::size_t out_width, TimePoint now,
                   Deadline deadline) noexcept override;
  // Deletes every key under the prefix (SCAN + UNLINK), within 5 s.
  void clear() noexcept override;
  [[nodiscard]] CacheStats stats() const noexcept override;

  // Whether the last call reached Redis (false: serving as a NoopCache).
  [[nodiscard]] bool degraded() const noexcept { return !client_->up(); }
  [[nodiscard]] RedisClient& client() noexcept { return *client_; }
  [[nodiscard]] std::string redis_key(const CacheKey& key) const;

 private:
  // The request's Redis budget, or nullopt (counted) when it is spent.
  [[nodiscard]] std::optional<Deadline> budget(TimePoint t0, Deadline deadline) noexcept;
  // Serves a stored record for `key` (counted hit, miss or collision).
  bool take(RedisReply::View v, const CacheKey& key, std::span<float> out) noexcept;
  static std::string record(const CacheKey& key, std::span<const float> scores);

  std::shared_ptr<RedisClient> client_;
  RedisCacheOptions opts_;
  std::string ttl_ms_;
  std::atomic<std::uint64_t> hits_{0}, misses_{0}, insertions_{0}, collisions_{0};
};

}  // namespace keel::net
