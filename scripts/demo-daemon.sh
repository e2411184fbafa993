#!/usr/bin/env bash
# demo-daemon.sh BUILD_DIR - what `make demo` runs: a single-node GPUCache
# tier on 4 file-backed devices (2+1) under ./var/demo-tier, started as a
# real gpucached, then the Mooncake trace replayed through libgpucache
# with the per-block size of Llama-3-8B scaled down, then the daemon's
# own metrics, then a clean stop (SIGTERM: seal, flush, exit 0).
#
# Environment: DEMO_DIR (var/demo-tier), DEMO_PORT (7070),
# DEMO_METRICS_PORT (7080), DEMO_DEV_SIZE (1G), DEMO_BLOCK (64K),
# DEMO_REQUESTS (0 = the whole trace), UCX_TLS (posix,cma,tcp).
set -euo pipefail

die() { echo "demo: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: scripts/demo-daemon.sh BUILD_DIR"
B=$1
GPUCACHED=$B/src/server/gpucached
GPC=$B/tools/gpucache
TRACE=data/traces/mooncake_synthetic_trace.jsonl
[ -x "$GPUCACHED" ] && [ -x "$GPC" ] || die "build first (make build)"
[ -f "$TRACE" ] || die "$TRACE is missing"
DIR=${DEMO_DIR:-var/demo-tier}
PORT=${DEMO_PORT:-7070}
MPORT=${DEMO_METRICS_PORT:-7080}
export UCX_TLS=${UCX_TLS:-posix,cma,tcp}

if [ -t 1 ]; then BO=$'\033[1m' NO=$'\033[0m'; else BO= NO=; fi
say() { printf '\n%s%s%s\n' "$BO" "$*" "$NO"; }

rm -rf "$DIR"
mkdir -p "$DIR"
say "1. Start gpucached: 4 file-backed devices of ${DEMO_DEV_SIZE:-1G} under $DIR, erasure-coded 2+1, 2 shards on ports $PORT-$((PORT + 1)), metrics on 127.0.0.1:$MPORT. First start writes $DIR/gpucached.conf with a tenant 'default' and a generated secret."
"$GPUCACHED" --data-dir "$DIR" --port "$PORT" --shards 2 \
	--set "store.device_size=${DEMO_DEV_SIZE:-1G}" --set store.k=2 \
	--set store.m=1 --set "server.metrics_port=$MPORT" \
	>"$DIR/gpucached.log" 2>&1 &
PID=$!
cleanup() { kill -9 "$PID" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do
	grep -q "gpucached: ready" "$DIR/gpucached.log" 2>/dev/null && break
	kill -0 "$PID" 2>/dev/null || { cat "$DIR/gpucached.log"; die "gpucached exited"; }
	sleep 0.1
done
grep -q "gpucached: ready" "$DIR/gpucached.log" || die "gpucached did not start"
echo "gpucached running as process $PID (log: $DIR/gpucached.log)"

say "2. Replay the Mooncake trace (3,993 requests, prefix-chained 512-token blocks). Per request: LOOKUP the chain of block keys, GET the cached prefix instead of recomputing it, PUT the blocks that had to be prefilled. A Llama-3-8B block (512 tokens x 128 KiB) is 64 MiB; the demo scales it to ${DEMO_BLOCK:-64K} so it runs in about a minute. Every block read back is checked."
"$GPC" replay --config "$DIR/gpucached.conf" --block-bytes "${DEMO_BLOCK:-64K}" \
	${DEMO_REQUESTS:+--max-requests "$DEMO_REQUESTS"} "$TRACE"

CAP=$(curl -s "127.0.0.1:$MPORT/metrics" | awk '{ split($1, n, "{") } n[1] == "gpucache_store_capacity_bytes" { s += $2 } END { printf "%.0f", s }')
REC=$(( ($(numfmt --from=iec "${DEMO_BLOCK:-64K}") + 4095) / 4096 * 4096 + 4096 ))
TOKENS=$(( CAP / REC * 512 ))
say "2b. How good is that? The same trace offline at the tier's capacity ($CAP bytes of flash: $((CAP / REC)) blocks, $TOKENS tokens): a plain LRU, and Belady's furthest-next-use with the future known (the bound no online policy reaches)."
"$GPC" sim "$TRACE" --capacity "$TOKENS" --policy lru,belady | grep -v '^RESULT'

say "3. The daemon's own figures (gpucache stat --server, the same Prometheus metrics curl 127.0.0.1:$MPORT/metrics serves):"
"$GPC" stat --server "127.0.0.1:$MPORT"

say "4. Stop: SIGTERM makes gpucached finish in-flight work, seal and flush open segments, and exit 0."
kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
trap - EXIT
[ "$rc" -eq 0 ] || die "gpucached exited with status $rc"
echo "gpucached exited with status 0; the tier is still in $DIR (restart it with: $GPUCACHED --data-dir $DIR)"
