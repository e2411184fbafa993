#!/usr/bin/env bash
# bench-cache.sh BUILD_DIR - what `make bench-cache` runs: the cache policy
# on the Mooncake trace, offline and through a real daemon.
#   1. gpucache sim at each capacity: LRU, Belady and ours (the real store
#      on in-memory devices), with the plot data;
#   2. for each capacity, a real gpucached (1 shard, 1+0, one file device
#      sized by `gpucache sim --geometry` so the two stores match), the
#      trace replayed through libgpucache, the daemon's own flash counters;
#   3. the plot (gnuplot), and the last line:
#   RESULT hit_1m=.. belady_1m=.. ratio_1m=.. hit_3m=.. belady_3m=..
#          ratio_3m=.. write_amp=.. wrong=..
# hit_* come from the daemon (replay), the mean over CACHE_NS (4)
# namespaces, a fresh daemon each; write_amp is the worst daemon's flash
# bytes written (records, summaries, padding; no parity at 1+0) over
# block bytes put.
# The sim runs the store over CACHE_SEEDS (16) namespaces: the same trace
# under other fingerprints, whose spread shows how much of a difference is
# hash placement and sampling rather than policy (the minis sample chains
# by fingerprint: one namespace's figure moves by +-0.5 points).
# Environment: CACHE_BLOCK (16K), CACHE_SEGS (64), CACHE_PLOT_CAPS
# (300K,1M,3M,10M,30M), CACHE_DIR (var/bench-cache), CACHE_PORT (7270),
# CACHE_GPC_ARGS (extra gpucached flags, e.g. "--set store.writeback_ms=0").
set -euo pipefail

