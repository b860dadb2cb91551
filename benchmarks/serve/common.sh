# Shared by idle_loris.sh and binary_batch.sh (sourced): defaults, the
# common flags, the tools check, a free loopback port and a started server.

HERE=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SHARED=${KEEL_SHARED:-$ROOT/../shared}
KEEL=$ROOT/build/release/keel
MODEL=$SHARED/bench/serve/models/clf_d8_t500_f100.model.json
ROWS=$SHARED/bench/serve/models/clf_d8_t500_f100.rows.f32
PY=/usr/bin/python3
REPS=3
DURATION=5
EXTRA=()  # the flags common_flags does not know, for the script to read

# common_flags "$@": --keel --model --rows --reps --duration --conns, -h.
common_flags() {
    while (($#)); do
        case $1 in
            --keel) KEEL=$2; shift 2 ;;
            --model) MODEL=$2; shift 2 ;;
            --rows) ROWS=$2; shift 2 ;;
            --reps) REPS=$2; shift 2 ;;
            --duration) DURATION=$2; shift 2 ;;
            --conns) CONNS=$2; shift 2 ;;
            -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
            *) EXTRA+=("$1"); shift ;;
        esac
    done
}

need_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$(basename "$0"): $tool not found" >&2; exit 2; }
    done
}

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

SERVE_ARGS=()  # what start_serve serves; empty: the model as "clf"
# start_serve PORT LOG [keel serve flags...]: starts keel serve on 127.0.0.1
# with SERVE_ARGS, sets SERVER_PID, waits until it is ready.
start_serve() {
    local port=$1 log=$2
    shift 2
    local what=("${SERVE_ARGS[@]}")
    ((${#what[@]})) || what=(--model clf="$MODEL")
    "$KEEL" serve --host 127.0.0.1 --http-port "$port" --grpc-port -1 "${what[@]}" "$@" >"$log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "$(basename "$0"): keel serve did not become ready:" >&2
    cat "$log" >&2
    exit 1
}

SERVER_PID=
HOLDER_PID=
# make_work NAME: WORK, a scratch folder removed at exit together with the
# server and holder this script started.
make_work() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/keel-$1.XXXXXX")
    trap cleanup EXIT
}
cleanup() {
    [[ -n $HOLDER_PID ]] && kill "$HOLDER_PID" 2>/dev/null || true
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}

# scored_repo DIR NAME MODEL: a model repository folder DIR/NAME serving
# MODEL with idempotency records kept 1 ms, so that the yardstick bodies'
# repeating ids ("r0" ... "r1023") are scored each time, not replayed.
scored_repo() {
    mkdir -p "$1/$2"
    ln -sf "$(realpath "$3")" "$1/$2/model.json"
    echo '{"models": [{"name": "primary", "path": "model.json"}], "chain": [{"model": "primary"}],
 "idempotency": {"ttl_ms": 1}}' >"$1/$2/engine.json"
}
