#include <keel/net/grpc/grpc_server.hpp>

#include <keel/engine/metrics.hpp>
#include <keel/net/server/rest_service.hpp>
#include <keel/net/status_map.hpp>
#include <keel/version.hpp>

#include "net/grpc/grpc_codec.hpp"
#include "net/server/tls_context.hpp"
#include "open_inference_grpc.grpc.pb.h"

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <iterator>
#include <map>
#include <mutex>

namespace keel::net {
namespace {

std::string_view metadata(const ::grpc::CallbackServerContext& ctx, std::string_view key) {
  const auto& md = ctx.client_metadata();
  const auto it = md.find(::grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return {};
  return {it->second.data(), it->second.size()};
}

std::string read_pem(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(StatusCode::kInvalidInput, std::string("grpc_tls.") + what + ": cannot read " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::shared_ptr<::grpc::ServerCredentials> credentials(const GrpcServerConfig& c) {
  if (c.tls_cert_file.empty()) {
    if (!c.tls_key_file.empty() || !c.tls_client_ca_file.empty())
      throw Error(StatusCode::kInvalidInput, "grpc_tls: key_file and client_ca_file need cert_file");
    return ::grpc::InsecureServerCredentials();
  }
  if (c.tls_key_file.empty()) throw Error(StatusCode::kInvalidInput, "grpc_tls.key_file: missing");
  ::grpc::SslServerCredentialsOptions o(c.tls_client_ca_file.empty()
                                            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  o.pem_key_cert_pairs.push_back({read_pem(c.tls_key_file, "key_file"), read_pem(c.tls_cert_file, "cert_file")});
  if (!c.tls_client_ca_file.empty()) o.pem_root_certs = read_pem(c.tls_client_ca_file, "client_ca_file");
  return ::grpc::SslServerCredentials(o);
}

}  // namespace

struct GrpcServer::Impl final : inference::GRPCInferenceService::CallbackService {
  GrpcServerConfig config;
  RestService& service;
  MetricsRegistry& metrics;
  std::unique_ptr<::grpc::Server> server;
  int bound_port = 0;
  std::mutex counters_mu;
  std::map<std::pair<int, int>, Counter*> counters;  // (rpc, code)

  enum Rpc : int { kLive, kReady, kModelReady, kServerMetadata, kModelMetadata, kInfer };
  static constexpr std::array<std::string_view, 6> kRpcNames{"ServerLive",     "ServerReady",   "ModelReady",
                                                             "ServerMetadata", "ModelMetadata", "ModelInfer"};

  Impl(GrpcServerConfig c, RestService& s, MetricsRegistry& m) : config(std::move(c)), service(s), metrics(m) {}

  // Counts and logs one finished RPC, then finishes it.
  ::grpc::ServerUnaryReactor* finish(::grpc::CallbackServerContext* ctx, Rpc rpc, const Status& s,
                                     std::string_view model, TimePoint received, std::size_t bytes_in,
                                     std::size_t bytes_out, ::grpc::ServerUnaryReactor* reactor = nullptr) {
    return finish(ctx, rpc, grpc_code(s), s.message(), model, received, bytes_in, bytes_out, reactor);
  }
  ::grpc::ServerUnaryReactor* finish(::grpc::CallbackServerContext* ctx, Rpc rpc, GrpcCode grpc, std::string message,
                                     std::string_view model, TimePoint received, std::size_t bytes_in,
                                     std::size_t bytes_out, ::grpc::ServerUnaryReactor* reactor) {
    const int code = static_cast<int>(grpc);
    {
      std::lock_guard lock(counters_mu);
      Counter*& c = counters[{rpc, code}];
      if (!c)
        c = &metrics.counter("keel_grpc_requests_total", "gRPC calls by method and status code.",
                             {{"method", std::string(kRpcNames[rpc])}, {"code", std::to_string(code)}});
      c->inc();
    }
    if (rpc == kInfer || grpc != GrpcCode::kOk) {
      std::string_view request_id = metadata(*ctx, "x-request-id");
      service.log_access({.protocol = "grpc", .method = kRpcNames[rpc], .path = "/inference.GRPCInferenceService",
                          .status = code, .request_id = request_id, .traceparent = metadata(*ctx, "traceparent"),
                          .model = model, .bytes_in = bytes_in, .bytes_out = bytes_out, .received = received});
    }
    if (!reactor) reactor = ctx->DefaultReactor();
    reactor->Finish(grpc == GrpcCode::kOk ? ::grpc::Status::OK
                                          : ::grpc::Status(static_cast<::grpc::StatusCode>(grpc), std::move(message)));
    return reactor;
  }

  ::grpc::ServerUnaryReactor* ServerLive(::grpc::CallbackServerContext* ctx, const inference::ServerLiveRequest*,
                                         inference::ServerLiveResponse* resp) override {
    resp->set_live(true);
    return finish(ctx, kLive, {}, {}, system_clock().now(), 0, 0);
  }

  ::grpc::ServerUnaryReactor* ServerReady(::grpc::CallbackServerContext* ctx, const inference::ServerReadyRequest*,
                                          inference::ServerReadyResponse* resp) override {
    resp->set_ready(service.ready());
    return finish(ctx, kReady, {}, {}, system_clock().now(), 0, 0);
  }

  ::grpc::ServerUnaryReactor* ModelReady(::grpc::CallbackServerContext* ctx, const inference::ModelReadyRequest* req,
                                         inference::ModelReadyResponse* resp) override {
    auto m = service.lookup(req->name(), req->version());
    if (m) resp->set_ready(service.ready(**m));
    return finish(ctx, kModelReady, m.status(), req->name(), system_clock().now(), 0, 0);
  }

  ::grpc::ServerUnaryReactor* ServerMetadata(::grpc::CallbackServerContext* ctx,
                                             const inference::ServerMetadataRequest*,
                                             inference::ServerMetadataResponse* resp) override {
    resp->set_name("keel");
    resp->set_version(std::string(keel::version()));
    resp->add_extensions("binary_tensor_data");
    resp->add_extensions("statistics");
    return finish(ctx, kServerMetadata, {}, {}, system_clock().now(), 0, 0);
  }

  ::grpc::ServerUnaryReactor* ModelMetadata(::grpc::CallbackServerContext* ctx,
                                            const inference::ModelMetadataRequest* req,
                                            inference::ModelMetadataResponse* resp) override {
    auto m = service.lookup(req->name(), req->version());
    if (m) {
      const ServedModel& sm = **m;
      resp->set_name(sm.name);
      for (const ServedModel* v : service.versions(sm.name)) resp->add_versions(v->version);
      resp->set_platform("keel");
      auto* in = resp->add_inputs();
      in->set_name("input-0");
      in->set_datatype("FP32");
      in->add_shape(-1);
      in->add_shape(static_cast<std::int64_t>(sm.features));
      auto* out = resp->add_outputs();
      out->set_name(std::string(oip::kScoresOutput));
      out->set_datatype("FP32");
      out->add_shape(-1);
      out->add_shape(static_cast<std::int64_t>(sm.width));
    }
    return finish(ctx, kModelMetadata, m.status(), req->name(), system_clock().now(), 0, 0);
  }

  // Decoded here, scored through RestService::infer (the scoring pool);
  // the reactor finishes from the thread that scored.
  ::grpc::ServerUnaryReactor* ModelInfer(::grpc::CallbackServerContext* ctx, const inference::ModelInferRequest* req,
                                         inference::ModelInferResponse* resp) override {
    const TimePoint received = system_clock().now();
    auto* reactor = ctx->DefaultReactor();
    const auto fail = [&](const Status& s) {
      return finish(ctx, kInfer, s, req->model_name(), received, req->ByteSizeLong(), 0, reactor);
    };
    if (const auto denied = service.authorize(metadata(*ctx, "authorization"), false))
      return finish(ctx, kInfer, grpc_code(*denied), "missing or wrong bearer token", req->model_name(), received,
                    req->ByteSizeLong(), 0, reactor);
    auto m = service.lookup(req->model_name(), req->model_version());
    if (!m) return fail(m.status());
    auto call = std::make_shared<InferCall>();
    if (Status s = grpc_oip::decode(*req, call->request); !s) return fail(s);
    // The gRPC deadline (system clock) as a steady-clock deadline.
    std::optional<Duration> requested;
    if (const auto d = ctx->deadline(); d != std::chrono::system_clock::time_point::max())
      requested = std::max<Duration>(Duration::zero(), d - std::chrono::system_clock::now());
    call->model = (*m)->name;
    call->version = (*m)->version;
    const std::string_view key = metadata(*ctx, "idempotency-key");
    call->idempotency_key = key.empty() ? std::string_view(call->request.id) : key;
    call->deadline = service.deadline(requested, received);
    call->cancelled = [ctx] { return ctx->IsCancelled(); };
    const bool raw = grpc_oip::wants_raw(*req, call->request);
    service.infer(call, [this, ctx, req, resp, reactor, call, raw, received](Status s) {
      if (s) grpc_oip::encode(call->result, call->request, raw, *resp);
      finish(ctx, kInfer, s, req->model_name(), received, req->ByteSizeLong(), s ? resp->ByteSizeLong() : 0, reactor);
    });
    return reactor;
  }
};

GrpcServer::GrpcServer(GrpcServerConfig config, RestService& service, MetricsRegistry& metrics)
    : impl_(std::make_unique<Impl>(std::move(config), service, metrics)) {}

GrpcServer::~GrpcServer() {
  if (impl_->server) shutdown(Duration::zero());
}

void GrpcServer::start() {
  auto& im = *impl_;
  check_tls(im.config);  // a bad grpc_tls file is named here, not as gRPC's "cannot bind"
  const std::string host = im.config.host.find(':') != std::string::npos ? "[" + im.config.host + "]" : im.config.host;
  ::grpc::ServerBuilder builder;
  builder.AddListeningPort(host + ":" + std::to_string(im.config.port), credentials(im.config), &im.bound_port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<std::size_t>(im.config.max_message_bytes, INT32_MAX)));
  builder.RegisterService(&im);
  im.server = builder.BuildAndStart();
  if (!im.server || im.bound_port == 0)
    throw Error(StatusCode::kUnavailable, "gRPC: cannot bind " + host + ":" + std::to_string(im.config.port));
}

void GrpcServer::check_tls(const GrpcServerConfig& c) {
  detail::check_tls_files("grpc_tls", c.tls_cert_file, c.tls_key_file, c.tls_client_ca_file);
}

std::string GrpcServer::bound_address() const {
  const auto& h = impl_->config.host;
  return (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + std::to_string(impl_->bound_port);
}

std::uint16_t GrpcServer::port() const noexcept { return static_cast<std::uint16_t>(impl_->bound_port); }

void GrpcServer::shutdown(Duration grace) {
  if (!impl_->server) return;
  impl_->server->Shutdown(std::chrono::system_clock::now() +
                          std::chrono::duration_cast<std::chrono::system_clock::duration>(grace));
  impl_->server->Wait();
  impl_->server.reset();
}

}  // namespace keel::net
