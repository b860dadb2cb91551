#pragma once
// GrpcServer: the OIP `inference.GRPCInferenceService` (ServerLive,
// ServerReady, ModelReady, ServerMetadata, ModelMetadata, ModelInfer) on its
// own port, over the same RestService request path as REST: the same model
// lookup, admission, deadline (the gRPC deadline, capped by max_timeout;
// default_timeout without one), idempotency (`idempotency-key` metadata or
// the request id), and errors mapped by status_map.hpp. RPCs run on gRPC's
// callback API: no thread per call or per connection.
//
// Thread-safe: start(), shutdown() and the accessors from any thread.

#include <keel/core/clock.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace keel {
class MetricsRegistry;
}

namespace keel::net {

class RestService;

struct GrpcServerConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8001;  // 0: a free port
  std::size_t max_message_bytes = 64 * 1024 * 1024;
  // TLS when cert_file is set (PEM files, read at start()); with
  // client_ca_file, clients must present a certificate it signed (mTLS).
  std::string tls_cert_file, tls_key_file, tls_client_ca_file;
};

class GrpcServer {
 public:
  GrpcServer(GrpcServerConfig config, RestService& service, MetricsRegistry& metrics);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // Binds and starts serving. Throws keel::Error when it cannot bind.
  void start();
  // Loads config's TLS files (if any) and checks them as the REST listener
  // does its own: readable PEM, an unencrypted key matching the
  // certificate, a CA list that parses. Throws keel::Error naming the
  // grpc_tls field and the file; binds nothing (keel serve --check).
  static void check_tls(const GrpcServerConfig& config);
  [[nodiscard]] std::string bound_address() const;
  [[nodiscard]] std::uint16_t port() const noexcept;
  // Refuses new RPCs, lets in-flight ones finish within `grace`, then
  // cancels the rest. Blocks until done.
  void shutdown(Duration grace);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::net
