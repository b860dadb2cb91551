#include "net/remote/grpc_exchange.hpp"

#include "open_inference_grpc.grpc.pb.h"

#include <grpcpp/grpcpp.h>

#include <cstring>

namespace keel::net::remote {

namespace {

// keel's TimePoint (its own clock) as the wall-clock time gRPC wants.
std::chrono::system_clock::time_point wall(TimePoint t) {
  const Duration left = t - system_clock().now();
  return std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(left);
}

std::size_t last_dim(const google::protobuf::RepeatedField<std::int64_t>& shape) {
  return shape.empty() || shape[shape.size() - 1] < 0 ? 0 : static_cast<std::size_t>(shape[shape.size() - 1]);
}

}  // namespace

struct GrpcEndpoint::Impl {
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub;
};

GrpcEndpoint::GrpcEndpoint(const std::string& host, int port) : impl_(std::make_unique<Impl>()) {
  impl_->address = host + ":" + std::to_string(port);
  grpc::ChannelArguments args;
  // A peer that is gone is tried again soon, not after gRPC's default
  // reconnect backoff of up to 120 s: the balancer decides whom to avoid.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetMaxReceiveMessageSize(64 << 20);
  impl_->channel = grpc::CreateCustomChannel(impl_->address, grpc::InsecureChannelCredentials(), args);
  impl_->stub = inference::GRPCInferenceService::NewStub(impl_->channel);
}

GrpcEndpoint::~GrpcEndpoint() = default;

Result<ModelShape> GrpcEndpoint::metadata(const std::string& model, const std::string& version, TimePoint deadline) {
  grpc::ClientContext ctx;
  ctx.set_deadline(wall(deadline));
  // A replica still starting (its port not yet bound) is waited for, within
  // the deadline, rather than refused at once.
  ctx.set_wait_for_ready(true);
  inference::ModelMetadataRequest req;
  req.set_name(model);
  req.set_version(version);
  inference::ModelMetadataResponse resp;
  const grpc::Status st = impl_->stub->ModelMetadata(&ctx, req, &resp);
  if (!st.ok())
    return Status(from_grpc_code(static_cast<GrpcCode>(st.error_code())),
                  "gRPC ModelMetadata: " + std::to_string(st.error_code()) + " " + st.error_message());
  if (resp.inputs_size() < 1 || resp.outputs_size() < 1)
    return unavailable("gRPC ModelMetadata: no inputs or outputs in the answer");
  ModelShape m;
  m.name = resp.name();
  m.platform = resp.platform();
  m.features = last_dim(resp.inputs(0).shape());
  m.outputs = last_dim(resp.outputs(0).shape());
  if (m.features == 0 || m.outputs == 0) return unavailable("gRPC ModelMetadata: no fixed feature or output count");
  return m;
}

bool GrpcEndpoint::ready(const std::string& model, const std::string& version, TimePoint deadline) {
  grpc::ClientContext ctx;
  ctx.set_deadline(wall(deadline));
  inference::ModelReadyRequest req;
  req.set_name(model);
  req.set_version(version);
  inference::ModelReadyResponse resp;
  return impl_->stub->ModelReady(&ctx, req, &resp).ok() && resp.ready();
}

GrpcAnswer GrpcEndpoint::infer(const std::string& model, const std::string& version, std::string_view raw_rows,
                               bool fp64, std::size_t n_rows, std::size_t cols, std::size_t width, std::span<float> out,
                               TimePoint deadline, ExchangeHook* hook,
                               const std::function<void(std::function<void()>)>& on_start,
                               const std::function<void()>& on_end) {
  GrpcAnswer a;
  inference::ModelInferRequest req;
  req.set_model_name(model);
  req.set_model_version(version);
  auto* in = req.add_inputs();
  in->set_name("input-0");
  in->set_datatype(fp64 ? "FP64" : "FP32");
  in->add_shape(static_cast<std::int64_t>(n_rows));
  in->add_shape(static_cast<std::int64_t>(cols));
  req.add_raw_input_contents()->assign(raw_rows.data(), raw_rows.size());
  (*req.mutable_parameters())["binary_data_output"].set_bool_param(true);

  grpc::ClientContext ctx;
  ctx.set_deadline(wall(deadline));
  grpc::CompletionQueue cq;
  inference::ModelInferResponse resp;
  grpc::Status st;
  auto call = impl_->stub->PrepareAsyncModelInfer(&ctx, req, &cq);
  call->StartCall();
  call->Finish(&resp, &st, reinterpret_cast<void*>(1));
  if (on_start) on_start([&ctx] { ctx.TryCancel(); });
  bool hooked = hook && hook->fire && hook->at < deadline;
  for (;;) {
    void* tag = nullptr;
    bool ok = false;
    // gRPC ends the call itself at its deadline; the margin only bounds a wait that should not happen.
    const TimePoint until = hooked ? hook->at : deadline + std::chrono::seconds(1);
    const auto r = cq.AsyncNext(&tag, &ok, wall(until));
    if (r == grpc::CompletionQueue::GOT_EVENT) break;
    if (r == grpc::CompletionQueue::TIMEOUT && hooked) {
      hooked = false;
      hook->fire();
      continue;
    }
    if (r == grpc::CompletionQueue::TIMEOUT) {  // the call outlived its deadline by the margin: cancel and wait for it
      ctx.TryCancel();
      continue;
    }
    a.transport = unavailable("gRPC completion queue shut down");
    break;
  }
  if (on_end) on_end();
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
  if (!a.transport) return a;

  const std::string where = "gRPC " + impl_->address + ": ";
  switch (st.error_code()) {
    case grpc::StatusCode::OK:
      break;
    case grpc::StatusCode::CANCELLED:
      a.transport = Status(StatusCode::kCancelled, "another attempt answered first (hedge)");
      return a;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      a.transport = deadline_exceeded(where + "no answer within the deadline");
      return a;
    default:  // UNAVAILABLE is the transport's or the peer's: a failure of the endpoint either way
      a.code = static_cast<GrpcCode>(st.error_code());
      a.message = where + "status " + std::to_string(st.error_code()) + ": " + st.error_message();
      return a;
  }
  const auto& ps = resp.parameters();
  if (auto it = ps.find("degraded"); it != ps.end()) a.degraded = it->second.bool_param();
  if (auto it = ps.find("degraded_reason"); it != ps.end()) a.reason = it->second.string_param();
  if (auto it = ps.find("row_errors"); it != ps.end()) {
    a.decoded = invalid_input(where + "failed rows: " + it->second.string_param().substr(0, 400));
    return a;
  }
  const std::size_t n = n_rows * width;
  if (resp.raw_output_contents_size() >= 1) {
    const std::string& raw = resp.raw_output_contents(0);
    if (raw.size() != n * sizeof(float)) {
      a.decoded = unavailable(where + "raw_output_contents[0] holds " + std::to_string(raw.size()) + " bytes, not " +
                              std::to_string(n * sizeof(float)));
      return a;
    }
    std::memcpy(out.data(), raw.data(), raw.size());
  } else if (resp.outputs_size() >= 1 && resp.outputs(0).has_contents() &&
             static_cast<std::size_t>(resp.outputs(0).contents().fp32_contents_size()) == n) {
    const auto& c = resp.outputs(0).contents().fp32_contents();
    std::copy(c.begin(), c.end(), out.begin());
  } else {
    a.decoded = unavailable(where + "the answer has no FP32 scores of " + std::to_string(n) + " values");
  }
  return a;
}

}  // namespace keel::net::remote
