#include <keel/net/server/http_server.hpp>

#include <keel/engine/metrics.hpp>
#include <keel/net/oip/codec.hpp>
#include <keel/net/status_map.hpp>

#include "net/server/tls_context.hpp"

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include <openssl/ssl.h>

#include <array>
#include <ctime>
#include <list>
#include <thread>

namespace keel::net {
namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::beast::error_code;
using SteadyClock = std::chrono::steady_clock;

namespace {
constexpr std::array<double, 16> kPhaseBounds{1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4,
                                              5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2, 0.25, 1.0};
constexpr auto kSweep = std::chrono::milliseconds(200);
// Draining, the sweep closes a keep-alive connection that has been idle this
// long, so that its client reconnects while the listener still accepts. A
// connection idle for less is left to its client's next request, which gets
// 503 + Connection: close: closing it under a client that is sending its
// next request at that moment would cut that request off unanswered.
constexpr auto kDrainIdleGrace = std::chrono::milliseconds(100);
// How long a TLS connection the server ends waits for the peer's
// close_notify before the socket is closed anyway.
constexpr auto kTlsShutdownTimeout = std::chrono::seconds(1);
// At most one handshake-failure log line per this period.
constexpr auto kTlsLogPeriod = std::chrono::seconds(1);
// The most plaintext one TLS record carries.
constexpr std::size_t kTlsRecordBytes = SSL3_RT_MAX_PLAIN_LENGTH;

// Header values are copied out of the read buffer (which is compacted).
struct Fields {
  std::string method, target, content_type, idempotency_key, timeout_ms, traceparent, request_id, ihcl, authorization;
  void clear() {
    for (auto* s : {&method, &target, &content_type, &idempotency_key, &timeout_ms, &traceparent, &request_id, &ihcl,
                    &authorization})
      s->clear();
  }
};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  return true;
}

// Beast's parser with callbacks that keep only what the server reads: no
// allocation per header field.
class Parser final : public http::basic_parser<true> {
 public:
  Parser(Fields& f, std::string& body, std::size_t max_body) : f_(f), body_(body), max_body_(max_body) {}

 private:
  void on_request_impl(http::verb, boost::beast::string_view method, boost::beast::string_view target, int,
                       error_code&) override {
    f_.method.assign(method.data(), method.size());
    f_.target.assign(target.data(), target.size());
  }
  void on_response_impl(int, boost::beast::string_view, int, error_code&) override {}
  void on_field_impl(http::field name, boost::beast::string_view name_s, boost::beast::string_view v,
                     error_code&) override {
    const std::string_view value(v.data(), v.size());
    switch (name) {
      case http::field::content_type: f_.content_type = value; return;
      case http::field::authorization: f_.authorization = value; return;
      default: break;
    }
    const std::string_view n(name_s.data(), name_s.size());
    if (iequals(n, "idempotency-key")) f_.idempotency_key = value;
    else if (iequals(n, "keel-timeout-ms")) f_.timeout_ms = value;
    else if (iequals(n, "traceparent")) f_.traceparent = value;
    else if (iequals(n, "x-request-id")) f_.request_id = value;
    else if (iequals(n, "inference-header-content-length")) f_.ihcl = value;
  }
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
    body_.clear();
    // Room for the JSON parser's padding, so the codec parses in place.
    if (length && *length <= max_body_) body_.reserve(static_cast<std::size_t>(*length) + oip::kJsonPadding);
  }
  std::size_t on_body_impl(boost::beast::string_view s, error_code&) override {
    body_.append(s.data(), s.size());
    return s.size();
  }
  void on_chunk_header_impl(std::uint64_t, boost::beast::string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view s, error_code&) override {
    body_.append(s.data(), s.size());
    return s.size();
  }
  void on_finish_impl(error_code&) override {
    if (body_.capacity() < body_.size() + oip::kJsonPadding) body_.reserve(body_.size() + oip::kJsonPadding);
  }

