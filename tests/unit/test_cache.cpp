#include <catch2/catch.hpp>

#include <keel/resilience/cache.hpp>

#include <cmath>
#include <span>
#include <string>
#include <limits>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

std::uint64_t constant_hash(const keel::CacheKey&) noexcept { return 42; }

// A key for model `id` at `version` ("a@1"): the identity string the
// engine builds for an in-memory model. Lives for the full expression.
struct Key {
  std::string model;
  std::span<const float> features;
  operator keel::CacheKey() const { return {model, features}; }  // NOLINT: implicit on purpose
};
Key key(const std::vector<float>& f, std::uint64_t version = 1, std::string_view id = "m") {
  return Key{std::string(id) + "@" + std::to_string(version), f};
}

}  // namespace

TEST_CASE("cache: miss, insert, hit returns the stored scores", "[cache]") {
  keel::ManualClock clock;
  keel::LruCache cache;
  std::vector<float> row{1.f, 2.f, 3.f};
  std::vector<float> out(2);
  REQUIRE_FALSE(cache.lookup(key(row), clock.now(), {}, out));
  cache.insert(key(row), std::vector<float>{0.25f, 0.75f}, clock.now(), {});
  REQUIRE(cache.lookup(key(row), clock.now(), {}, out));
  CHECK(out == std::vector<float>{0.25f, 0.75f});
  auto st = cache.stats();
  CHECK(st.hits == 1);
  CHECK(st.misses == 1);
  CHECK(st.insertions == 1);
  CHECK(st.entries == 1);
  CHECK(st.bytes == keel::LruCache::entry_cost(key(row), 2));
}

TEST_CASE("cache: an entry of another width than asked for is a miss, and out is left alone", "[cache]") {
  keel::ManualClock clock;
  keel::LruCache cache;
  std::vector<float> row{1.f};
  cache.insert(key(row), std::vector<float>{0.25f, 0.75f}, clock.now(), {});
  std::vector<float> one{9.f};
  CHECK_FALSE(cache.lookup(key(row), clock.now(), {}, one));
  CHECK(one == std::vector<float>{9.f});
  std::vector<float> three(3, 9.f);
  CHECK_FALSE(cache.lookup(key(row), clock.now(), {}, three));
  CHECK(three == std::vector<float>(3, 9.f));
}

TEST_CASE("cache: model id and version are part of the key (a reload never serves stale scores)", "[cache]") {
  keel::ManualClock clock;
  keel::LruCache cache;
  std::vector<float> row{1.f, 2.f};
  std::vector<float> out(1);
  cache.insert(key(row, 1, "a"), std::vector<float>{1.f}, clock.now(), {});
  CHECK_FALSE(cache.lookup(key(row, 2, "a"), clock.now(), {}, out));
  CHECK_FALSE(cache.lookup(key(row, 1, "b"), clock.now(), {}, out));
  REQUIRE(cache.lookup(key(row, 1, "a"), clock.now(), {}, out));
  CHECK(out == std::vector<float>{1.f});
}

TEST_CASE("cache: feature bytes are compared exactly", "[cache]") {
  keel::ManualClock clock;
  keel::LruCache cache;
  std::vector<float> pos{0.f, 1.f};
  std::vector<float> neg{-0.f, 1.f};
  std::vector<float> shorter{0.f};
  std::vector<float> out(1);
  cache.insert(key(pos), std::vector<float>{7.f}, clock.now(), {});
  CHECK_FALSE(cache.lookup(key(neg), clock.now(), {}, out));
  CHECK_FALSE(cache.lookup(key(shorter), clock.now(), {}, out));
  // NaN (missing) is a value like any other: the same bits hit.
  std::vector<float> nan_row{std::numeric_limits<float>::quiet_NaN(), 1.f};
  cache.insert(key(nan_row), std::vector<float>{9.f}, clock.now(), {});
  REQUIRE(cache.lookup(key(nan_row), clock.now(), {}, out));
  CHECK(out == std::vector<float>{9.f});
}

TEST_CASE("cache: a forced hash collision never returns another row's score", "[cache]") {
  keel::ManualClock clock;
  keel::LruCacheOptions o;
  o.hash = &constant_hash;
  keel::LruCache cache(o);
  std::vector<float> a{1.f, 2.f}, b{3.f, 4.f}, c{5.f, 6.f};
  cache.insert(key(a), std::vector<float>{10.f}, clock.now(), {});
  cache.insert(key(b), std::vector<float>{20.f}, clock.now(), {});
  std::vector<float> out(1);
  REQUIRE(cache.lookup(key(a), clock.now(), {}, out));
  CHECK(out == std::vector<float>{10.f});
  REQUIRE(cache.lookup(key(b), clock.now(), {}, out));
  CHECK(out == std::vector<float>{20.f});
  out.clear();
  CHECK_FALSE(cache.lookup(key(c), clock.now(), {}, out));
  CHECK(out.empty());
  CHECK(cache.stats().collisions >= 2);
  // Same hash, same features, other version: still a miss.
  CHECK_FALSE(cache.lookup(key(a, 2), clock.now(), {}, out));
}

