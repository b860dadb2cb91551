#pragma once
// EngineRegistry: named, versioned ScoringEngines for a host that serves
// several models (keel serve, or an application with one engine per
// tenant). Looked up by (name, version), or by name alone for the newest
// version that is ready. Each entry has a ready switch (warm a new version
// before it takes traffic, or pull one out); the registry has a global
// draining switch (shutdown: every lookup answers kUnavailable, so callers
// shed with a retryable status while requests in flight finish).
//
// Thread-safe. Lookups read an immutable snapshot whose shared_ptr they
// copy under a mutex held for that copy only, so they never wait for a
// writer's work; writers (add, replace, remove, set_ready) serialise on
// another mutex, copy the snapshot, change the copy and swap the pointer in.
// (Not std::atomic<std::shared_ptr>: libstdc++ 12 implements it with a
// lock bit as well, and its load unlocks relaxed, which TSan reports as a
// race with the next store.) An entry found before a replace or
// remove stays valid and keeps its engine alive, so a request finishes on
// the engine it started with. Writes copy every entry's pointer: fine for
// tens or hundreds of models changed at human pace, not for per-request
// writes.
//
// The registry never calls the engine, so it depends on ScoringEngine by
// name only.

#include <keel/core/result.hpp>

#include <atomic>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace keel {

class ScoringEngine;

// Version order: decimal versions numerically ("9" < "10", then "1" <
// "01"), after every other version; other versions bytewise among
// themselves. "Newest" is the greatest in this order.
struct VersionLess {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept;
};

struct RegisteredEngine {
  std::string name;
  std::string version;
  std::shared_ptr<ScoringEngine> engine;
  bool ready = true;
  // The host's own data for this entry (keel serve: its per-model counters
  // and source path). The registry only keeps it alive.
  std::shared_ptr<const void> context;
};

class EngineRegistry {
 public:
  using EntryPtr = std::shared_ptr<const RegisteredEngine>;

  EngineRegistry();
  ~EngineRegistry();
  EngineRegistry(const EngineRegistry&) = delete;
  EngineRegistry& operator=(const EngineRegistry&) = delete;

  // kInvalidInput for an empty name or version or a null engine,
  // kConflict when (name, version) is already there.
  Status add(RegisteredEngine entry);
  // Swaps the entry (engine, ready, context) for an existing (name,
  // version); kNotFound when there is none.
  Status replace(RegisteredEngine entry);
  Status remove(std::string_view name, std::string_view version);
  Status set_ready(std::string_view name, std::string_view version, bool ready);

  // While draining, every find() answers kUnavailable.
  void set_draining(bool draining) noexcept;
  [[nodiscard]] bool draining() const noexcept;

  // `version` empty: the newest ready version of `name`. kNotFound names
  // what is unknown; kUnavailable when draining or the entry (or, by name,
  // every version) is not ready.
  [[nodiscard]] Result<EntryPtr> find(std::string_view name, std::string_view version = {}) const;
  // Every entry, ready or not, by name then version.
  [[nodiscard]] std::vector<EntryPtr> list() const;
  [[nodiscard]] std::size_t size() const;
  // Not draining, not empty, and every name has a ready version.
  [[nodiscard]] bool ready() const;

 private:
  using Versions = std::map<std::string, EntryPtr, VersionLess>;
  using Snapshot = std::map<std::string, Versions, std::less<>>;

  [[nodiscard]] std::shared_ptr<const Snapshot> snapshot() const;
  void publish(Snapshot next);
  // Under write_mu_: copies the snapshot, calls change(versions, it) on
  // (name, version)'s slot in the copy, publishes it. kNotFound if absent.
  template <class Change>
  Status update(std::string_view name, std::string_view version, Change change);

  mutable std::mutex snapshot_mu_;  // guards snapshot_ (the pointer only)
  std::shared_ptr<const Snapshot> snapshot_;
  std::atomic<bool> draining_{false};
  std::mutex write_mu_;  // serialises writers; readers never take it
};

}  // namespace keel
