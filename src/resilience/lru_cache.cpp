#include <keel/resilience/cache.hpp>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace keel {

std::uint64_t default_cache_hash(const CacheKey& key) noexcept {
  const std::uint64_t seed = XXH3_64bits(key.model.data(), key.model.size());
  return XXH3_64bits_withSeed(key.features.data(), key.features.size_bytes(), seed);
}

std::size_t Cache::lookup_many(const CacheRows& batch, TimePoint now, Deadline deadline, std::span<float> scores,
                               std::size_t out_width, std::span<std::uint8_t> hit) noexcept {
  std::size_t hits = 0;
  for (std::uint32_t r : batch.rows) {
    if (lookup(batch.key(r), now, deadline, scores.subspan(r * out_width, out_width))) {
      hit[r] = 1;
      ++hits;
    }
  }
  return hits;
}

void Cache::insert_many(const CacheRows& batch, std::span<const float> scores, std::size_t out_width, TimePoint now,
                        Deadline deadline) noexcept {
  for (std::uint32_t r : batch.rows) insert(batch.key(r), scores.subspan(r * out_width, out_width), now, deadline);
}

namespace {

struct Entry {
  std::uint64_t hash = 0;
  std::string model;
  std::vector<float> features;
  std::vector<float> scores;
  TimePoint expires = TimePoint::max();
  std::size_t bytes = 0;

  [[nodiscard]] bool matches(const CacheKey& k) const noexcept {
    return model == k.model && features.size() == k.features.size() &&
           (features.empty() || std::memcmp(features.data(), k.features.data(), k.features.size_bytes()) == 0);
  }
};

}  // namespace

// An entry's payload plus its list and index nodes (approximate).
std::size_t LruCache::entry_cost(const CacheKey& k, std::size_t n_scores) noexcept {
  return sizeof(Entry) + 6 * sizeof(void*) + sizeof(std::uint64_t) + k.model.size() + k.features.size_bytes() +
         n_scores * sizeof(float);
}

struct LruCache::Shard {
  using List = std::list<Entry>;
  std::mutex mu;
  List lru;  // front = most recently used; guarded by mu
  std::unordered_multimap<std::uint64_t, List::iterator> index;  // guarded by mu
  std::size_t bytes = 0;                                           // guarded by mu
  std::size_t max_entries = 0;
  std::size_t max_bytes = 0;
  CacheStats counts;  // guarded by mu; entries/bytes filled in by stats()

  List::iterator find(const CacheKey& k, std::uint64_t h) noexcept {
    auto [lo, hi] = index.equal_range(h);
    for (auto it = lo; it != hi; ++it) {
      if (it->second->matches(k)) return it->second;
      ++counts.collisions;
    }
    return lru.end();
  }

  void erase(List::iterator e) noexcept {
    auto [lo, hi] = index.equal_range(e->hash);
    for (auto it = lo; it != hi; ++it) {
      if (it->second == e) {
        index.erase(it);
        break;
      }
    }
    bytes -= e->bytes;
    lru.erase(e);
  }

  void enforce_bounds() noexcept {
    while (!lru.empty() && (lru.size() > max_entries || bytes > max_bytes)) {
      erase(std::prev(lru.end()));
      ++counts.evictions;
    }
  }
};

LruCache::LruCache(LruCacheOptions opts) : opts_(opts) {
  std::size_t n = std::max<std::size_t>(1, opts_.shards);
  n = std::bit_ceil(n);
  // Every shard must be able to hold at least one entry.
  while (n > 1 && n > std::max<std::size_t>(1, opts_.max_entries)) n /= 2;
  opts_.shards = n;
  shard_mask_ = n - 1;
  shards_ = std::make_unique<Shard[]>(n);
  for (std::size_t i = 0; i < n; ++i) {
    shards_[i].max_entries = std::max<std::size_t>(1, opts_.max_entries / n);
    shards_[i].max_bytes = opts_.max_bytes / n;
  }
  if (opts_.hash == nullptr) opts_.hash = &default_cache_hash;
}

LruCache::~LruCache() = default;

LruCache::Shard& LruCache::shard_for(std::uint64_t hash) noexcept {
  // High bits pick the shard; the index uses the whole hash.
  return shards_[(hash >> 48) & shard_mask_];
}

bool LruCache::lookup(const CacheKey& key, TimePoint now, Deadline, std::span<float> out) noexcept {
  const std::uint64_t h = opts_.hash(key);
  Shard& s = shard_for(h);
  std::lock_guard lock(s.mu);
  auto e = s.find(key, h);
  if (e == s.lru.end()) {
    ++s.counts.misses;
    return false;
  }
  if (now >= e->expires) {
    s.erase(e);
    ++s.counts.expirations;
    ++s.counts.misses;
    return false;
  }
  if (e->scores.size() != out.size()) {
    ++s.counts.misses;
    return false;
  }
  std::copy(e->scores.begin(), e->scores.end(), out.begin());
  s.lru.splice(s.lru.begin(), s.lru, e);
  ++s.counts.hits;
  return true;
}

void LruCache::insert(const CacheKey& key, std::span<const float> scores, TimePoint now, Deadline) noexcept {
  const std::uint64_t h = opts_.hash(key);
  Shard& s = shard_for(h);
  const std::size_t cost = entry_cost(key, scores.size());
  if (cost > s.max_bytes) return;  // could never fit; do not flush the shard for it
  const TimePoint expires =
      opts_.ttl <= Duration::zero() || now > TimePoint::max() - opts_.ttl ? TimePoint::max() : now + opts_.ttl;
  try {
    std::lock_guard lock(s.mu);
    auto e = s.find(key, h);
    if (e != s.lru.end()) {
      e->scores.assign(scores.begin(), scores.end());
      e->expires = expires;
      s.bytes = s.bytes - e->bytes + cost;
      e->bytes = cost;
      s.lru.splice(s.lru.begin(), s.lru, e);
    } else {
      Entry fresh{h,
                  std::string(key.model),
                  std::vector<float>(key.features.begin(), key.features.end()),
                  std::vector<float>(scores.begin(), scores.end()),
                  expires,
                  cost};
      s.lru.push_front(std::move(fresh));
      try {
        s.index.emplace(h, s.lru.begin());
      } catch (...) {
        s.lru.pop_front();
        return;
      }
      s.bytes += cost;
    }
    ++s.counts.insertions;
    s.enforce_bounds();
  } catch (...) {
    // Out of memory while copying: the score is simply not cached.
  }
}

void LruCache::clear() noexcept {
  for (std::size_t i = 0; i <= shard_mask_; ++i) {
    Shard& s = shards_[i];
    std::lock_guard lock(s.mu);
    s.index.clear();
    s.lru.clear();
    s.bytes = 0;
  }
}

CacheStats LruCache::stats() const noexcept {
  CacheStats total;
  for (std::size_t i = 0; i <= shard_mask_; ++i) {
    Shard& s = shards_[i];
    std::lock_guard lock(s.mu);
    total.hits += s.counts.hits;
    total.misses += s.counts.misses;
    total.evictions += s.counts.evictions;
    total.expirations += s.counts.expirations;
    total.insertions += s.counts.insertions;
    total.collisions += s.counts.collisions;
    total.entries += s.lru.size();
    total.bytes += s.bytes;
  }
  return total;
}

}  // namespace keel
