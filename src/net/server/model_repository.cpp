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

void ModelRepository::add_directory(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw Error(StatusCode::kNotFound, "--models " + dir.string() + ": not a directory");
  std::vector<fs::path> folders;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && !e.path().filename().string().starts_with(".")) folders.push_back(e.path());
  std::sort(folders.begin(), folders.end());
  for (const auto& folder : folders) {
    const std::string name = folder.filename().string();
    if (!valid_name(name))
      throw Error(StatusCode::kInvalidInput, "model folder '" + name + "': name must use [A-Za-z0-9_.-]");
    std::vector<fs::path> versions;
    for (const auto& e : fs::directory_iterator(folder))
      if (e.is_directory() && all_digits(e.path().filename().string())) versions.push_back(e.path());
    if (versions.empty()) {
      add(detail::load_served_model(name, "1", folder, name, options_));
      continue;
    }
    for (const auto& v : versions) {
      const std::string version = v.filename().string();
      // Engines of one registry need distinct names for their metrics.
      add(detail::load_served_model(name, version, v, name + ":" + version, options_));
    }
  }
  if (folders.empty()) throw Error(StatusCode::kNotFound, "--models " + dir.string() + ": no model folders");
}

const ServedModel* ModelRepository::find(std::string_view name, std::string_view version) const {
  auto it = models_.find(name);
  if (it == models_.end() || it->second.empty()) return nullptr;
  if (version.empty()) return it->second.rbegin()->second.get();
  auto v = it->second.find(std::string(version));
  return v == it->second.end() ? nullptr : v->second.get();
}

std::vector<const ServedModel*> ModelRepository::all() const {
  std::vector<const ServedModel*> out;
  for (const auto& [name, versions] : models_)
    for (const auto& [v, m] : versions) out.push_back(m.get());
  return out;
}

bool ModelRepository::all_ready() const {
  for (const auto* m : all())
    if (!m->ready()) return false;
  return !models_.empty();
}

std::size_t ModelRepository::reload_changed() {
  std::size_t n = 0;
  for (const auto* m : all()) n += detail::reload_changed(*m);
  return n;
}

void ModelRepository::watch(Duration interval) {
  for (const auto* m : all()) detail::watch(*m, interval);
}

std::string ModelRepository::metrics_text() const { return options_.metrics->render(); }

}  // namespace keel::net
