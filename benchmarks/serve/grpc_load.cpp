// keel_grpc_load: an asynchronous gRPC load generator for the OIP
// ModelInfer RPC (one completion-queue thread, C calls kept in flight over
// one channel), the gRPC counterpart of wrk for `keel serve`. Requests
// cycle through the rows of a float32 file (the benchmark's NAME.rows.f32),
// so no cache can hide the work. Prints calls/s, failures and latency
// percentiles.
//
//   keel_grpc_load --target 127.0.0.1:8001 --model clf --features 100
//       --rows-file clf.rows.f32 [--rows 1] [--concurrency 64] [--seconds 10] [--raw]
#include "open_inference_grpc.grpc.pb.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Call {
  grpc::ClientContext ctx;
  inference::ModelInferResponse resp;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<inference::ModelInferResponse>> rpc;
  Clock::time_point start;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "keel_grpc_load: %s\nusage: keel_grpc_load --target HOST:PORT --model NAME --features F "
               "--rows-file FILE [--rows R] [--concurrency C] [--seconds S] [--raw]\n",
               why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string target, model, rows_file;
  long features = 0, rows = 1, concurrency = 64;
  double seconds = 10;
  bool raw = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    if (a == "--target") target = next();
    else if (a == "--model") model = next();
    else if (a == "--rows-file") rows_file = next();
    else if (a == "--features") features = std::stol(next());
    else if (a == "--rows") rows = std::stol(next());
    else if (a == "--concurrency") concurrency = std::stol(next());
    else if (a == "--seconds") seconds = std::stod(next());
    else if (a == "--raw") raw = true;
    else usage(("unknown argument " + a).c_str());
  }
  if (target.empty() || model.empty() || rows_file.empty() || features <= 0 || rows <= 0 || concurrency <= 0)
    usage("--target, --model, --features and --rows-file are required");
  std::ifstream in(rows_file, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t width = static_cast<std::size_t>(features) * sizeof(float);
  const std::size_t available = bytes.size() / width;
  if (available < static_cast<std::size_t>(rows)) usage("the rows file holds fewer rows than --rows");

  // One request per block of `rows` rows, built up front.
  std::vector<inference::ModelInferRequest> requests(available / static_cast<std::size_t>(rows));
  for (std::size_t b = 0; b < requests.size(); ++b) {
    auto& r = requests[b];
    r.set_model_name(model);
    auto* t = r.add_inputs();
    t->set_name("input-0");
    t->set_datatype("FP32");
    t->add_shape(rows);
    t->add_shape(features);
    const char* p = bytes.data() + b * static_cast<std::size_t>(rows) * width;
    if (raw) {
      r.add_raw_input_contents()->assign(p, static_cast<std::size_t>(rows) * width);
    } else {
      auto* c = t->mutable_contents()->mutable_fp32_contents();
      c->Resize(static_cast<int>(rows * features), 0.0f);
      std::memcpy(c->mutable_data(), p, static_cast<std::size_t>(rows) * width);
    }
  }

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  auto stub = inference::GRPCInferenceService::NewStub(channel);
  grpc::CompletionQueue cq;
  std::size_t next_request = 0;
  const auto launch = [&] {
    auto* call = new Call;
    call->start = Clock::now();
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    call->rpc = stub->PrepareAsyncModelInfer(&call->ctx, requests[next_request++ % requests.size()], &cq);
    call->rpc->StartCall();
    call->rpc->Finish(&call->resp, &call->status, call);
  };

  // A short warm-up (connection, server caches of code paths), then the run.
  std::vector<double> latencies_us;
  latencies_us.reserve(1 << 20);
  std::uint64_t ok = 0, failed = 0;
  const auto run = [&](double secs, bool record) {
    const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs));
    long pending = 0;
    for (long c = 0; c < concurrency; ++c, ++pending) launch();
    void* tag = nullptr;
    bool got = false;
    while (pending > 0 && cq.Next(&tag, &got)) {
      auto* call = static_cast<Call*>(tag);
      const auto now = Clock::now();
      --pending;
      if (record) {
        if (got && call->status.ok()) {
          ++ok;
          latencies_us.push_back(std::chrono::duration<double, std::micro>(now - call->start).count());
        } else {
          ++failed;
        }
      }
      delete call;
      if (now < end) {
        launch();
        ++pending;
      }
    }
  };
  run(std::min(1.0, seconds / 5), false);
  const auto t0 = Clock::now();
  run(seconds, true);
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  std::sort(latencies_us.begin(), latencies_us.end());
  const auto pct = [&](double q) {
    return latencies_us.empty() ? 0.0 : latencies_us[std::min(latencies_us.size() - 1,
                                                              static_cast<std::size_t>(q * latencies_us.size()))];
  };
  std::printf("calls/s %.0f rows/s %.0f ok %llu failed %llu p50_us %.0f p99_us %.0f (concurrency %ld, rows %ld, %s)\n",
              static_cast<double>(ok) / elapsed, static_cast<double>(ok * static_cast<std::uint64_t>(rows)) / elapsed,
              static_cast<unsigned long long>(ok), static_cast<unsigned long long>(failed), pct(0.5), pct(0.99),
              concurrency, rows, raw ? "raw" : "fp32_contents");
  return failed == 0 ? 0 : 1;
}
