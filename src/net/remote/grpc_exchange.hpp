#pragma once
// The client side of the OIP gRPC exchange, for RemoteModel's "grpc"
// transport: one channel per endpoint (HTTP/2 multiplexes the calls, so
// there is no pool), the model's metadata and readiness, and an infer call
// bounded by a deadline that can run a hook while it waits (hedging) and be
// cancelled from another thread. Internal to RemoteModel. Thread-safe: one
// GrpcEndpoint serves concurrent calls.

#include "net/remote/http_connection.hpp"  // ExchangeHook
#include "net/remote/oip_wire.hpp"         // ModelShape

#include <keel/core/clock.hpp>
#include <keel/core/result.hpp>
#include <keel/net/status_map.hpp>

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace keel::net::remote {

// What a peer answered to an infer call. `transport` is not ok when the
// call itself failed (cannot connect, the deadline passed, cancelled);
// else `code` is the peer's gRPC status and, when kOk, `decoded` says
// whether the scores could be read (kInvalidInput: the peer reported a
// failed row, named in its message).
struct GrpcAnswer {
  Status transport;
  GrpcCode code = GrpcCode::kOk;
  std::string message;
  Status decoded;
  bool degraded = false;
  std::string reason;
};

class GrpcEndpoint {
 public:
  GrpcEndpoint(const std::string& host, int port);
  ~GrpcEndpoint();
  GrpcEndpoint(const GrpcEndpoint&) = delete;
  GrpcEndpoint& operator=(const GrpcEndpoint&) = delete;

  // ModelMetadata: the input and output widths. Waits for the channel to
  // connect (a replica still starting) until the deadline.
  [[nodiscard]] Result<ModelShape> metadata(const std::string& model, const std::string& version, TimePoint deadline);
  // ModelReady answered ready within the deadline.
  [[nodiscard]] bool ready(const std::string& model, const std::string& version, TimePoint deadline);

  // ModelInfer of n_rows rows given as their raw little-endian bytes (FP64
  // when `fp64`, else FP32; NaN is missing), writing n_rows * width scores
  // to out. `hook` as for
  // HttpConnection::exchange. When `on_start` is given it is handed a
  // function that cancels this call (thread-safe, valid until `on_end`
  // has run); `on_end` runs once the call is over, before its state goes.
  [[nodiscard]] GrpcAnswer infer(const std::string& model, const std::string& version, std::string_view raw,
                                 bool fp64, std::size_t n_rows, std::size_t cols, std::size_t width, std::span<float> out,
                                 TimePoint deadline, ExchangeHook* hook,
                                 const std::function<void(std::function<void()>)>& on_start,
                                 const std::function<void()>& on_end);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::net::remote
