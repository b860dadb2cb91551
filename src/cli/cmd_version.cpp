#include "cli/registry.hpp"

#include <keel/version.hpp>

#include <fmt/core.h>

KEEL_CLI_COMMAND(version) {
  app.add_subcommand("version", "Print Keel's version");
  return [] {
    fmt::print("keel {}\n", keel::version());
    return 0;
  };
}
