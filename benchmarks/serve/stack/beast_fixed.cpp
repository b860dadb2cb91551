// Stack comparison: the smallest Boost.Asio/Beast HTTP/1.1 server that
// answers every request with a fixed 128-byte JSON body, one I/O thread,
// keep-alive. Build: g++ -O2 -std=c++20 beast_fixed.cpp -o beast_fixed -pthread
// Run: ./beast_fixed PORT
#include <optional>
#include <utility>  // Boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdlib>
#include <memory>
#include <string>

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

static const std::string kBody(128, 'x');

class Conn : public std::enable_shared_from_this<Conn> {
 public:
  explicit Conn(tcp::socket s) : sock_(std::move(s)) {}
  void read() {
    parser_.emplace();
    parser_->body_limit(1 << 20);
    http::async_read(sock_, buf_, *parser_, [self = shared_from_this()](boost::beast::error_code ec, std::size_t) {
      if (ec) return;
      self->write();
    });
  }
  void write() {
    res_ = {};
    res_.result(http::status::ok);
    res_.version(11);
    res_.set(http::field::content_type, "application/json");
    res_.body() = kBody;
    res_.keep_alive(parser_->get().keep_alive());
    res_.prepare_payload();
    http::async_write(sock_, res_, [self = shared_from_this()](boost::beast::error_code ec, std::size_t) {
      if (!ec) self->read();
    });
  }

 private:
  tcp::socket sock_;
  boost::beast::flat_buffer buf_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
};

static void accept(tcp::acceptor& a) {
  a.async_accept([&a](boost::beast::error_code ec, tcp::socket s) {
    if (!ec) {
      s.set_option(tcp::no_delay(true));
      std::make_shared<Conn>(std::move(s))->read();
    }
    accept(a);
  });
}

int main(int argc, char** argv) {
  asio::io_context io(1);
  tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(std::atoi(argv[1]))});
  accept(a);
  io.run();
}
