#pragma once
// HttpConnection: one keep-alive HTTP/1.1 client connection on Boost.Asio
// and Beast, with every exchange bounded by a deadline. It owns its own
// io_context and runs it on the caller's thread only for the time left
// (io_context::run_for), so a peer that accepts and never answers (a
// SIGSTOPped process keeps its listening socket) costs at most the budget:
// on expiry the socket is closed and the connection is dead. Internal to
// RemoteModel. Not thread-safe: one caller at a time (the pool hands it out).

#include <keel/core/clock.hpp>
#include <keel/core/result.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel::net::remote {

struct HttpAnswer {
  int status = 0;
  std::string body;
  std::string retry_after;  // Retry-After, when sent
};

using HeaderList = std::vector<std::pair<std::string_view, std::string>>;

// What an exchange does while it waits, for hedging: at `at` (if before the
// deadline) `fire` runs once, on the caller's thread inside exchange().
struct ExchangeHook {
  TimePoint at = TimePoint::max();
  std::function<void()> fire;
};

class HttpConnection {
 public:
  HttpConnection(std::string host, int port);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Connects when needed (within min(connect_timeout, time left)), sends the
  // request and reads the whole answer by `deadline` (keel::system_clock()).
  // A reused connection that the server had closed is reconnected once.
  // Errors: kDeadlineExceeded (the time ran out), kUnavailable (connect or
  // I/O failure). After an error the connection is closed; it reconnects
  // on the next call.
  [[nodiscard]] Result<HttpAnswer> exchange(std::string_view method, std::string_view target,
                                            const HeaderList& headers, std::string_view body, TimePoint deadline,
                                            Duration connect_timeout, ExchangeHook* hook = nullptr);
  // The exchange in progress (or the last one): read it in a hook's fire().
  [[nodiscard]] std::uint64_t token() const noexcept;
  // Thread-safe: ends the exchange `token` with kCancelled (closing the
  // socket) if it is still in progress; a later exchange is not touched.
  // The caller must keep the connection alive until the call returns.
  void interrupt(std::uint64_t token);
  // Open and not told to close by the server: worth keeping in a pool.
  [[nodiscard]] bool reusable() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::net::remote
