#pragma once
// Cache: remembers scores by (model identity, exact feature bytes). The
// engine's model identity is the primary's content id (ModelContentId: the
// same file and load options give the same id in every process) plus its
// output kind, so a reload to another model never serves its predecessor's
// scores and replicas sharing a backend agree on keys. Callers pass `now`
// (read once per request) so that a cache costs no clock read of its own,
// and the request's deadline, which a remote backend must not overrun (an
// overrun is a miss, or a dropped insert, never a late answer).
//
// NoopCache never hits; LruCache is the in-process, sharded LRU with a TTL
// and a bound in entries and bytes. Both are thread-safe.

#include <keel/core/clock.hpp>
#include <keel/core/deadline.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace keel {

struct CacheKey {
  std::string_view model;           // the model's identity ("<content id hex>/t"; see ScoringEngine)
  std::span<const float> features;  // compared bit for bit (-0.0 != 0.0, NaN payloads differ)
};

// Rows of a batch for Cache::lookup_many / insert_many, without building a
// key per row: row r's key is {model, features[r * width, (r + 1) * width)}
// and its scores are scores[r * out_width, (r + 1) * out_width) of the span
// passed beside it. Only the rows listed in `rows` are touched.
struct CacheRows {
  std::string_view model;
  std::span<const float> features;  // n_rows x width
  std::size_t width = 0;
  std::span<const std::uint32_t> rows;
  [[nodiscard]] CacheKey key(std::uint32_t r) const noexcept { return {model, features.subspan(r * width, width)}; }
};

struct CacheStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t evictions = 0;   // dropped to respect the entry or byte bound
  std::uint64_t expirations = 0; // dropped because their TTL passed
  std::uint64_t insertions = 0;
  std::uint64_t collisions = 0;  // equal hashes whose keys differed (never served)
  std::size_t entries = 0;
  std::size_t bytes = 0;
};

class Cache {
 public:
  virtual ~Cache() = default;
  // On a hit, writes the cached scores to `out` and returns true; an entry
  // of another width than out.size() is a miss.
  virtual bool lookup(const CacheKey& key, TimePoint now, Deadline deadline, std::span<float> out) noexcept = 0;
  virtual void insert(const CacheKey& key, std::span<const float> scores, TimePoint now,
                      Deadline deadline) noexcept = 0;
  // Batch forms, with the same answers row by row as lookup / insert:
  // lookup_many writes each hit row's scores to its place in `scores` and
  // sets hit[r] = 1 (a miss leaves both untouched); returns the hits.
  // insert_many stores the listed rows' scores. The defaults loop over the
  // single-row calls; a remote backend overrides them to pay O(1) round
  // trips per batch instead of one per row.
  virtual std::size_t lookup_many(const CacheRows& batch, TimePoint now, Deadline deadline, std::span<float> scores,
                                  std::size_t out_width, std::span<std::uint8_t> hit) noexcept;
  virtual void insert_many(const CacheRows& batch, std::span<const float> scores, std::size_t out_width,
                           TimePoint now, Deadline deadline) noexcept;
  virtual void clear() noexcept = 0;
  [[nodiscard]] virtual CacheStats stats() const noexcept = 0;
  // False for NoopCache: the engine then skips building keys at all.
  [[nodiscard]] virtual bool enabled() const noexcept { return true; }
};

// Never stores, never hits. Thread-safe.
class NoopCache final : public Cache {
 public:
  bool lookup(const CacheKey&, TimePoint, Deadline, std::span<float>) noexcept override { return false; }
  void insert(const CacheKey&, std::span<const float>, TimePoint, Deadline) noexcept override {}
  void clear() noexcept override {}
  [[nodiscard]] CacheStats stats() const noexcept override { return {}; }
  [[nodiscard]] bool enabled() const noexcept override { return false; }
};

// The hash that finds a key's bucket. A collision only costs a comparison:
// the full key is always compared before a hit is served.
using CacheHashFn = std::uint64_t (*)(const CacheKey& key) noexcept;
// XXH3-64 over the feature bytes, seeded with the model identity.
std::uint64_t default_cache_hash(const CacheKey& key) noexcept;

struct LruCacheOptions {
  std::size_t shards = 16;                 // rounded up to a power of two
  std::size_t max_entries = 100'000;       // over all shards
  std::size_t max_bytes = 64u << 20;       // approximate: keys, scores and bookkeeping
  Duration ttl = std::chrono::minutes(5);  // Duration::zero() or less: entries never expire
  CacheHashFn hash = &default_cache_hash;  // tests force collisions with a constant hash
};

// Sharded LRU: each shard has its own mutex, list and index, and an equal
// share of the bounds. Thread-safe. Counters are relaxed atomics (a
// snapshot from stats() may be mid-update by a few counts).
class LruCache final : public Cache {
 public:
  explicit LruCache(LruCacheOptions opts = {});
  ~LruCache() override;
  LruCache(const LruCache&) = delete;
  LruCache& operator=(const LruCache&) = delete;

  // In-process: never waits, so the deadline is not consulted.
  bool lookup(const CacheKey& key, TimePoint now, Deadline deadline, std::span<float> out) noexcept override;
  void insert(const CacheKey& key, std::span<const float> scores, TimePoint now, Deadline deadline) noexcept override;
  void clear() noexcept override;
  [[nodiscard]] CacheStats stats() const noexcept override;
  [[nodiscard]] const LruCacheOptions& options() const noexcept { return opts_; }
  // What one entry counts against max_bytes.
  [[nodiscard]] static std::size_t entry_cost(const CacheKey& key, std::size_t n_scores) noexcept;

 private:
  struct Shard;
  Shard& shard_for(std::uint64_t hash) noexcept;

  LruCacheOptions opts_;
  std::size_t shard_mask_ = 0;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace keel
