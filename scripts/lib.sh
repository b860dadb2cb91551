# Shared by scripts/demo and scripts/test. Sourced, not run.
set -euo pipefail
KEEL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KEEL_ROOT
JOBS="${JOBS:-$(nproc)}"
# ccache keys on paths relative to the checkout, so clones and worktrees share hits.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$KEEL_ROOT}"

# Debian packages the library, CLI and demo need.
KEEL_BUILD_PACKAGES=(cmake ninja-build g++ ccache pkg-config libeigen3-dev xtensor-dev libfmt-dev
  nlohmann-json3-dev libcli11-dev libxxhash-dev
  libboost1.74-dev libssl-dev libsimdjson-dev libgrpc++-dev libprotobuf-dev protobuf-compiler-grpc
  libhiredis-dev)
# What the full test suite adds: Catch2 v2, Google Benchmark + XGBoost's C
# API (benchmarks), clang-14 + its runtime (libFuzzer), promtool (metrics
# format check).
# keel::net's tests add real peers: Redis and Sentinel, HAProxy and nginx,
# wrk and curl, and Python clients that are not Keel's own.
KEEL_TEST_PACKAGES=(catch2 python3 libbenchmark-dev libxgboost-dev clang-14 libclang-rt-14-dev prometheus
  redis-server redis-sentinel haproxy nginx wrk curl python3-requests python3-httpx python3-grpcio)
# tests/deploy runs npm ci (Kubernetes schemas, PromQL grammar). This
# machine kind ships Node 20 with npm outside dpkg; only where npm is
# missing do Debian's packages bring it (they conflict with that Node).
if ! command -v npm >/dev/null 2>&1; then KEEL_TEST_PACKAGES+=(nodejs npm); fi

log() { printf '\n==> %s\n' "$*"; }

# Installs whatever of the given Debian packages is missing (as root), or
# prints the exact command to run and stops.
ensure_packages() {
  local missing=()
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "all ${#} Debian packages present"
    return 0
  fi
  if [ "$(id -u)" -eq 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "Missing Debian packages. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
}

# configure_build PRESET [targets...]
configure_build() {
  local preset="$1"; shift
  log "configure + build: preset $preset"
  cmake --preset "$preset" >/dev/null
  if [ $# -gt 0 ]; then
    cmake --build --preset "$preset" -j "$JOBS" --target "$@"
  else
    cmake --build --preset "$preset" -j "$JOBS"
  fi
}
