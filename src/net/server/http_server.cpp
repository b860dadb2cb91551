#include <keel/net/server/http_server.hpp>

#include <keel/engine/metrics.hpp>
#include <keel/net/oip/codec.hpp>
#include <keel/net/status_map.hpp>

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <boost/asio.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

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
                                 kPhaseBounds, {{"phase", "write"}})) {
    m.gauge_fn("keel_server_connections", "Open HTTP connections.", {},
               [this] { return static_cast<double>(connections.load(std::memory_order_relaxed)); });
  }
  void accept();
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

enum class Phase : std::uint8_t { kIdle, kHeader, kBody, kProcessing, kWriting, kClosed };

}  // namespace

struct Conn : std::enable_shared_from_this<Conn> {
  HttpServer::Impl& srv;
  Worker& worker;
  tcp::socket sock;
  std::list<std::shared_ptr<Conn>>::iterator self_it;
  std::vector<char> in;
  std::size_t begin = 0, end = 0;
  Fields fields;
  std::string body;
  std::optional<Parser> parser;
  Phase phase = Phase::kIdle;
  SteadyClock::time_point deadline;
  bool reading = false;
  bool keep_alive = true;
  bool close_after = false;
  std::shared_ptr<Reply::State> pending;
  std::atomic<bool> cancelled{false};
  std::string out_head;
  HttpResponse out;
  SteadyClock::time_point write_start;

  Conn(HttpServer::Impl& s, Worker& w, tcp::socket so) : srv(s), worker(w), sock(std::move(so)) { in.resize(8192); }

  void set_phase(Phase p, Duration timeout) {
    const bool was_busy = phase != Phase::kIdle && phase != Phase::kClosed;
    const bool is_busy = p != Phase::kIdle && p != Phase::kClosed;
    if (was_busy != is_busy) srv.busy.fetch_add(is_busy ? 1 : static_cast<std::size_t>(-1));
    phase = p;
    if (timeout != Duration::max()) deadline = SteadyClock::now() + timeout;
  }

  void start() {
    set_phase(Phase::kIdle, srv.config.limits.idle_timeout);
    do_read();
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
    sock.async_read_some(asio::buffer(in.data() + end, in.size() - end),
                         [self = shared_from_this()](error_code ec, std::size_t n) { self->on_read(ec, n); });
  }

  void on_read(error_code ec, std::size_t n) {
    reading = false;
    if (phase == Phase::kClosed) return;
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
    while (phase != Phase::kClosed && phase != Phase::kProcessing && phase != Phase::kWriting) {
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
    const std::array<asio::const_buffer, 2> bufs{asio::buffer(out_head), asio::buffer(out.body)};
    asio::async_write(sock, bufs, [self = shared_from_this()](error_code ec, std::size_t n) { self->on_write(ec, n); });
  }

  void on_write(error_code ec, std::size_t n) {
    if (phase == Phase::kClosed) return;
    srv.bytes_out->inc(n);
    srv.write_phase->observe(SteadyClock::now() - write_start);
    if (ec || close_after) {
      close();
      return;
    }
    out.body.clear();
    set_phase(Phase::kIdle, srv.config.limits.idle_timeout);
    process_input();
  }

  // Called by the sweep: enforces the phase's time bound.
  void check(SteadyClock::time_point now) {
    if (phase == Phase::kProcessing || phase == Phase::kClosed) return;
    if (phase == Phase::kIdle && srv.draining.load(std::memory_order_relaxed) && begin == end) {
      close();
      return;
    }
    if (now < deadline) return;
    if (phase == Phase::kHeader || phase == Phase::kBody) {
      fail(http_status(phase == Phase::kHeader ? HttpLimit::kHeaderTimeout : HttpLimit::kBodyTimeout),
           phase == Phase::kHeader ? "request header not received in time" : "request body not received in time");
      return;
    }
    close();  // idle keep-alive, or a client not reading its answer
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
