#include <keel/engine/registry.hpp>

#include <algorithm>
#include <utility>

namespace keel {

namespace {

bool decimal(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string quoted(std::string_view name, std::string_view version) {
  std::string s = "engine '" + std::string(name) + "'";
  if (!version.empty()) s += " version '" + std::string(version) + "'";
  return s;
}

}  // namespace

bool VersionLess::operator()(std::string_view a, std::string_view b) const noexcept {
  // Two classes, so that the order stays a strict weak one (mixing numeric
  // and bytewise comparisons alone is not transitive: "2" < "10" < "1a" < "2").
  const bool da = decimal(a), db = decimal(b);
  if (da != db) return db;  // names before numbers
  if (!da) return a < b;
  // Numerically, then "1" before "01" so that distinct strings never tie.
  const auto value = [](std::string_view s) { return s.substr(std::min(s.find_first_not_of('0'), s.size())); };
  const std::string_view va = value(a), vb = value(b);
  if (va.size() != vb.size()) return va.size() < vb.size();
  if (va != vb) return va < vb;
  return a.size() < b.size();
}

EngineRegistry::EngineRegistry() : snapshot_(std::make_shared<const Snapshot>()) {}
EngineRegistry::~EngineRegistry() = default;

std::shared_ptr<const EngineRegistry::Snapshot> EngineRegistry::snapshot() const {
  std::lock_guard lock(snapshot_mu_);
  return snapshot_;
}

void EngineRegistry::publish(Snapshot next) {
  std::shared_ptr<const Snapshot> fresh = std::make_shared<const Snapshot>(std::move(next));
  {
    std::lock_guard lock(snapshot_mu_);
    snapshot_.swap(fresh);
  }
  // `fresh` now holds the old snapshot: freed here, outside the lock, when
  // no reader holds it any more.
}

Status EngineRegistry::add(RegisteredEngine entry) {
  if (entry.name.empty()) return invalid_input("engine registry: empty name");
  if (entry.version.empty()) return invalid_input(quoted(entry.name, {}) + ": empty version");
  if (!entry.engine) return invalid_input(quoted(entry.name, entry.version) + ": no engine");
  std::lock_guard lock(write_mu_);
  Snapshot next = *snapshot();
  Versions& versions = next[entry.name];
  if (versions.count(entry.version)) return conflict(quoted(entry.name, entry.version) + " is already registered");
  std::string version = entry.version;
  versions.emplace(std::move(version), std::make_shared<const RegisteredEngine>(std::move(entry)));
  publish(std::move(next));
  return Status::ok();
}

template <class Change>
Status EngineRegistry::update(std::string_view name, std::string_view version, Change change) {
  std::lock_guard lock(write_mu_);
  Snapshot next = *snapshot();
  auto n = next.find(name);
  if (n == next.end()) return not_found(quoted(name, version) + " not found");
  auto v = n->second.find(version);
  if (v == n->second.end()) return not_found(quoted(name, version) + " not found");
  change(n->second, v);
  if (n->second.empty()) next.erase(n);
  publish(std::move(next));
  return Status::ok();
}

Status EngineRegistry::replace(RegisteredEngine entry) {
  if (!entry.engine) return invalid_input(quoted(entry.name, entry.version) + ": no engine");
  const std::string name = entry.name, version = entry.version;
  return update(name, version, [&](Versions&, Versions::iterator v) {
    v->second = std::make_shared<const RegisteredEngine>(std::move(entry));
  });
}

Status EngineRegistry::remove(std::string_view name, std::string_view version) {
  return update(name, version, [](Versions& versions, Versions::iterator v) { versions.erase(v); });
}

Status EngineRegistry::set_ready(std::string_view name, std::string_view version, bool ready) {
  return update(name, version, [ready](Versions&, Versions::iterator v) {
    // Entries are shared with readers: change a copy.
    auto changed = std::make_shared<RegisteredEngine>(*v->second);
    changed->ready = ready;
    v->second = std::move(changed);
  });
}

void EngineRegistry::set_draining(bool draining) noexcept { draining_.store(draining, std::memory_order_release); }
bool EngineRegistry::draining() const noexcept { return draining_.load(std::memory_order_acquire); }

Result<EngineRegistry::EntryPtr> EngineRegistry::find(std::string_view name, std::string_view version) const {
  if (draining()) return unavailable("engine registry is draining: " + quoted(name, version) + " not served");
  const auto snap = snapshot();
  auto n = snap->find(name);
  if (n == snap->end()) return not_found(quoted(name, version) + " not found");
  const Versions& versions = n->second;
  if (version.empty()) {
    for (auto it = versions.rbegin(); it != versions.rend(); ++it)
      if (it->second->ready) return it->second;
    return unavailable(quoted(name, {}) + " has no ready version");
  }
  auto v = versions.find(version);
  if (v == versions.end()) return not_found(quoted(name, version) + " not found");
  if (!v->second->ready) return unavailable(quoted(name, version) + " is not ready");
  return v->second;
}

std::vector<EngineRegistry::EntryPtr> EngineRegistry::list() const {
  const auto snap = snapshot();
  std::vector<EntryPtr> out;
  for (const auto& [name, versions] : *snap)
    for (const auto& [version, entry] : versions) out.push_back(entry);
  return out;
}

std::size_t EngineRegistry::size() const {
  std::size_t n = 0;
  for (const auto& [name, versions] : *snapshot()) n += versions.size();
  return n;
}

bool EngineRegistry::ready() const {
  if (draining()) return false;
  const auto snap = snapshot();
  if (snap->empty()) return false;
  return std::all_of(snap->begin(), snap->end(), [](const auto& n) {
    return std::any_of(n.second.begin(), n.second.end(), [](const auto& v) { return v.second->ready; });
  });
}

}  // namespace keel
