#pragma once
// systemd's service notification protocol (sd_notify(3)), spoken directly:
// one datagram per message to the AF_UNIX socket named by $NOTIFY_SOCKET
// (a path, or "@name" in the abstract namespace). No libsystemd needed.
// Without $NOTIFY_SOCKET (not under systemd with Type=notify) every call is
// a no-op. Thread-safe.
//
// keel serve sends READY=1 once every model has loaded and the listeners
// are bound, STOPPING=1 when it starts to drain, and WATCHDOG=1 every half
// $WATCHDOG_USEC while each of its I/O loops has run within that time, so
// systemd restarts a replica whose event loop is stuck.

#include <keel/core/clock.hpp>

#include <string>
#include <string_view>

namespace keel::net {

class SystemdNotifier {
 public:
  // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment.
  SystemdNotifier();
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  [[nodiscard]] bool enabled() const noexcept { return !socket_.empty(); }
  // Sends `state` ("READY=1", "STATUS=...", newline-separated): false when
  // disabled or the datagram could not be sent, which includes a socket
  // whose reader has let its queue fill (the send never blocks).
  bool notify(std::string_view state) const noexcept;
  // How often to send WATCHDOG=1: half of WATCHDOG_USEC, or zero when no
  // watchdog is asked for this process (WATCHDOG_PID names another).
  [[nodiscard]] Duration watchdog_interval() const noexcept { return watchdog_; }

 private:
  std::string socket_;  // the address, '\0'-prefixed for the abstract namespace
  Duration watchdog_{0};
};

}  // namespace keel::net
