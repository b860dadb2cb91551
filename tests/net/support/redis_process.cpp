#include "net/support/redis_process.hpp"

#include <fstream>
#include <stdexcept>

namespace keel::test {

namespace {

void write_lines(const std::filesystem::path& p, const std::vector<std::string>& lines) {
  std::ofstream out(p);
  for (const auto& l : lines) out << l << '\n';
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

std::vector<std::string> common_lines(int port, const std::filesystem::path& dir) {
  return {"bind 127.0.0.1",
          "port " + std::to_string(port),
          "protected-mode no",
          "daemonize no",
          "dir " + dir.string(),
          "logfile \"\"",
          "save \"\"",
          "appendonly no"};
}

}  // namespace

RedisServer::RedisServer(RedisServerOptions opts) : opts_(std::move(opts)) {
  if (opts_.port == 0) opts_.port = free_port();
  std::vector<std::string> conf = common_lines(opts_.port, dir_.path());
  if (!opts_.acl_user.empty()) {
    conf.push_back("user default off");
    conf.push_back("user " + opts_.acl_user + " on >" + opts_.acl_password + " ~* &* +@all");
  }
  if (opts_.replica_of) conf.push_back("replicaof 127.0.0.1 " + std::to_string(*opts_.replica_of));
  conf.insert(conf.end(), opts_.extra.begin(), opts_.extra.end());
  write_lines(dir_.path() / "redis.conf", conf);
  start();
}

RedisServer::~RedisServer() { proc_.stop(); }

bool RedisServer::answers() const {
  const std::string r = tcp_exchange(opts_.port, "PING\r\n");
  return r == "+PONG" || r.rfind("-NOAUTH", 0) == 0;
}

void RedisServer::start() {
  proc_.stop();
  proc_ = ChildProcess({"redis-server", (dir_.path() / "redis.conf").string()}, dir_.path() / "redis.log");
  if (!wait_until([&] { return answers(); }, opts_.start_timeout)) {
    const std::string tail = proc_.log_tail();
    proc_.kill();
    throw std::runtime_error("redis-server on port " + std::to_string(opts_.port) + " did not answer: " + tail);
  }
}

RedisSentinel::RedisSentinel(RedisSentinelOptions opts) : opts_(std::move(opts)) {
  if (opts_.port == 0) opts_.port = free_port();
  std::vector<std::string> conf = common_lines(opts_.port, dir_.path());
  conf.erase(conf.end() - 2, conf.end());  // no save/appendonly in a sentinel config
  const std::string m = opts_.master_name;
  conf.push_back("sentinel resolve-hostnames no");
  conf.push_back("sentinel monitor " + m + " 127.0.0.1 " + std::to_string(opts_.master_port) + " " +
                 std::to_string(opts_.quorum));
  conf.push_back("sentinel down-after-milliseconds " + m + " " + std::to_string(opts_.down_after_ms));
  conf.push_back("sentinel failover-timeout " + m + " " + std::to_string(opts_.failover_timeout_ms));
  conf.push_back("sentinel parallel-syncs " + m + " 1");
  write_lines(dir_.path() / "sentinel.conf", conf);  // sentinel rewrites it: it must be writable
  start();
}

RedisSentinel::~RedisSentinel() { proc_.stop(); }

void RedisSentinel::start() {
  proc_.stop();
  proc_ = ChildProcess({"redis-sentinel", (dir_.path() / "sentinel.conf").string()}, dir_.path() / "sentinel.log");
  if (!wait_until([&] { return tcp_exchange(opts_.port, "PING\r\n") == "+PONG"; }, opts_.start_timeout)) {
    const std::string tail = proc_.log_tail();
    proc_.kill();
    throw std::runtime_error("redis-sentinel on port " + std::to_string(opts_.port) + " did not answer: " + tail);
  }
}

}  // namespace keel::test
