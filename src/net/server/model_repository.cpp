#include <keel/net/server/model_repository.hpp>

#include <keel/engine/metrics.hpp>

#include "net/server/engine_adapter.hpp"

#include <algorithm>
#include <charconv>

namespace keel::net {
namespace fs = std::filesystem;

namespace {
bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}
// The registry keeps each entry's ServedModel alive, and entries are never
// removed (unload marks them not ready), so the pointer stays valid for the
// repository's life.
const ServedModel* served(const EngineRegistry::EntryPtr& e) {
  return static_cast<const ServedModel*>(e->context.get());
}
}  // namespace

ModelRepository::ModelRepository(RepositoryOptions options) : options_(std::move(options)) {
  if (!options_.metrics) options_.metrics = std::make_shared<MetricsRegistry>(4096);
}
ModelRepository::~ModelRepository() {
  {
    std::lock_guard lock(watch_mu_);
    watch_stop_ = true;
  }
  watch_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

bool ModelRepository::valid_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 128 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
}

void ModelRepository::add(std::unique_ptr<ServedModel> model) {
  std::shared_ptr<const ServedModel> m = std::move(model);
  Status s = registry_.add({.name = m->name, .version = m->version, .engine = m->engine(), .ready = true, .context = m});
  if (!s) throw Error(std::move(s));
}

void ModelRepository::add_file(const std::string& name, const fs::path& file) {
  if (!valid_name(name)) throw Error(StatusCode::kInvalidInput, "model name '" + name + "': use [A-Za-z0-9_.-]");
  if (!fs::is_regular_file(file)) throw Error(StatusCode::kNotFound, "model '" + name + "': no file " + file.string());
  add(detail::load_served_model(name, "1", file, name, options_));
}

std::vector<std::unique_ptr<ServedModel>> ModelRepository::load_folder(const fs::path& folder) const {
  const std::string name = folder.filename().string();
  if (!valid_name(name))
    throw Error(StatusCode::kInvalidInput, "model folder '" + name + "': name must use [A-Za-z0-9_.-]");
  std::vector<fs::path> versions;
  for (const auto& e : fs::directory_iterator(folder))
    if (e.is_directory() && all_digits(e.path().filename().string())) versions.push_back(e.path());
  std::vector<std::unique_ptr<ServedModel>> out;
  if (versions.empty()) {
    out.push_back(detail::load_served_model(name, "1", folder, name, options_));
    return out;
  }
  for (const auto& v : versions) {
    const std::string version = v.filename().string();
    // Engines of one registry need distinct names for their metrics.
    out.push_back(detail::load_served_model(name, version, v, name + ":" + version, options_));
  }
  return out;
}

void ModelRepository::add_directory(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw Error(StatusCode::kNotFound, "--models " + dir.string() + ": not a directory");
  dir_ = dir;
  std::vector<fs::path> folders;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && !e.path().filename().string().starts_with(".")) folders.push_back(e.path());
  std::sort(folders.begin(), folders.end());
  for (const auto& folder : folders)
    for (auto& m : load_folder(folder)) add(std::move(m));
  if (folders.empty()) throw Error(StatusCode::kNotFound, "--models " + dir.string() + ": no model folders");
}

std::vector<ModelRepository::IndexEntry> ModelRepository::index() const {
  std::vector<IndexEntry> out;
  const std::vector<EngineRegistry::EntryPtr> entries = registry_.list();
  for (const auto& e : entries) {
    const bool ready = served(e)->ready();
    out.push_back({e->name, e->version, e->ready && ready ? "READY" : "UNAVAILABLE",
                   e->ready ? (ready ? "" : "not ready") : "unloaded"});
  }
  if (!dir_.empty()) {
    std::error_code ec;
    for (const auto& d : fs::directory_iterator(dir_, ec)) {
      const std::string name = d.path().filename().string();
      const bool known = std::any_of(entries.begin(), entries.end(), [&](const auto& e) { return e->name == name; });
      if (d.is_directory() && valid_name(name) && !name.starts_with(".") && !known)
        out.push_back({name, "", "UNAVAILABLE", "not loaded"});
    }
  }
  return out;
}

