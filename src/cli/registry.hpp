#pragma once
// Self-registration of CLI subcommands: a cmd_<name>.cpp defines
//   KEEL_CLI_COMMAND(name) { auto* sub = app.add_subcommand(...); ...; return [=] { return 0; }; }
// The returned function runs when the subcommand was chosen; its int is the
// exit code.

#include <CLI/CLI.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace keel::cli {

using Runner = std::function<int()>;
using Registrar = std::function<void(CLI::App&)>;

std::vector<Registrar>& registry();
std::map<const CLI::App*, Runner>& runners();
int run(const CLI::App* sub);

struct AutoRegister {
  explicit AutoRegister(Runner (*fn)(CLI::App&)) {
    registry().push_back([fn](CLI::App& app) {
      const std::size_t before = app.get_subcommands({}).size();
      Runner r = fn(app);
      auto subs = app.get_subcommands({});
      if (subs.size() > before) runners()[subs.back()] = std::move(r);
    });
  }
};

}  // namespace keel::cli

#define KEEL_CLI_COMMAND(name)                                                        \
  static ::keel::cli::Runner keel_cli_register_##name(CLI::App& app);                 \
  static const ::keel::cli::AutoRegister keel_cli_auto_##name{&keel_cli_register_##name}; \
  static ::keel::cli::Runner keel_cli_register_##name(CLI::App& app)
