// RemoteModel over loopback against a direct in-process call of the same
// model file, side by side in one run: one `keel serve` replica started here
// on a free loopback port (tests/net/support), one row per call, over REST
// and over gRPC. Each
// benchmark also reports the per-call p50 and p99 (counters p50_us, p99_us).
//
//   build/release/benchmarks/bench_remote --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//   (KEEL_BENCH_MODEL=path overrides the model: default tests/data/xgboost/depth12_200trees.json)

#include <keel/model/loaders.hpp>
#include <keel/net/remote/remote_model.hpp>

#include "call_times.hpp"
#include "net/support/keel_serve_process.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <random>

using namespace std::chrono_literals;

namespace {

keel::ModelPtr g_local;
std::unique_ptr<keel::net::RemoteModel> g_remote;
std::unique_ptr<keel::net::RemoteModel> g_remote_grpc;

std::vector<float> rows(std::size_t n, std::size_t features) {
  std::mt19937 g(11);
  std::uniform_real_distribution<float> u(-3.f, 3.f);
  std::vector<float> v(n * features);
  for (auto& x : v) x = u(g);
  return v;
}

void run(benchmark::State& state, const keel::Model& m) {
  const std::size_t nf = m.info().num_features;
  const auto x = rows(256, nf);
  std::vector<float> out(m.info().num_outputs);
  keel::bench::CallTimes t;
  std::size_t i = 0;
  for (auto _ : state) {
    keel::PredictOptions po;
    po.deadline = keel::Deadline::after(1s);
    t.start();
    const auto s = m.predict_row(std::span(x).subspan((i++ % 256) * nf, nf), out, po);
    t.stop();
    if (!s) state.SkipWithError(s.to_string().c_str());
  }
  t.report(state);
}

void BM_Direct_InProcess(benchmark::State& state) { run(state, *g_local); }
void BM_RemoteModel_Loopback(benchmark::State& state) { run(state, *g_remote); }
void BM_RemoteModel_LoopbackGrpc(benchmark::State& state) { run(state, *g_remote_grpc); }

}  // namespace

BENCHMARK(BM_Direct_InProcess)->UseRealTime();
BENCHMARK(BM_RemoteModel_Loopback)->UseRealTime();
BENCHMARK(BM_RemoteModel_LoopbackGrpc)->UseRealTime();

int main(int argc, char** argv) {
  const char* env = std::getenv("KEEL_BENCH_MODEL");
  const std::string file = env && *env ? env : KEEL_SOURCE_DIR "/tests/data/xgboost/depth12_200trees.json";
  auto local = keel::load_model(file);
  if (!local) {
    std::fprintf(stderr, "%s: %s\n", file.c_str(), local.status().to_string().c_str());
    return 1;
  }
  g_local = *local;
  keel::test::KeelServeOptions so;
  so.keel_binary = keel::test::keel_binary(KEEL_BINARY_DIR);
  so.model_file = file;
  const int grpc_port = keel::test::free_port();
  so.extra = {"--grpc-port", std::to_string(grpc_port)};
  keel::test::KeelServe replica(so);  // stopped by PID at exit
  keel::net::RemoteModelOptions ro;
  ro.model = "m";
  ro.endpoints = {keel::net::RemoteEndpoint{"127.0.0.1", replica.port(), "", false}};
  g_remote = std::make_unique<keel::net::RemoteModel>(ro);
  ro.transport = keel::net::RemoteTransport::kGrpc;
  ro.endpoints[0].port = grpc_port;
  g_remote_grpc = std::make_unique<keel::net::RemoteModel>(ro);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  g_remote.reset();
  g_remote_grpc.reset();
  return 0;
}