// Marks every version of `name` served or not (re-reading changed files
// first when serving: a bad file keeps the old model). Under load_mu_.
Status ModelRepository::set_served(std::string_view name, bool serve, bool& known) {
  known = false;
  for (const auto& e : registry_.list()) {
    if (e->name != name) continue;
    known = true;
    if (serve) {
      detail::reload_changed(*served(e));
      (void)detail::reload_config(*served(e), options_, watch_interval_);  // a bad engine.json keeps the old
    }
    if (Status s = registry_.set_ready(e->name, e->version, serve); !s) return s;
  }
  return {};
}

Status ModelRepository::load(std::string_view name) {
  if (!valid_name(name)) return invalid_input("model name '" + std::string(name.substr(0, 128)) + "': use [A-Za-z0-9_.-]");
  std::lock_guard lock(load_mu_);
  bool known = false;
  if (Status s = set_served(name, true, known); !s || known) return s;
  if (dir_.empty()) return not_found("model '" + std::string(name) + "': no repository directory (--models)");
  const fs::path folder = dir_ / std::string(name);
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return not_found("model '" + std::string(name) + "': no folder in the repository");
  try {
    for (auto& m : load_folder(folder)) {
      if (watch_interval_ > Duration::zero()) detail::watch(*m, watch_interval_);
      add(std::move(m));
    }
  } catch (const Error& e) {
    return invalid_input(e.what());
  }
  return {};
}

Status ModelRepository::unload(std::string_view name) {
  if (!valid_name(name)) return invalid_input("model name '" + std::string(name.substr(0, 128)) + "': use [A-Za-z0-9_.-]");
  std::lock_guard lock(load_mu_);
  bool known = false;
  if (Status s = set_served(name, false, known); !s) return s;
  if (!known) return not_found("unknown model '" + std::string(name) + "'");
  return {};
}

const ServedModel* ModelRepository::find(std::string_view name, std::string_view version) const {
  auto r = registry_.find(name, version);
  return r.ok() ? served(*r) : nullptr;
}

// The models being served (loaded), by name then version.
std::vector<const ServedModel*> ModelRepository::all() const {
  std::vector<const ServedModel*> out;
  for (const auto& e : registry_.list())
    if (e->ready) out.push_back(served(e));
  return out;
}

bool ModelRepository::all_ready() const {
  const auto models = all();
  for (const auto* m : models)
    if (!m->ready()) return false;
  return !models.empty() && !registry_.draining();
}

std::size_t ModelRepository::reload_changed(std::vector<std::string>* errors) {
  std::lock_guard lock(load_mu_);
  std::size_t n = reload_configs(errors);
  for (const auto* m : all()) n += detail::reload_changed(*m);
  return n;
}

std::size_t ModelRepository::reload_configs(std::vector<std::string>* errors) {
  std::size_t n = 0;
  for (const auto& e : registry_.list()) {
    const ServedModel& m = *served(e);
    Result<bool> r = detail::reload_config(m, options_, watch_interval_);
    if (!r.ok()) {
      if (errors) errors->push_back(r.status().to_string());
      continue;
    }
    if (!*r) continue;
    ++n;
    (void)registry_.replace({.name = e->name, .version = e->version, .engine = m.engine(), .ready = e->ready,
                             .context = e->context});
  }
  return n;
}

void ModelRepository::watch(Duration interval) {
  {
    std::lock_guard lock(load_mu_);
    watch_interval_ = interval;
    for (const auto* m : all()) detail::watch(*m, interval);
  }
  if (interval <= Duration::zero() || watcher_.joinable()) return;
  watcher_ = std::thread([this, interval] {
    std::unique_lock lock(watch_mu_);
    while (!watch_cv_.wait_for(lock, interval, [this] { return watch_stop_; })) {
      lock.unlock();
      std::vector<std::string> errors;
      {
        std::lock_guard load(load_mu_);
        (void)reload_configs(&errors);
      }
      if (options_.log)
        for (const auto& err : errors) options_.log(err);
      lock.lock();
    }
  });
}

std::string ModelRepository::metrics_text() const { return options_.metrics->render(); }

}  // namespace keel::net