  Fields& f_;
  std::string& body_;
  std::size_t max_body_;
};

struct Worker;

}  // namespace

struct Conn;

struct Reply::State {
  std::shared_ptr<Conn> conn;
  std::atomic<bool> sent{false};
};

struct HttpServer::Impl {
  HttpServerConfig config;
  HttpHandler& handler;
  Counter* bytes_in;
  Counter* bytes_out;
  Counter* shed_connections;
  Counter* shed_draining;
  HistogramMetric* write_phase;
  Counter* tls_failures;
  std::unique_ptr<asio::ssl::context> ssl;  // set when the listener is HTTPS
  std::atomic<std::int64_t> tls_log_next_ns{0};
  std::atomic<std::uint64_t> tls_log_suppressed{0};
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::atomic<std::size_t> connections{0};
  std::atomic<std::size_t> busy{0};
  std::atomic<bool> draining{false};
  std::atomic<bool> no_keep_alive{false};  // answers end their connection
  std::size_t next_worker = 0;
  std::uint16_t bound_port = 0;
  std::vector<std::thread> threads;

  Impl(HttpServerConfig c, HttpHandler& h, MetricsRegistry& m)
      : config(std::move(c)),
        handler(h),
        bytes_in(&m.counter("keel_server_bytes_received_total", "Bytes read from HTTP clients.")),
        bytes_out(&m.counter("keel_server_bytes_sent_total", "Bytes written to HTTP clients.")),
        shed_connections(&m.counter("keel_server_shed_total", "Requests or connections refused, by reason.",
                                    {{"reason", "connections"}})),
        shed_draining(&m.counter("keel_server_shed_total", "Requests or connections refused, by reason.",
                                 {{"reason", "draining"}})),
        write_phase(&m.histogram("keel_server_request_phase_seconds",
                                 "Time per request phase: queue wait, body parse, scoring, response write.",
                                 kPhaseBounds, {{"phase", "write"}})),
        tls_failures(&m.counter("keel_server_tls_handshake_failures_total",
                                "TLS handshakes that failed or timed out (HTTPS listener).")) {
    m.gauge_fn("keel_server_connections", "Open HTTP connections.", {},
               [this] { return static_cast<double>(connections.load(std::memory_order_relaxed)); });
  }
  void accept();
  void load_tls();
  void tls_failed(const std::string& peer, const std::string& why);
};

namespace {

struct Worker {
  asio::io_context io{1};
  asio::steady_timer sweep{io};
  // When the sweep last ran (steady ns): the loop's heartbeat (responsive()).
  std::atomic<std::int64_t> last_sweep_ns{SteadyClock::now().time_since_epoch().count()};
  std::list<std::shared_ptr<Conn>> conns;
  std::string date;  // the Date header, refreshed by the sweep
  void refresh_date() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    date.assign(buf, std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm));
  }
};

// kHandshake: TLS handshake (under header_timeout). kClosing: TLS
// close_notify sent, waiting for the peer's (kTlsShutdownTimeout).
enum class Phase : std::uint8_t { kHandshake, kIdle, kHeader, kBody, kProcessing, kWriting, kClosing, kClosed };

// Phases that hold a drain: a request (or the handshake before one) is
// being read, scored or written.
constexpr bool busy_phase(Phase p) noexcept { return p != Phase::kIdle && p != Phase::kClosing && p != Phase::kClosed; }

}  // namespace

struct Conn : std::enable_shared_from_this<Conn> {
  HttpServer::Impl& srv;
  Worker& worker;
  tcp::socket sock;
  // HTTPS: the TLS layer over sock (declared after it, destroyed before).
  // Null on a plain listener, where every read and write goes to sock.
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls;
  std::list<std::shared_ptr<Conn>>::iterator self_it;
  std::vector<char> in;
  std::size_t begin = 0, end = 0;
  Fields fields;
  std::string body;
  std::optional<Parser> parser;
  Phase phase = Phase::kIdle;
  SteadyClock::time_point deadline;
  SteadyClock::time_point idle_since;  // when the phase last became kIdle
  bool reading = false;
  bool keep_alive = true;
  bool close_after = false;
  std::shared_ptr<Reply::State> pending;
  std::atomic<bool> cancelled{false};
  std::string out_head;
  HttpResponse out;
  SteadyClock::time_point write_start;

