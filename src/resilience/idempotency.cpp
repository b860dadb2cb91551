#include <keel/resilience/detail/wait.hpp>
#include <keel/resilience/idempotency.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace keel {

struct InMemoryIdempotencyStore::Record {
  std::string id;
  std::string model;
  std::vector<float> features;
  bool done = false;
  std::optional<Result<StoredBatch>> result;  // set when done
  TimePoint expires = TimePoint::max();
  std::size_t waiters = 0;
  std::size_t bytes = 0;
  std::condition_variable cv;  // signalled (under the shard mutex) when done

  [[nodiscard]] bool same_payload(const IdempotencyKey& k) const noexcept {
    return model == k.model && features.size() == k.features.size() &&
           (features.empty() || std::memcmp(features.data(), k.features.data(), k.features.size_bytes()) == 0);
  }
};

bool remembered(const Result<StoredBatch>& r) noexcept { return r.ok() && *r && (*r)->failed < (*r)->rows; }

std::size_t stored_bytes(const BatchResult& b) noexcept {
  std::size_t n = sizeof(BatchResult) + b.id.size() + b.scores.size() * sizeof(float) +
                  b.rows * (sizeof(Status) + 2 * sizeof(std::string) + 3 + sizeof(std::uint32_t) + sizeof(double));
  for (std::size_t r = 0; r < b.rows; ++r) {
    n += b.status[r].message().size() + b.degraded_reason[r].size() + b.anomaly_reason[r].size();
  }
  for (std::size_t i = 0; i < b.stage_names.size(); ++i) {
    n += b.stage_names[i].size() + b.stage_model_ids[i].size() + sizeof(std::string) * 2 + 24;
  }
  return n;
}

struct InMemoryIdempotencyStore::Shard {
  using Ptr = std::shared_ptr<Record>;
  mutable std::mutex mu;
  std::unordered_map<std::string_view, Ptr> map;  // keys view Record::id; guarded by mu
  std::list<Ptr> order;                            // insertion order, oldest first; guarded by mu
  std::size_t bytes = 0;                           // guarded by mu
  std::size_t max_entries = 0;
  std::size_t max_bytes = 0;
  IdempotencyStats counts;  // guarded by mu

  void erase(Ptr r) noexcept {  // by value: callers pass references into the map
    auto it = map.find(r->id);
    if (it != map.end() && it->second == r) {
      map.erase(it);
      bytes -= r->bytes;
      order.remove(r);
    }
  }

  // Drops expired and, while over the bounds, the oldest completed records.
  // In-flight records stay: their callers are waiting on them. Returns
  // false when the bounds cannot be met.
  bool make_room(TimePoint now, std::size_t extra) noexcept {
    auto fits = [&] { return map.size() + 1 <= max_entries && bytes + extra <= max_bytes; };
    for (auto it = order.begin(); it != order.end();) {
      Record& r = **it;
      if (!r.done) {
        ++it;
        continue;
      }
      const bool expired = now >= r.expires;
      if (!expired && fits()) break;
      if (!expired) ++counts.evictions;
      map.erase(r.id);
      bytes -= r.bytes;
      it = order.erase(it);
    }
    return fits();
  }
};

InMemoryIdempotencyStore::InMemoryIdempotencyStore(IdempotencyOptions opts, Clock& clock)
    : opts_(opts), clock_(clock) {
  std::size_t n = std::bit_ceil(std::max<std::size_t>(1, opts_.shards));
  while (n > 1 && n > std::max<std::size_t>(1, opts_.max_entries)) n /= 2;
  opts_.shards = n;
  mask_ = n - 1;
  shards_ = std::make_unique<Shard[]>(n);
  for (std::size_t i = 0; i < n; ++i) {
    shards_[i].max_entries = std::max<std::size_t>(1, opts_.max_entries / n);
    shards_[i].max_bytes = opts_.max_bytes / n;
  }
}

InMemoryIdempotencyStore::~InMemoryIdempotencyStore() = default;

InMemoryIdempotencyStore::Shard& InMemoryIdempotencyStore::shard_for(std::string_view id) const noexcept {
  return shards_[std::hash<std::string_view>{}(id)&mask_];
}

