#pragma once
// HttpServer: an asynchronous HTTP/1.1 server on Boost.Asio with Beast's
// parser. Each I/O thread runs its own io_context and holds any number of
// connections; an idle keep-alive connection costs a socket and a few KB,
// never a thread. A request reaches the handler only when its header and
// whole body are in, so a slow client holds no worker. Every phase of a
// connection has a bound, enforced by a per-thread sweep (no timer per
// request):
//
//   limit              default    on breach
//   max_header_bytes   16 KiB     431, close
//   max_body_bytes     64 MiB     413, close
//   header_timeout     10 s       408, close (from a request's first byte)
//   body_timeout       30 s       408, close (from the end of its header)
//   idle_timeout       60 s       close (keep-alive wait)
//   write_timeout      30 s       close (client not reading its answer)
//   max_connections    10000      503 + Retry-After, close
//
// With tls_cert_file the listener speaks HTTPS (OpenSSL through
// boost::asio::ssl, TLS 1.2 or later). The handshake is under
// header_timeout, from the accept: a client that connects and sends no
// ClientHello is closed like a slow header (no 408: there is no channel to
// send it on). A failed handshake is logged (one JSON line on stdout, at
// most one a second, with the number suppressed) and counted in
// keel_server_tls_handshake_failures_total. A connection the server ends is
// closed with a TLS close_notify, waited for at most 1 s. Past
// max_connections a new connection is closed before the handshake (no
// 503 in clear on an HTTPS port). With
// tls_client_ca_file every client must present a certificate signed by it.
// The plain listener's per-request path is unchanged: one predictable
// branch per read and write, no allocation, no virtual call.
//
// The handler answers through a Reply, at once on the I/O thread or later
// from any thread; while an answer is pending the connection keeps
// reading, so a client that disconnects sets Reply::cancelled().
//
// Thread-safe: start(), end_keep_alive(), stop_accepting(), stop() and the accessors may be
// called from any thread.

#include <keel/core/clock.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace keel {
class MetricsRegistry;
}

namespace keel::net {

struct HttpLimits {
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 64 * 1024 * 1024;
  Duration header_timeout = std::chrono::seconds(10);
  Duration body_timeout = std::chrono::seconds(30);
  Duration idle_timeout = std::chrono::seconds(60);
  Duration write_timeout = std::chrono::seconds(30);
  std::size_t max_connections = 10000;
};

struct HttpServerConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8000;  // 0: a free port
  // Each runs its own event loop over its share of the connections.
  unsigned io_threads = 1;
  HttpLimits limits;
  // HTTPS when tls_cert_file is set (PEM; the chain, leaf first), with the
  // PEM private key in tls_key_file (not encrypted). With
  // tls_client_ca_file (PEM, one or more CAs), mutual TLS: a client without
  // a certificate signed by one of them is refused in the handshake.
  // Checked by start(): errors name the serve.json field (http_tls.*) and
  // the file, never the key's content.
  std::string tls_cert_file, tls_key_file, tls_client_ca_file;
};

// What the handler sees of a request. Views into the connection's buffers,
// valid until the Reply is sent.
struct HttpRequest {
  std::string_view method;
  std::string_view target;  // path and query
  std::string_view content_type;
  std::string_view idempotency_key;        // Idempotency-Key
  std::string_view timeout_ms;             // Keel-Timeout-Ms
  std::string_view traceparent;            // W3C traceparent
  std::string_view request_id;             // X-Request-Id
  std::string_view inference_header_length;  // Inference-Header-Content-Length
  std::string_view authorization;            // Authorization
  std::string_view body;
  std::size_t body_capacity = 0;  // readable bytes from body.data() (>= body.size())
  TimePoint received{};           // when the body was complete
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::optional<std::size_t> inference_header_length;
  int retry_after_s = -1;  // >= 0: a Retry-After header
  std::string headers;     // more header lines, each "Name: value\r\n"
};

class Reply {
 public:
  struct State;
  Reply() = default;
  explicit Reply(std::shared_ptr<State> s) : state_(std::move(s)) {}
  // Sends the answer (once). From any thread.
  void send(HttpResponse&& response);
  // The client went away while the answer was pending.
  [[nodiscard]] bool cancelled() const noexcept;
  explicit operator bool() const noexcept { return state_ != nullptr; }

 private:
  std::shared_ptr<State> state_;
};

// Routes requests. handle() runs on an I/O thread and must not block: it
// answers at once or hands the work to a bounded pool.
class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  virtual void handle(const HttpRequest& request, Reply reply) = 0;
};

struct HttpServerStats {
  std::uint64_t connections = 0;
  std::uint64_t in_flight = 0;
};

class HttpServer {
 public:
  // Registers the server metrics (keel_server_connections,
  // keel_server_bytes_*_total, keel_server_shed_total{reason="connections"},
  // keel_server_request_phase_seconds{phase="write"}) in `metrics`.
  HttpServer(HttpServerConfig config, HttpHandler& handler, MetricsRegistry& metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Loads the TLS files (if any), binds and starts the I/O threads. Throws
  // keel::Error when a TLS file is unreadable or invalid, or the key does
  // not match the certificate (kInvalidInput), or it cannot bind.
  void start();
  // The listener speaks HTTPS.
  [[nodiscard]] bool tls() const noexcept;
  // Loads config's TLS files as start() would, and throws as it would;
  // binds nothing (keel serve --check).
  static void check_tls(const HttpServerConfig& config);
  // "127.0.0.1:8000" as bound.
  [[nodiscard]] std::string bound_address() const;
  [[nodiscard]] std::uint16_t port() const noexcept;
  // Every answer from now on carries Connection: close, so that clients
  // move to new connections (drain_delay) before accepting stops: closing a
  // keep-alive connection a client is about to reuse would lose its request.
  void end_keep_alive();
  // Stops taking requests: idle connections are closed, and a request
  // that arrives from now on is read whole and refused with 503 +
  // Retry-After and Connection: close. The listener stays open until
  // stop(), so that a client's new connection is answered, not reset.
  // Returns at once.
  void stop_accepting();
  // Connections with a request being read, scored or written.
  [[nodiscard]] std::size_t busy_connections() const noexcept;
  [[nodiscard]] std::size_t connections() const noexcept;
  // True when every I/O loop has run its periodic sweep within `within`
  // (plus the sweep's own period): the loops are not stuck. After start().
  [[nodiscard]] bool responsive(Duration within) const noexcept;
  // Closes everything and joins the I/O threads.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::net