  Conn(HttpServer::Impl& s, Worker& w, tcp::socket so) : srv(s), worker(w), sock(std::move(so)) {
    in.resize(8192);
    if (srv.ssl) tls = std::make_unique<asio::ssl::stream<tcp::socket&>>(sock, *srv.ssl);
  }

  void set_phase(Phase p, Duration timeout) {
    const bool was_busy = busy_phase(phase);
    const bool is_busy = busy_phase(p);
    if (was_busy != is_busy) srv.busy.fetch_add(is_busy ? 1 : static_cast<std::size_t>(-1));
    phase = p;
    if (timeout != Duration::max() || p == Phase::kIdle) {
      const SteadyClock::time_point now = SteadyClock::now();
      if (timeout != Duration::max()) deadline = now + timeout;
      if (p == Phase::kIdle) idle_since = now;
    }
  }

  void start() {
    if (tls) {
      // The handshake is the first part of the request header: same bound.
      set_phase(Phase::kHandshake, srv.config.limits.header_timeout);
      tls->async_handshake(asio::ssl::stream_base::server,
                           [self = shared_from_this()](error_code ec) { self->on_handshake(ec); });
      return;
    }
    set_phase(Phase::kIdle, srv.config.limits.idle_timeout);
    do_read();
  }

  std::string peer() const {
    error_code ec;
    const auto ep = sock.remote_endpoint(ec);
    if (ec) return "?";
    const auto a = ep.address().to_string();
    return (ep.address().is_v6() ? "[" + a + "]" : a) + ":" + std::to_string(ep.port());
  }

  void on_handshake(error_code ec) {
    if (phase == Phase::kClosed) return;
    if (ec) {
      srv.tls_failed(peer(), ec.message());
      close();
      return;
    }
    set_phase(Phase::kIdle, srv.config.limits.idle_timeout);
    do_read();
  }

  // Ends the connection: on TLS with a close_notify first, bounded by
  // kTlsShutdownTimeout (the sweep closes it then), and not holding a drain.
  void finish() {
    if (!tls || phase == Phase::kHandshake) {
      close();
      return;
    }
    if (phase == Phase::kClosing || phase == Phase::kClosed) return;
    set_phase(Phase::kClosing, kTlsShutdownTimeout);
    tls->async_shutdown([self = shared_from_this()](error_code) { self->close(); });
  }

  void close() {
    if (phase == Phase::kClosed) return;
    set_phase(Phase::kClosed, Duration::max());
    cancelled.store(true, std::memory_order_relaxed);
    error_code ec;
    sock.shutdown(tcp::socket::shutdown_both, ec);
    sock.close(ec);
    srv.connections.fetch_sub(1, std::memory_order_relaxed);
    worker.conns.erase(self_it);  // may drop the last owner but one: callers hold a shared_ptr
  }

  void do_read() {
    if (reading || phase == Phase::kClosed) return;
    if (end == in.size()) {
      if (begin > 0) {
        std::memmove(in.data(), in.data() + begin, end - begin);
        end -= begin;
        begin = 0;
      } else if (phase == Phase::kProcessing) {
        return;  // a pipelined request waits for this answer; stop reading
      } else {
        in.resize(in.size() * 2);
      }
    }
    reading = true;
    const auto buf = asio::buffer(in.data() + end, in.size() - end);
    auto done = [self = shared_from_this()](error_code ec, std::size_t n) { self->on_read(ec, n); };
    if (tls) tls->async_read_some(buf, std::move(done));
    else sock.async_read_some(buf, std::move(done));
  }

