#!/usr/bin/env bash
# `make test-loaded`: `make test` with two busy processes beside it, as on a robot's CI machine or a
# developer's laptop that is doing other work. The busy processes are started here and stopped by their ids
# when this script ends, however it ends; the suite's time is printed.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${1:-python3}
BUSY=${LITESEG_BUSY_PROCESSES:-2}

busy_pids=()
stop_busy() {
    for pid in "${busy_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${busy_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap stop_busy EXIT
trap 'exit 130' INT TERM

for _ in $(seq "$BUSY"); do
    "$PYTHON" -c "while True: pass" &   # one core's worth of pure CPU work each
    busy_pids+=("$!")
done
echo "test-loaded: ${BUSY} busy processes (pids ${busy_pids[*]}) beside make test on $(nproc) cores"
started=$(date +%s)
status=0
make test || status=$?
elapsed=$(( $(date +%s) - started ))
echo "test-loaded: make test exited with ${status} after $((elapsed / 60)) min $((elapsed % 60)) s" \
     "beside ${BUSY} busy processes"
exit "$status"
