#pragma once
// redis-server and redis-sentinel as real child processes for tests: each on
// a free loopback port, with its own temporary directory, no persistence,
// started and waited for (bounded), stopped by PID. Not thread-safe.

#include "net/support/process.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace keel::test {

struct RedisServerOptions {
  int port = 0;                     // 0: a free port
  std::string acl_user;             // with acl_password: the only user; `default` is disabled
  std::string acl_password;
  std::optional<int> replica_of;    // master's port on 127.0.0.1
  std::vector<std::string> extra;   // more redis.conf lines
  std::chrono::milliseconds start_timeout{10000};
};

class RedisServer {
 public:
  explicit RedisServer(RedisServerOptions opts = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  [[nodiscard]] int port() const noexcept { return opts_.port; }
  // Starts (again) on the same port and directory; throws when it does not
  // answer within start_timeout, with the end of its log.
  void start();
  void stop() { proc_.stop(); }
  void kill() { proc_.kill(); }
  void pause() { proc_.pause(); }
  void resume() { proc_.resume(); }
  [[nodiscard]] bool running() { return proc_.running(); }
  // PING answered (+PONG, or -NOAUTH when a password is required).
  [[nodiscard]] bool answers() const;
  [[nodiscard]] ChildProcess& process() noexcept { return proc_; }
  [[nodiscard]] std::string log_tail() const { return proc_.log_tail(); }

 private:
  RedisServerOptions opts_;
  TempDir dir_{"keel-redis"};
  ChildProcess proc_;
};

struct RedisSentinelOptions {
  int port = 0;
  std::string master_name = "mymaster";
  int master_port = 0;
  int quorum = 1;
  int down_after_ms = 1000;
  int failover_timeout_ms = 5000;
  std::chrono::milliseconds start_timeout{10000};
};

class RedisSentinel {
 public:
  explicit RedisSentinel(RedisSentinelOptions opts);
  ~RedisSentinel();
  RedisSentinel(const RedisSentinel&) = delete;
  RedisSentinel& operator=(const RedisSentinel&) = delete;

  [[nodiscard]] int port() const noexcept { return opts_.port; }
  void start();
  void stop() { proc_.stop(); }
  [[nodiscard]] std::string log_tail() const { return proc_.log_tail(); }

 private:
  RedisSentinelOptions opts_;
  TempDir dir_{"keel-sentinel"};
  ChildProcess proc_;
};

}  // namespace keel::test
