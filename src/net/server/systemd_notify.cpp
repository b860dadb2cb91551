#include <keel/net/server/systemd_notify.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstring>

namespace keel::net {
namespace {
std::string_view env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string_view(v) : std::string_view();
}
template <class T>
bool parse(std::string_view s, T& out) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}
}  // namespace

SystemdNotifier::SystemdNotifier() {
  const std::string_view sock = env("NOTIFY_SOCKET");
  // A path must be absolute; '@' starts an abstract name. Anything else (or
  // too long for sockaddr_un) is not a socket systemd gave us.
  if (sock.size() >= 2 && sock.size() < sizeof(sockaddr_un{}.sun_path) && (sock[0] == '/' || sock[0] == '@')) {
    socket_ = std::string(sock);
    if (socket_[0] == '@') socket_[0] = '\0';
  }
  std::uint64_t usec = 0;
  if (!parse(env("WATCHDOG_USEC"), usec) || usec == 0) return;
  const std::string_view pid = env("WATCHDOG_PID");
  long long p = 0;
  if (!pid.empty() && (!parse(pid, p) || p != static_cast<long long>(::getpid()))) return;
  watchdog_ = std::chrono::duration_cast<Duration>(std::chrono::microseconds(usec / 2));
}

bool SystemdNotifier::notify(std::string_view state) const noexcept {
  if (socket_.empty()) return false;
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_.data(), socket_.size());
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_.size());
  // Never blocks: a manager that has stopped reading fills the socket's
  // queue (net.unix.max_dgram_qlen, 10 by default), and a blocking send
  // would then stop the thread that pings, which is the one that drains
  // and exits. Such a message is dropped (false).
  const ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                             reinterpret_cast<const sockaddr*>(&addr), len);
  ::close(fd);
  return n == static_cast<ssize_t>(state.size());
}

}  // namespace keel::net