  void on_read(error_code ec, std::size_t n) {
    reading = false;
    if (phase == Phase::kClosed) return;
    if (phase == Phase::kClosing) {  // nothing more is read; a read error ends the wait for close_notify
      if (ec) close();
      return;
    }
    if (ec) {
      // A client gone while its answer is pending cancels it.
      cancelled.store(true, std::memory_order_relaxed);
      if (phase != Phase::kProcessing) close();
      else close_after = true;
      return;
    }
    srv.bytes_in->inc(n);
    end += n;
    if (phase == Phase::kProcessing) {
      do_read();
      return;
    }
    process_input();
  }

  void process_input() {
    while (phase == Phase::kIdle || phase == Phase::kHeader || phase == Phase::kBody) {
      if (begin == end) {
        // Not while a read is pending: it writes at the old end.
        if (begin > 0 && !reading) begin = end = 0;
        do_read();
        return;
      }
      if (phase == Phase::kIdle) {
        fields.clear();
        body.clear();
        parser.emplace(fields, body, srv.config.limits.max_body_bytes);
        parser->eager(true);
        parser->header_limit(static_cast<std::uint32_t>(srv.config.limits.max_header_bytes));
        parser->body_limit(srv.config.limits.max_body_bytes);
        set_phase(Phase::kHeader, srv.config.limits.header_timeout);
      }
      error_code ec;
      const std::size_t used = parser->put(asio::buffer(in.data() + begin, end - begin), ec);
      begin += used;
      if (ec == http::error::need_more) {
        if (phase == Phase::kHeader && parser->is_header_done())
          set_phase(Phase::kBody, srv.config.limits.body_timeout);
        // The header must fit in the buffer to be parsed in one piece.
        if (begin > 0 && end == in.size()) {
          std::memmove(in.data(), in.data() + begin, end - begin);
          end -= begin;
          begin = 0;
        }
        do_read();
        return;
      }
      if (ec) {
        if (ec == http::error::header_limit)
          fail(http_status(HttpLimit::kHeaderTooLarge), "request header larger than " +
                                                             std::to_string(srv.config.limits.max_header_bytes) +
                                                             " bytes");
        else if (ec == http::error::body_limit)
          fail(http_status(HttpLimit::kBodyTooLarge),
               "request body larger than " + std::to_string(srv.config.limits.max_body_bytes) + " bytes");
        else
          fail(http_status(StatusCode::kInvalidInput), "malformed HTTP request: " + ec.message());
        return;
      }
      if (phase == Phase::kHeader && parser->is_header_done()) set_phase(Phase::kBody, srv.config.limits.body_timeout);
      if (parser->is_done()) {
        dispatch();
        return;
      }
    }
  }

  // Answers an error that ends the connection (the stream cannot be
  // trusted past it).
  void fail(int status, const std::string& message) {
    HttpResponse r;
    r.status = status;
    r.body = oip::error_json(message);
    close_after = true;
    set_phase(Phase::kProcessing, Duration::max());
    write(std::move(r));
  }

  void dispatch() {
    keep_alive = parser->keep_alive();
    if (srv.draining.load(std::memory_order_relaxed)) {
      // Draining: a request read after accepting stopped is refused, whole,
      // with a retryable status (a listener closed under a client's new
      // connection would reset it instead).
      srv.shed_draining->inc();
      HttpResponse r;
      r.status = 503;
      r.retry_after_s = 1;
      r.body = oip::error_json("server is shutting down: retry elsewhere");
      close_after = true;
      set_phase(Phase::kProcessing, Duration::max());
      write(std::move(r));
      return;
    }
    set_phase(Phase::kProcessing, Duration::max());
    HttpRequest req;
    req.method = fields.method;
    req.target = fields.target;
    req.content_type = fields.content_type;
    req.idempotency_key = fields.idempotency_key;
    req.timeout_ms = fields.timeout_ms;
    req.traceparent = fields.traceparent;
    req.request_id = fields.request_id;
    req.inference_header_length = fields.ihcl;
    req.authorization = fields.authorization;
    req.body = body;
    req.body_capacity = body.capacity();
    req.received = system_clock().now();
    auto state = std::make_shared<Reply::State>();
    state->conn = shared_from_this();
    pending = state;
    srv.handler.handle(req, Reply(std::move(state)));
    // Not answered yet: watch for the client going away meanwhile.
    if (phase == Phase::kProcessing) do_read();
  }

