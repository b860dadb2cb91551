#include "cli/registry.hpp"

namespace keel::cli {

std::vector<Registrar>& registry() {
  static std::vector<Registrar> r;
  return r;
}

std::map<const CLI::App*, Runner>& runners() {
  static std::map<const CLI::App*, Runner> r;
  return r;
}

int run(const CLI::App* sub) {
  auto it = runners().find(sub);
  if (it == runners().end() || !it->second) return 0;
  return it->second();
}

}  // namespace keel::cli
