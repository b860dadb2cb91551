#include "net/remote/http_connection.hpp"

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <boost/asio.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <optional>

namespace keel::net::remote {
namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {
constexpr std::size_t kMaxBody = 64u << 20;

bool peer_closed(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe;
}
}  // namespace

struct HttpConnection::Impl {
  std::string host;
  int port;
  std::string host_header;
  asio::io_context io{1};
  tcp::socket sock{io};
  boost::beast::flat_buffer buf;
  std::optional<tcp::endpoint> endpoint;
  bool open = false;
  asio::steady_timer hook_timer{io};
  std::uint64_t token = 0;   // the exchange in progress; written by its thread only
  bool interrupted = false;  // by interrupt(token), during that exchange

  Impl(std::string h, int p) : host(std::move(h)), port(p), host_header(host + ":" + std::to_string(p)) {}

  void close() {
    error_code ignored;
    sock.close(ignored);
    buf.clear();
    open = false;
  }

  // Runs the io_context until `done` or the budget is spent, one handler at
  // a time (a pending hook timer must not keep it running past `done`); on
  // expiry closes the socket and lets the aborted handlers run.
  bool run(Duration budget, const bool& done) {
    io.restart();
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(budget);
    while (!done && budget > Duration::zero()) {
      if (io.run_one_until(end) == 0) break;  // the time is up, or nothing is left to wait for
    }
    if (done) return true;
    close();
    hook_timer.cancel();
    io.restart();
    io.run();
    return false;
  }

  // Cancels the hook's timer and runs its aborted handler, so that nothing
  // of this exchange is left in the io_context.
  void disarm() {
    hook_timer.cancel();
    io.restart();
    io.poll();
  }

  Status connect(TimePoint deadline, Duration connect_timeout) {
    if (!endpoint) {
      error_code ec;
      const auto addr = asio::ip::make_address(host, ec);
      if (ec) {
        tcp::resolver resolver(io);
        auto results = resolver.resolve(host, std::to_string(port), ec);
        if (ec || results.empty()) return unavailable("cannot resolve " + host_header + ": " + ec.message());
        endpoint = *results.begin();
      } else {
        endpoint = tcp::endpoint(addr, static_cast<unsigned short>(port));
      }
    }
    const Duration left = deadline - system_clock().now();
    const Duration budget = std::min(left, connect_timeout);
    if (budget <= Duration::zero()) return deadline_exceeded("no time left to connect to " + host_header);
    bool done = false;
    error_code result;
    sock.async_connect(*endpoint, [&](const error_code& ec) {
      result = ec;
      done = true;
    });
    if (!run(budget, done)) {
      return budget < left ? unavailable("connect to " + host_header + " timed out")
                           : deadline_exceeded("deadline passed while connecting to " + host_header);
    }
    if (result) {
      close();
      return unavailable("connect to " + host_header + ": " + result.message());
    }
    sock.set_option(tcp::no_delay(true));
    open = true;
    return {};
  }
};

HttpConnection::HttpConnection(std::string host, int port) : impl_(std::make_unique<Impl>(std::move(host), port)) {}
HttpConnection::~HttpConnection() = default;

bool HttpConnection::reusable() const noexcept { return impl_->open; }

std::uint64_t HttpConnection::token() const noexcept { return impl_->token; }

void HttpConnection::interrupt(std::uint64_t token) {
  Impl* im = impl_.get();
  asio::post(im->io, [im, token] {
    if (im->token != token) return;  // that exchange is over
    im->interrupted = true;
    error_code ignored;
    im->sock.close(ignored);  // the pending connect, write or read ends aborted
  });
}

Result<HttpAnswer> HttpConnection::exchange(std::string_view method, std::string_view target,
                                            const HeaderList& headers, std::string_view body, TimePoint deadline,
                                            Duration connect_timeout, ExchangeHook* hook) {
  auto& im = *impl_;
  ++im.token;
  im.interrupted = false;
  if (hook && hook->fire && hook->at < deadline) {
    const std::uint64_t token = im.token;
    im.hook_timer.expires_after(std::chrono::duration_cast<std::chrono::nanoseconds>(hook->at - system_clock().now()));
    im.hook_timer.async_wait([&im, hook, token](const error_code& ec) {
      if (!ec && im.token == token) hook->fire();
    });
  }
  struct Disarm {
    Impl& im;
    ~Disarm() { im.disarm(); }
  } disarm{im};
  const auto cancelled = [&im] {
    im.close();
    return Status(StatusCode::kCancelled, "another attempt answered first (hedge)");
  };
  http::request<http::string_body> req{http::string_to_verb(boost::beast::string_view(method.data(), method.size())),
                                       boost::beast::string_view(target.data(), target.size()), 11};
  req.set(http::field::host, im.host_header);
  req.keep_alive(true);
  for (const auto& [k, v] : headers) req.set(boost::beast::string_view(k.data(), k.size()), v);
  if (!body.empty() || method == "POST") {
    req.set(http::field::content_type, "application/json");
    req.body().assign(body.data(), body.size());
  }
  req.prepare_payload();

  for (int round = 0; round < 2; ++round) {
    const bool reused = im.open;
    if (!im.open) {
      if (Status s = im.connect(deadline, connect_timeout); !s) return im.interrupted ? cancelled() : s;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxBody);
    bool done = false;
    bool wrote = false;
    std::size_t read_bytes = 0;
    error_code result;
    http::async_write(im.sock, req, [&](const error_code& ec, std::size_t) {
      if (ec) {
        result = ec;
        done = true;
        return;
      }
      wrote = true;
      http::async_read(im.sock, im.buf, parser, [&](const error_code& ec2, std::size_t n) {
        result = ec2;
        read_bytes = n;
        done = true;
      });
    });
    if (!im.run(deadline - system_clock().now(), done)) {
      if (im.interrupted) return cancelled();
      return deadline_exceeded(std::string(wrote ? "no answer from " : "could not send to ") + im.host_header +
                               " within the deadline");
    }
    if (im.interrupted) return cancelled();
    if (result) {
      im.close();
      // A pooled connection the server closed while idle: try a fresh one.
      if (reused && read_bytes == 0 && peer_closed(result) && round == 0) continue;
      return unavailable("HTTP exchange with " + im.host_header + ": " + result.message());
    }
    auto res = parser.release();
    HttpAnswer a;
    a.status = static_cast<int>(res.result_int());
    if (auto it = res.find(http::field::retry_after); it != res.end()) a.retry_after = std::string(it->value());
    a.body = std::move(res.body());
    if (!res.keep_alive()) im.close();
    return a;
  }
  return unavailable("HTTP exchange with " + im.host_header + ": connection closed twice");
}

}  // namespace keel::net::remote
