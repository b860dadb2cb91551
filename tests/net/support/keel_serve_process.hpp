#pragma once
// `keel serve` as a real child process for tests: one model file under a
// name, on a free loopback port, started and waited for (bounded: until
// /v2/health/ready answers 200), stopped by PID. Not thread-safe.

#include "net/support/process.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace keel::test {

struct KeelServeOptions {
  std::string keel_binary;  // path of the built `keel`
  std::string model_name = "m";
  std::string model_file;
  int port = 0;  // 0: a free port
  std::vector<std::string> extra;  // more command-line arguments
  std::chrono::milliseconds start_timeout{15000};
};

// The `keel` binary of this build: $KEEL_BINARY if set, else <binary_dir>/keel.
std::string keel_binary(const std::string& binary_dir);

class KeelServe : public ProcessControls {
 public:
  explicit KeelServe(KeelServeOptions opts);
  ~KeelServe();
  KeelServe(const KeelServe&) = delete;
  KeelServe& operator=(const KeelServe&) = delete;

  [[nodiscard]] int port() const noexcept { return opts_.port; }
  // Starts (again) on the same port; throws with the log's end when it is
  // not ready within start_timeout.
  void start();
  // GET /v2/health/ready answered 200.
  [[nodiscard]] bool ready() const;

 private:
  KeelServeOptions opts_;
  TempDir dir_{"keel-serve"};
};

}  // namespace keel::test