  void write(HttpResponse&& r) {
    pending.reset();
    if (phase == Phase::kClosed) return;
    if (close_after && cancelled.load(std::memory_order_relaxed)) {
      close();
      return;
    }
    out = std::move(r);
    const bool close_conn = close_after || !keep_alive || srv.no_keep_alive.load(std::memory_order_relaxed);
    close_after = close_conn;
    out_head.clear();
    out_head += "HTTP/1.1 ";
    out_head += std::to_string(out.status);
    out_head.push_back(' ');
    out_head += http_reason(out.status);
    out_head += "\r\nServer: keel\r\nDate: ";
    out_head += worker.date;
    out_head += "\r\nContent-Type: ";
    out_head += out.content_type;
    out_head += "\r\nContent-Length: ";
    out_head += std::to_string(out.body.size());
    if (out.inference_header_length) {
      out_head += "\r\nInference-Header-Content-Length: ";
      out_head += std::to_string(*out.inference_header_length);
    }
    if (out.retry_after_s >= 0) {
      out_head += "\r\nRetry-After: ";
      out_head += std::to_string(out.retry_after_s);
    }
    if (close_conn) out_head += "\r\nConnection: close";
    out_head += "\r\n";
    out_head += out.headers;
    out_head += "\r\n";
    set_phase(Phase::kWriting, srv.config.limits.write_timeout);
    write_start = SteadyClock::now();
    auto self = shared_from_this();
    const auto done = [self](error_code ec, std::size_t n) { self->on_write(ec, n); };
    if (!tls) {  // one gathered write of the two buffers as they are
      const std::array<asio::const_buffer, 2> bufs{asio::buffer(out_head), asio::buffer(out.body)};
      asio::async_write(sock, bufs, done);
      return;
    }
    // Over TLS every write is encrypted on its own, and Asio gathers a
    // sequence of buffers into one write of at most 8 KiB: the header and
    // body as two buffers went out as an 8 KiB record, then the rest. Here
    // the header takes in as much of the body as fills one record (a copy
    // of at most 16 KiB) and goes as one buffer, then the rest of the body
    // as another: an answer takes as few records as its size allows (one,
    // up to 16 KiB).
    const std::size_t lead = std::min(out.body.size(), kTlsRecordBytes - std::min(kTlsRecordBytes, out_head.size()));
    out_head.append(out.body, 0, lead);
    if (lead == out.body.size()) {
      asio::async_write(*tls, asio::buffer(out_head), done);
      return;
    }
    asio::async_write(*tls, asio::buffer(out_head), [self, lead](error_code ec, std::size_t n) {
      if (ec || self->phase == Phase::kClosed) return self->on_write(ec, n);
      asio::async_write(*self->tls, asio::buffer(self->out.body) + lead,
                        [self, n](error_code ec2, std::size_t n2) { self->on_write(ec2, n + n2); });
    });
  }

  void on_write(error_code ec, std::size_t n) {
    if (phase == Phase::kClosed) return;
    srv.bytes_out->inc(n);
    srv.write_phase->observe(SteadyClock::now() - write_start);
    if (ec) {
      close();
      return;
    }
    if (close_after) {
      finish();
      return;
    }
    out.body.clear();
    set_phase(Phase::kIdle, srv.config.limits.idle_timeout);
    process_input();
  }

