#!/usr/bin/env bash
# keel serve beside nginx's fixed answer and the FastAPI + XGBoost peer, in
# ../shared/bench/serve/run.sh (its arguments pass through; defaults here:
# --models clf_d8_t500_f100 --rows 1,256 --conns 64 --reps 3 --duration 5).
#
# The yardstick's bodies carry ids ("r0" ... "r1023") that repeat every lap,
# and keel serve answers a repeated id from its idempotency store without
# scoring. So that every request Keel answers is scored, as the peer's are,
# the model is served from a repository whose engine.json keeps idempotency
# records for 1 ms. (With the default 10 minutes, the 1-row laps are replays
# and the 256-row bodies' ids, reused from the 1-row ones, get 422.)
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
make_work vs-peers
for model in "$SHARED"/bench/serve/models/*.model.json; do
    scored_repo "$WORK/repo" "$(basename "$model" .model.json)" "$model"
done
args=("$@")
((${#args[@]})) || args=(--models clf_d8_t500_f100 --rows 1,256 --conns 64 --reps 3 --duration 5)
"$SHARED/bench/serve/run.sh" --keel "$KEEL serve --port {port} --models $WORK/repo --grpc-port -1" "${args[@]}"
