#pragma once
// Test support for tests that start real processes (redis-server,
// redis-sentinel, keel serve, nginx, ...): a temporary directory, a free
// loopback port, a child process stopped by PID, and a bounded wait for a
// TCP port to answer. Loopback only. Not thread-safe (one test thread owns
// each object).

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace keel::test {

// mkdtemp under $TMPDIR (or /tmp); removed with everything in it on
// destruction unless KEEL_KEEP_TEST_DIRS is set (for post-mortems).
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "keel-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

// A TCP port on 127.0.0.1 that was free when asked (bound to port 0, then
// closed). Ports handed out by this process are never handed out twice.
int free_port();

// A child process: argv[0] is looked up on PATH; stdout and stderr go to
// `log_file`. The destructor stops it (SIGCONT, SIGTERM, then SIGKILL).
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(std::vector<std::string> argv, std::filesystem::path log_file);
  ~ChildProcess();
  ChildProcess(ChildProcess&& o) noexcept;
  ChildProcess& operator=(ChildProcess&& o) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  // Whether the child has not exited (reaps it if it has).
  [[nodiscard]] bool running();
  // SIGTERM, then SIGKILL after `grace`; waits for the exit. Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(3000));
  void kill();    // SIGKILL and reap
  void pause();   // SIGSTOP: alive, sockets open, answers nothing
  void resume();  // SIGCONT
  [[nodiscard]] const std::filesystem::path& log_file() const noexcept { return log_; }
  [[nodiscard]] std::string log_tail(std::size_t bytes = 2000) const;

 private:
  pid_t pid_ = -1;
  bool paused_ = false;
  std::filesystem::path log_;
};

// Polls `ready` every few ms until it returns true or `timeout` passes.
bool wait_until(const std::function<bool()>& ready, std::chrono::milliseconds timeout);

// Connects to 127.0.0.1:port, sends `request`, and returns what arrives
// within `timeout` (up to the first "\r\n"); empty on any failure.
std::string tcp_exchange(int port, const std::string& request,
                         std::chrono::milliseconds timeout = std::chrono::milliseconds(500));

}  // namespace keel::test