  // Called by the sweep: enforces the phase's time bound.
  void check(SteadyClock::time_point now) {
    if (phase == Phase::kProcessing || phase == Phase::kClosed) return;
    if (phase == Phase::kIdle && srv.draining.load(std::memory_order_relaxed) && begin == end &&
        now - idle_since >= kDrainIdleGrace) {
      finish();
      return;
    }
    if (now < deadline) return;
    if (phase == Phase::kHandshake) {
      srv.tls_failed(peer(), "handshake not completed in time");
      close();
      return;
    }
    if (phase == Phase::kIdle) {
      finish();  // idle keep-alive
      return;
    }
    if (phase == Phase::kHeader || phase == Phase::kBody) {
      fail(http_status(phase == Phase::kHeader ? HttpLimit::kHeaderTimeout : HttpLimit::kBodyTimeout),
           phase == Phase::kHeader ? "request header not received in time" : "request body not received in time");
      return;
    }
    close();  // a client not reading its answer, or no close_notify in time
  }
};

void Reply::send(HttpResponse&& response) {
  if (!state_ || state_->sent.exchange(true)) return;
  auto conn = std::move(state_->conn);
  state_.reset();
  if (conn->worker.io.get_executor().running_in_this_thread()) {
    conn->write(std::move(response));
    return;
  }
  asio::post(conn->worker.io, [conn, r = std::move(response)]() mutable { conn->write(std::move(r)); });
}

bool Reply::cancelled() const noexcept {
  return state_ && state_->conn && state_->conn->cancelled.load(std::memory_order_relaxed);
}

namespace {

void sweep(Worker& w) {
  w.sweep.expires_after(kSweep);
  w.sweep.async_wait([&w](error_code ec) {
    if (ec) return;
    w.refresh_date();
    const auto now = SteadyClock::now();
    w.last_sweep_ns.store(now.time_since_epoch().count(), std::memory_order_relaxed);
    for (auto it = w.conns.begin(); it != w.conns.end();) {
      auto c = *it++;  // check() may erase this entry
      c->check(now);
    }
    sweep(w);
  });
}

}  // namespace

void HttpServer::Impl::load_tls() {
  ssl = detail::make_tls_context("http_tls", config.tls_cert_file, config.tls_key_file, config.tls_client_ca_file);
}

void HttpServer::check_tls(const HttpServerConfig& c) {
  detail::check_tls_files("http_tls", c.tls_cert_file, c.tls_key_file, c.tls_client_ca_file);
}

void HttpServer::Impl::tls_failed(const std::string& peer, const std::string& why) {
  tls_failures->inc();
  const auto now = SteadyClock::now().time_since_epoch().count();
  auto next = tls_log_next_ns.load(std::memory_order_relaxed);
  const auto period = std::chrono::duration_cast<std::chrono::nanoseconds>(kTlsLogPeriod).count();
  if (now < next || !tls_log_next_ns.compare_exchange_strong(next, now + period, std::memory_order_relaxed)) {
    tls_log_suppressed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::string line = "{\"event\":\"tls_handshake_failed\",\"peer\":";
  oip::append_json_string(line, peer);
  line += ",\"error\":";
  oip::append_json_string(line, why);
  line += ",\"suppressed\":" + std::to_string(tls_log_suppressed.exchange(0, std::memory_order_relaxed)) + "}\n";
  // stdout is fully buffered when not a terminal; flushed by the CLI.
  std::fwrite(line.data(), 1, line.size(), stdout);
}

void HttpServer::Impl::accept() {
  Worker& w = *workers[next_worker];
  next_worker = (next_worker + 1) % workers.size();
  acceptor->async_accept(w.io.get_executor(), [this, &w](error_code ec, tcp::socket sock) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
      accept();
      return;
    }
    if (connections.load(std::memory_order_relaxed) >= config.limits.max_connections) {
      shed_connections->inc();
      if (ssl) {  // no plaintext answer on an HTTPS port, and no handshake to spend on it
        error_code ignore;
        sock.close(ignore);
        accept();
        return;
      }
      static constexpr std::string_view kFull =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
          "Connection: close\r\nContent-Length: 39\r\n\r\n{\"error\":\"too many open connections\"}\n";
      error_code ignore;
      sock.non_blocking(true, ignore);
      sock.write_some(asio::buffer(kFull.data(), kFull.size()), ignore);
      sock.close(ignore);
      accept();
      return;
    }
    connections.fetch_add(1, std::memory_order_relaxed);
    error_code ignore;
    sock.set_option(tcp::no_delay(true), ignore);
    asio::post(w.io, [this, &w, s = std::move(sock)]() mutable {
      auto c = std::make_shared<Conn>(*this, w, std::move(s));
      w.conns.push_front(c);
      c->self_it = w.conns.begin();
      c->start();
    });
    accept();
  });
}