Result<StoredBatch> InMemoryIdempotencyStore::run_erased(const IdempotencyKey& key, TimePoint now,
                                                         Deadline deadline, ComputeFn fn, void* ctx) noexcept {
  try {
    Shard& s = shard_for(key.id);
    std::shared_ptr<Record> rec;
    {
      std::unique_lock lock(s.mu);
      auto it = s.map.find(key.id);
      if (it != s.map.end() && it->second->done && now >= it->second->expires) {
        s.erase(it->second);
        it = s.map.end();
      }
      if (it != s.map.end()) {
        std::shared_ptr<Record> seen = it->second;
        if (!seen->same_payload(key)) {
          ++s.counts.conflicts;
          return conflict(fmt::format("request id '{}': reused with a different payload (model or features)",
                                      key.id));
        }
        if (seen->done) {
          ++s.counts.replayed;
          return *seen->result;
        }
        ++s.counts.joined;
        ++seen->waiters;
        // On the store's clock, which is the one the deadline was computed on.
        const bool finished = detail::wait_until(seen->cv, lock, clock_, detail::is_real_clock(clock_),
                                                 deadline.time(), [&] { return seen->done; });
        --seen->waiters;
        if (!finished) {
          return deadline_exceeded(
              fmt::format("request id '{}': deadline passed while waiting for the duplicate in flight", key.id));
        }
        return *seen->result;
      }
      const std::size_t cost =
          sizeof(Record) + 4 * sizeof(void*) + 2 * key.id.size() + key.model.size() + key.features.size_bytes();
      if (!s.make_room(now, cost)) {
        ++s.counts.rejected;
        return overloaded(fmt::format("request id '{}': idempotency store is full of requests in flight", key.id));
      }
      rec = std::make_shared<Record>();
      rec->id.assign(key.id);
      rec->model.assign(key.model);
      rec->features.assign(key.features.begin(), key.features.end());
      rec->bytes = cost;
      s.map.emplace(rec->id, rec);
      s.order.push_back(rec);
      s.bytes += cost;
      ++s.counts.computed;
    }

    Result<StoredBatch> result = fn(ctx);

    std::lock_guard lock(s.mu);
    rec->result.emplace(result);
    rec->done = true;
    auto present = s.map.find(rec->id);
    if (present == s.map.end() || present->second != rec) {
      // clear() ran meanwhile: hand the answer out, remember nothing.
    } else if (remembered(result) && opts_.ttl > Duration::zero()) {
      const std::size_t extra = stored_bytes(**result);
      rec->bytes += extra;
      s.bytes += extra;
      rec->expires = now > TimePoint::max() - opts_.ttl ? TimePoint::max() : now + opts_.ttl;
      if (s.bytes > s.max_bytes) s.make_room(now, 0);
    } else {
      s.erase(rec);  // failures are not remembered; waiters still get this one
    }
    rec->cv.notify_all();
    return result;
  } catch (...) {
    return internal_error(fmt::format("request id '{}': idempotency store out of memory", key.id));
  }
}

IdempotencyStats InMemoryIdempotencyStore::stats() const noexcept {
  IdempotencyStats t;
  for (std::size_t i = 0; i <= mask_; ++i) {
    Shard& s = shards_[i];
    std::lock_guard lock(s.mu);
    t.computed += s.counts.computed;
    t.replayed += s.counts.replayed;
    t.joined += s.counts.joined;
    t.conflicts += s.counts.conflicts;
    t.evictions += s.counts.evictions;
    t.rejected += s.counts.rejected;
    t.entries += s.map.size();
    t.bytes += s.bytes;
  }
  return t;
}

std::size_t InMemoryIdempotencyStore::waiting(std::string_view id) const noexcept {
  Shard& s = shard_for(id);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(id);
  return it == s.map.end() ? 0 : it->second->waiters;
}

void InMemoryIdempotencyStore::clear() noexcept {
  for (std::size_t i = 0; i <= mask_; ++i) {
    Shard& s = shards_[i];
    std::lock_guard lock(s.mu);
    // In-flight records stay reachable through their callers' shared_ptrs.
    s.map.clear();
    s.order.clear();
    s.bytes = 0;
  }
}

}  // namespace keel
