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
}  // namespace

bool ModelRepository::VersionLess::operator()(const std::string& a, const std::string& b) const {
  if (all_digits(a) && all_digits(b) && a.size() != b.size()) return a.size() < b.size();
  return a < b;
}

ModelRepository::ModelRepository(RepositoryOptions options) : options_(std::move(options)) {
  if (!options_.metrics) options_.metrics = std::make_shared<MetricsRegistry>(4096);
}
ModelRepository::~ModelRepository() = default;

bool ModelRepository::valid_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 128 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
}

void ModelRepository::add(std::unique_ptr<ServedModel> model) {
  auto& versions = models_[model->name];
  if (versions.count(model->version))
    throw Error(StatusCode::kInvalidInput, "model '" + model->name + "' version " + model->version + " given twice");
  std::string version = model->version;
  versions.emplace(std::move(version), std::move(model));
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
  std::shared_lock lock(mu_);
  for (const auto& [name, versions] : models_)
    for (const auto& [v, m] : versions) {
      const bool on = m->loaded.load();
      out.push_back({name, v, on && m->ready() ? "READY" : "UNAVAILABLE", on ? (m->ready() ? "" : "not ready") : "unloaded"});
    }
  if (!dir_.empty()) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
      const std::string name = e.path().filename().string();
      if (e.is_directory() && valid_name(name) && !name.starts_with(".") && !models_.count(name))
        out.push_back({name, "", "UNAVAILABLE", "not loaded"});
    }
  }
  return out;
}

Status ModelRepository::load(std::string_view name) {
  if (!valid_name(name)) return invalid_input("model name '" + std::string(name.substr(0, 128)) + "': use [A-Za-z0-9_.-]");
  {
    std::shared_lock lock(mu_);
    if (auto it = models_.find(name); it != models_.end()) {
      for (const auto& [v, m] : it->second) {
        detail::reload_changed(*m);  // checked: a bad file keeps the old model
        m->loaded.store(true);
      }
      return {};
    }
  }
  if (dir_.empty()) return not_found("model '" + std::string(name) + "': no repository directory (--models)");
  const fs::path folder = dir_ / std::string(name);
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return not_found("model '" + std::string(name) + "': no folder in the repository");
  std::vector<std::unique_ptr<ServedModel>> loaded;
  try {
    loaded = load_folder(folder);
  } catch (const Error& e) {
    return invalid_input(e.what());
  }
  std::unique_lock lock(mu_);
  if (models_.count(name)) return {};  // loaded meanwhile by another call
  for (auto& m : loaded) {
    if (watch_interval_ > Duration::zero()) detail::watch(*m, watch_interval_);
    add(std::move(m));
  }
  return {};
}

Status ModelRepository::unload(std::string_view name) {
  if (!valid_name(name)) return invalid_input("model name '" + std::string(name.substr(0, 128)) + "': use [A-Za-z0-9_.-]");
  std::shared_lock lock(mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return not_found("unknown model '" + std::string(name) + "'");
  for (const auto& [v, m] : it->second) m->loaded.store(false);
  return {};
}

const ServedModel* ModelRepository::find(std::string_view name, std::string_view version) const {
  std::shared_lock lock(mu_);
  auto it = models_.find(name);
  if (it == models_.end() || it->second.empty()) return nullptr;
  if (version.empty()) {
    for (auto v = it->second.rbegin(); v != it->second.rend(); ++v)
      if (v->second->loaded.load(std::memory_order_relaxed)) return v->second.get();
    return nullptr;
  }
  auto v = it->second.find(std::string(version));
  return v == it->second.end() || !v->second->loaded.load(std::memory_order_relaxed) ? nullptr : v->second.get();
}

std::vector<const ServedModel*> ModelRepository::all() const {
  std::vector<const ServedModel*> out;
  std::shared_lock lock(mu_);
  for (const auto& [name, versions] : models_)
    for (const auto& [v, m] : versions)
      if (m->loaded.load(std::memory_order_relaxed)) out.push_back(m.get());
  return out;
}

bool ModelRepository::all_ready() const {
  const auto served = all();
  for (const auto* m : served)
    if (!m->ready()) return false;
  return !served.empty();
}

std::size_t ModelRepository::reload_changed() {
  std::size_t n = 0;
  for (const auto* m : all()) n += detail::reload_changed(*m);
  return n;
}

void ModelRepository::watch(Duration interval) {
  watch_interval_ = interval;
  for (const auto* m : all()) detail::watch(*m, interval);
}

std::string ModelRepository::metrics_text() const { return options_.metrics->render(); }

}  // namespace keel::net