TEST_CASE("cache: entries expire after the TTL", "[cache]") {
  keel::ManualClock clock;
  keel::LruCacheOptions o;
  o.ttl = 10s;
  keel::LruCache cache(o);
  std::vector<float> row{1.f};
  std::vector<float> out(1);
  cache.insert(key(row), std::vector<float>{1.f}, clock.now(), {});
  clock.advance(9s);
  CHECK(cache.lookup(key(row), clock.now(), {}, out));
  clock.advance(1s);
  CHECK_FALSE(cache.lookup(key(row), clock.now(), {}, out));
  auto st = cache.stats();
  CHECK(st.expirations == 1);
  CHECK(st.entries == 0);
  CHECK(st.bytes == 0);
}

TEST_CASE("cache: re-inserting a key refreshes its scores and TTL", "[cache]") {
  keel::ManualClock clock;
  keel::LruCacheOptions o;
  o.ttl = 10s;
  keel::LruCache cache(o);
  std::vector<float> row{1.f};
  std::vector<float> out(1);
  cache.insert(key(row), std::vector<float>{1.f}, clock.now(), {});
  clock.advance(8s);
  cache.insert(key(row), std::vector<float>{2.f}, clock.now(), {});
  clock.advance(8s);
  REQUIRE(cache.lookup(key(row), clock.now(), {}, out));
  CHECK(out == std::vector<float>{2.f});
  CHECK(cache.stats().entries == 1);
}

TEST_CASE("cache: bounded in entries, least recently used goes first", "[cache]") {
  keel::ManualClock clock;
  keel::LruCacheOptions o;
  o.shards = 1;
  o.max_entries = 3;
  keel::LruCache cache(o);
  std::vector<std::vector<float>> rows{{1.f}, {2.f}, {3.f}, {4.f}};
  std::vector<float> out(1);
  for (int i = 0; i < 3; ++i) cache.insert(key(rows[i]), std::vector<float>{float(i)}, clock.now(), {});
  REQUIRE(cache.lookup(key(rows[0]), clock.now(), {}, out));  // row 0 is now the most recent
  cache.insert(key(rows[3]), std::vector<float>{3.f}, clock.now(), {});
  CHECK(cache.stats().entries == 3);
  CHECK(cache.stats().evictions == 1);
  CHECK_FALSE(cache.lookup(key(rows[1]), clock.now(), {}, out));  // the least recent went
  CHECK(cache.lookup(key(rows[0]), clock.now(), {}, out));
  CHECK(cache.lookup(key(rows[3]), clock.now(), {}, out));
}

TEST_CASE("cache: bounded in bytes", "[cache]") {
  keel::ManualClock clock;
  std::vector<float> row(100, 1.f);
  const std::size_t cost = keel::LruCache::entry_cost(key(row), 1);
  keel::LruCacheOptions o;
  o.shards = 1;
  o.max_bytes = cost * 2 + cost / 2;
  keel::LruCache cache(o);
  for (int i = 0; i < 5; ++i) {
    row[0] = float(i);
    cache.insert(key(row), std::vector<float>{float(i)}, clock.now(), {});
    CHECK(cache.stats().bytes <= o.max_bytes);
  }
  CHECK(cache.stats().entries == 2);
  CHECK(cache.stats().evictions == 3);
  // An entry larger than the whole bound is refused without flushing others.
  std::vector<float> huge(10'000, 0.f);
  cache.insert(key(huge), std::vector<float>{1.f}, clock.now(), {});
  CHECK(cache.stats().entries == 2);
}

TEST_CASE("cache: clear empties every shard", "[cache]") {
  keel::ManualClock clock;
  keel::LruCache cache;
  std::vector<float> out(1);
  for (int i = 0; i < 100; ++i) {
    std::vector<float> row{float(i)};
    cache.insert(key(row), std::vector<float>{1.f}, clock.now(), {});
  }
  CHECK(cache.stats().entries == 100);
  cache.clear();
  CHECK(cache.stats().entries == 0);
  CHECK(cache.stats().bytes == 0);
}

TEST_CASE("cache: NoopCache never hits", "[cache]") {
  keel::ManualClock clock;
  keel::NoopCache cache;
  std::vector<float> row{1.f};
  std::vector<float> out(1);
  cache.insert(key(row), std::vector<float>{1.f}, clock.now(), {});
  CHECK_FALSE(cache.lookup(key(row), clock.now(), {}, out));
  CHECK_FALSE(cache.enabled());
}

TEST_CASE("cache: concurrent readers and writers keep answers exact", "[cache]") {
  keel::ManualClock clock;
  keel::LruCacheOptions o;
  o.max_entries = 64;  // force evictions while threads race
  keel::LruCache cache(o);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> out(1);
      for (int i = 0; i < 2000; ++i) {
        std::vector<float> row{float((i * 7 + t) % 200)};
        if (cache.lookup(key(row), clock.now(), {}, out)) {
          if (out.size() != 1 || out[0] != row[0] * 2) ++wrong;
        } else {
          cache.insert(key(row), std::vector<float>{row[0] * 2}, clock.now(), {});
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(wrong == 0);
  CHECK(cache.stats().entries <= 64);
}