die() { echo "bench-cache: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: scripts/bench-cache.sh BUILD_DIR"
B=$1
GPC=$B/tools/gpucache
GPUCACHED=$B/src/server/gpucached
TRACE=data/traces/mooncake_synthetic_trace.jsonl
BLOCK=${CACHE_BLOCK:-16K}
SEGS=${CACHE_SEGS:-64}
DIR=${CACHE_DIR:-var/bench-cache}
PORT=${CACHE_PORT:-7270}
MPORT=$((PORT + 10))
export UCX_TLS=${UCX_TLS:-posix,cma,tcp}
[ -x "$GPC" ] && [ -x "$GPUCACHED" ] || die "build first"
rm -rf "$DIR"
mkdir -p "$DIR"

echo "== 1. gpucache sim (LRU, Belady, the real store on memory devices)"
"$GPC" sim "$TRACE" --capacity "${CACHE_PLOT_CAPS:-300K,1M,3M,10M,30M}" \
	--policy lru,belady,ours --block-bytes "$BLOCK" --segments "$SEGS" \
	--seeds "${CACHE_SEEDS:-16}" --data "$DIR/sim.tsv" \
	$(command -v gnuplot >/dev/null && echo --plot "$DIR/hit-ratio.png") |
	tee "$DIR/sim.log"
simfield() { # capacity-in-tokens key
	awk -v c="$1" -v k="$2" '$1 == "RESULT" && $2 == "sim" &&
		$3 == "capacity=" c { for (i = 4; i <= NF; i++) {
			split($i, kv, "="); if (kv[1] == k) print kv[2] } }' \
		"$DIR/sim.log"
}

metric() { # name: sum over the scrape
	python3 - "$MPORT" "$1" <<'EOF'
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics").read().decode()
print(sum(float(l.split()[-1]) for l in body.splitlines()
          if l.split(" ")[0].split("{")[0] == sys.argv[2]))
EOF
}

declare -A HIT HITS WA WRONG
NNS=${CACHE_NS:-4}
for cap in 1M 3M; do
	eval "$("$GPC" sim --geometry --capacity "$cap" --block-bytes "$BLOCK" \
		--segments "$SEGS")"
	HITS[$cap]=""
	WA[$cap]=0
	WRONG[$cap]=0
	for k in $(seq 0 $((NNS - 1))); do
	echo
	echo "== 2. gpucached at $cap tokens, the trace through libgpucache" \
		"(namespace $k of $NNS)"
	d=$DIR/d$cap.$k
	mkdir -p "$d"
	# a tenant of its own per namespace: the policy's reference counts
	# are per tenant (class), so each daemon is another draw of them
	printf '[server]\nport = %s\n\n[tenant bench%s]\nsecret = hex:%s\n' \
		"$PORT" "$k" "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" \
		>"$d/gpucached.conf"
	"$GPUCACHED" --data-dir "$d" --port "$PORT" --shards 1 \
		--set "store.device=$d/dev0.img" --set store.k=1 --set store.m=0 \
		--set "store.device_size=$device_size" \
		--set "store.chunk_size=$chunk_size" \
		--set "store.dram_buffer=$dram_buffer" \
		--set "server.metrics_port=$MPORT" ${CACHE_GPC_ARGS:-} \
		>"$d/gpucached.log" 2>&1 &
	pid=$!
	trap 'kill -9 $pid 2>/dev/null || true' EXIT
	for _ in $(seq 100); do
		grep -q "gpucached: ready" "$d/gpucached.log" && break
		kill -0 "$pid" 2>/dev/null || { cat "$d/gpucached.log"; die "gpucached exited"; }
		sleep 0.1
	done
	"$GPC" replay --config "$d/gpucached.conf" --block-bytes "$BLOCK" \
		--ns-index "$k" "$TRACE" | tee "$d/replay.log"
	res=$(grep '^RESULT' "$d/replay.log" | tail -1)
	HITS[$cap]+=" $(sed -n 's/.*hit_ratio=\([0-9.]*\).*/\1/p' <<<"$res")"
	WRONG[$cap]=$((WRONG[$cap] + $(sed -n 's/.*wrong=\([0-9]*\).*/\1/p' <<<"$res")))
	flash=$(metric gpucache_store_flash_written_bytes_total)
	offered=$(metric gpucache_store_put_offered_bytes_total)
	refused=$(metric gpucache_store_puts_refused_total)
	deduped=$(metric gpucache_store_puts_deduped_total)
	orphaned=$(metric gpucache_store_orphaned_blocks_total)
	wa=$(python3 -c "print(f'{$flash / max($offered, 1):.3f}')")
	WA[$cap]=$(python3 -c "print(max(${WA[$cap]}, $wa))")
	echo "daemon: flash written $flash B for $offered B put: write amp $wa;" \
		"$refused puts refused, $deduped deduped, $orphaned orphans dropped"
	kill -TERM "$pid"
	wait "$pid" || die "gpucached exited with an error"
	trap - EXIT
	done
	HIT[$cap]=$(python3 -c "import sys; v = list(map(float, sys.argv[1:])); print(f'{sum(v) / len(v):.4f}')" ${HITS[$cap]})
done

echo
echo "== agreement: sim vs daemon"
for cap in 1M 3M; do
	t=$(python3 -c "print(int(float('${cap%M}') * 1e6))")
	echo "$cap: sim $(simfield "$t" ours) ($(simfield "$t" ours_min) .." \
		"$(simfield "$t" ours_max) over the hash seeds), daemon" \
		"${HIT[$cap]} (mean of${HITS[$cap]})"
done
b1=$(simfield 1000000 belady)
b3=$(simfield 3000000 belady)
python3 - "${HIT[1M]}" "$b1" "${HIT[3M]}" "$b3" "${WA[1M]}" "${WA[3M]}" \
	"${WRONG[1M]}" "${WRONG[3M]}" <<'EOF'
import sys
h1, b1, h3, b3, w1, w3 = map(float, sys.argv[1:7])
wrong = int(sys.argv[7]) + int(sys.argv[8])
print(f"RESULT hit_1m={h1:.4f} belady_1m={b1:.4f} ratio_1m={h1 / b1:.3f} "
      f"hit_3m={h3:.4f} belady_3m={b3:.4f} ratio_3m={h3 / b3:.3f} "
      f"write_amp={max(w1, w3):.3f} wrong={wrong}")
EOF
