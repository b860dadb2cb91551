#include "net/support/keel_serve_process.hpp"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace keel::test {

std::string keel_binary(const std::string& binary_dir) {
  if (const char* env = std::getenv("KEEL_BINARY"); env && *env) return env;
  const std::string p = binary_dir + "/keel";
  if (!std::filesystem::exists(p))
    throw std::runtime_error(p + " does not exist: build the keel_cli target first (or set KEEL_BINARY)");
  return p;
}

KeelServe::KeelServe(KeelServeOptions opts) : opts_(std::move(opts)) {
  if (opts_.port == 0) opts_.port = free_port();
  start();
}

KeelServe::~KeelServe() { proc_.stop(); }

bool KeelServe::ready() const {
  return tcp_exchange(opts_.port, "GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n") ==
         "HTTP/1.1 200 OK";
}

void KeelServe::start() {
  proc_.stop();
  std::vector<std::string> argv{opts_.keel_binary, "serve", "--model", opts_.model_name + "=" + opts_.model_file,
                                "--http-port", std::to_string(opts_.port), "--drain-delay-ms", "0",
                                "--drain-timeout-ms", "1000"};
  argv.insert(argv.end(), opts_.extra.begin(), opts_.extra.end());
  proc_ = ChildProcess(argv, dir_.path() / "serve.log");
  if (!wait_until([&] { return ready() || !proc_.running(); }, opts_.start_timeout) || !proc_.running()) {
    const std::string tail = proc_.log_tail();
    proc_.kill();
    throw std::runtime_error("keel serve on port " + std::to_string(opts_.port) + " was not ready: " + tail);
  }
}

}  // namespace keel::test
