// keel: the command-line tool. Each subcommand lives in its own
// src/cli/cmd_<name>.cpp and registers itself through KEEL_CLI_COMMAND.

#include "cli/registry.hpp"

#include <keel/version.hpp>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <exception>

int main(int argc, char** argv) {
  CLI::App app{"keel: fault-tolerant model scoring"};
  app.set_version_flag("--version", std::string(keel::version()));
  app.require_subcommand(1);
  for (const auto& reg : keel::cli::registry()) reg(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (CLI::App* sub : app.get_subcommands()) {
      const int rc = keel::cli::run(sub);
      if (rc != 0) return rc;
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "keel: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