HttpServer::HttpServer(HttpServerConfig config, HttpHandler& handler, MetricsRegistry& metrics)
    : impl_(std::make_unique<Impl>(std::move(config), handler, metrics)) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  auto& im = *impl_;
  im.load_tls();  // before binding: a bad certificate fails the start
  const unsigned n = std::max(1u, im.config.io_threads);
  for (unsigned i = 0; i < n; ++i) {
    im.workers.push_back(std::make_unique<Worker>());
    im.workers.back()->refresh_date();
  }
  error_code ec;
  const auto addr = asio::ip::make_address(im.config.host, ec);
  if (ec) throw Error(StatusCode::kInvalidInput, "host '" + im.config.host + "': " + ec.message());
  const tcp::endpoint ep(addr, im.config.port);
  im.acceptor = std::make_unique<tcp::acceptor>(im.workers[0]->io);
  im.acceptor->open(ep.protocol(), ec);
  if (!ec) im.acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) im.acceptor->bind(ep, ec);
  if (!ec) im.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw Error(StatusCode::kUnavailable,
                "cannot listen on " + im.config.host + ":" + std::to_string(im.config.port) + ": " + ec.message());
  im.bound_port = im.acceptor->local_endpoint().port();
  im.accept();
  for (auto& w : im.workers) {
    sweep(*w);
    im.threads.emplace_back([&w = *w] { w.io.run(); });
  }
}

std::string HttpServer::bound_address() const {
  const auto& h = impl_->config.host;
  return (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + std::to_string(impl_->bound_port);
}

std::uint16_t HttpServer::port() const noexcept { return impl_->bound_port; }

bool HttpServer::tls() const noexcept { return impl_->ssl != nullptr; }

void HttpServer::end_keep_alive() { impl_->no_keep_alive.store(true); }

void HttpServer::stop_accepting() {
  auto& im = *impl_;
  im.no_keep_alive.store(true);
  im.draining.store(true);
}

std::size_t HttpServer::busy_connections() const noexcept { return impl_->busy.load(); }
std::size_t HttpServer::connections() const noexcept { return impl_->connections.load(); }

bool HttpServer::responsive(Duration within) const noexcept {
  if (impl_->workers.empty()) return false;
  const auto now = SteadyClock::now().time_since_epoch().count();
  const auto bound = std::chrono::duration_cast<std::chrono::nanoseconds>(within + kSweep).count();
  for (const auto& w : impl_->workers)
    if (now - w->last_sweep_ns.load(std::memory_order_relaxed) > bound) return false;
  return true;
}

void HttpServer::stop() {
  auto& im = *impl_;
  if (im.threads.empty()) return;
  for (auto& w : im.workers) {
    asio::post(w->io, [&w = *w, &im] {
      if (w.io.get_executor().running_in_this_thread() && im.acceptor && &w == im.workers[0].get()) {
        error_code ec;
        im.acceptor->close(ec);
      }
      w.sweep.cancel();
      while (!w.conns.empty()) {
        auto c = w.conns.front();
        c->close();
      }
      w.io.stop();
    });
  }
  for (auto& t : im.threads) t.join();
  im.threads.clear();
}

}  // namespace keel::net
