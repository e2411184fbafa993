#!/usr/bin/env bash
# bench-net.sh BUILD_DIR - gpucached's network data path against raw UCX
# RMA and against Redis, in one run (what `make bench-net` runs; the
# figures go to docs/benchmarks-net.md).
#
#   raw UCX   tools/bench_ucx_rma, three baselines, each run right before
#             the gpucached run it is compared with; same transports,
#             sizes, threads, depth, peer error handling:
#               rma  server-driven RMA (GET from client memory for a put,
#                    PUT into it plus an endpoint flush for a get): what
#                    protocol v1 had available
#               am   --mode am: block data as the data part of an active
#                    message by rendezvous, received into a UCX iovec on
#                    the server, sent with the put scheme: what gpucached
#                    (protocol v2) does, and nothing else
#               am-mem  the same, but the server's buffers rotate over
#                    as many bytes as the tier's write buffers
#                    (DRAM_WBUF or FLASH_WBUF, shared among the threads'
#                    connections; --server-span) instead of DEPTH slots
#                    that stay in the CPU's caches: data lands in memory
#                    as large as the daemon's, as gpucached's does
#   engine    tools/gpucache bench on the flash tier's three zram devices
#             (2+1, the flash tier's chunk and write buffers), per size,
#             putting random bytes as bench_net does (zram compresses a
#             pattern, which would make the engine's job cheaper than the
#             daemon's): the engine alone, without the network; the flash tier's PUT
#             and GET are compared with the lesser of it and UCX AM
#             (flash_put_vs_engine, flash_get_vs_engine)
#   gpucached tools/bench_net through libgpucache: threads share one
#             client (CLIENT=per-thread: one each; the other mode is
#             measured once for comparison), UCX-allocated buffers
#             (gpc_mem_alloc), DEPTH requests of one block in flight per
#             thread; PUT then GET, timed, per size (256K, 2M), per
#             thread count (1, 4), per transport, per tier:
#               dram   the GET working set sits in the write buffer: a
#                      durable put seals the open segment (64M chunks,
#                      128 MiB of data per segment), then DRAM_SET bytes
#                      are written and read back (flash reads checked 0)
#               flash  a FLASH_SET data set against a 128M write buffer:
#                      gets read zram (3 devices, 2+1)
#   Redis     redis-server (Debian, single-threaded, no persistence) on a
#             private port and unix socket under BENCH_DIR; redis-benchmark
#             SET then GET of the same value sizes over REDIS_SET bytes of
#             distinct keys (-r), THREADS connections, -P DEPTH pipelining.
#
# Transports: shm = UCX_TLS=posix,cma,tcp with UCX_MM_ERROR_HANDLING=y
# (without it UCX 1.13 never picks shared memory for endpoints with peer
# error handling; see src/net/net_ucx.c), tcp = UCX_TLS=tcp on lo with
# UCX_TCP_TX_SEG_SIZE=256K UCX_TCP_RX_SEG_SIZE=1M. Server CPU is
# utime+stime of the server process (io_uring workers included) over the
# timed phase; payload copies are gpucached's own counter
# (gpucache_payload_copy_bytes_total) from its metrics endpoint.
#
# Shard scaling: gpucached with 1 and then 2 shards (shm, dram tier,
# SCALE_SIZES, SCALE_THREADS client threads), shard_scaling = the lower of
# PUT's and GET's 2-shard / 1-shard GB/s, each of the two best over sizes.
#
# Needs root (zram). Environment: BENCH_DIR (var/bench-net), SECONDS_PER
# (1.5), DEPTH (8), SIZES ("256K 2M"), THREADS ("1 4"), TRANSPORTS
# ("shm tcp"), TIERS ("dram flash"), CLIENT (shared), DRAM_SET (96M),
# DRAM_WBUF (1G), FLASH_WBUF (128M),
# FLASH_SET (1G), REDIS_SET (1G), PORT (7470), REDIS_PORT (7490),
# LOAD_PCT (70), BENCH_NET_BIN (BUILD_DIR/tools), UCX_MODES ("rma am am-mem"),
# SCALE_SIZES ("256K 2M"), SCALE_THREADS (4), SCALE (1; 0 skips it),
# DATA_SEND (auto; iovec, contig: how gpucached's GETs and the am
# baselines' gets send their data, server.data_send),
# SMALL (16K; "" skips it: 64 blocks in flight over shm to the DRAM tier,
# as 64 messages and as 4 PUT and GET batches of 16),
# EXTRA_GPC_ARGS (more gpucached flags, for A/B runs), BENCH_NET_ARGS
# (more bench_net flags, e.g. --wait spin), REDIS (1; 0 skips it),
# ENGINE (1; 0 skips the engine-alone run on the flash tier's devices),
# PROFILE (0; 1: `perf record -g` on gpucached during every timed PUT and
# GET phase, into BENCH_DIR/perf/TAG-TRANSPORT-TIER-SIZE-xTHREADS-OP.data;
# scripts/bench-profile.py sums them up by stage).
set -euo pipefail
shopt -s inherit_errexit

die() { echo "bench-net: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: scripts/bench-net.sh BUILD_DIR"
BUILD=$1
BIN=${BENCH_NET_BIN:-$BUILD/tools}
GPUCACHED=$BUILD/src/server/gpucached
GPCTOOL=$BUILD/tools/gpucache
for x in "$GPUCACHED" "$BIN/bench_net" "$BIN/bench_ucx_rma" "$GPCTOOL"; do
	[ -x "$x" ] || die "$x not found: build first (make build)"
done
for c in redis-server redis-benchmark redis-cli curl python3; do
	command -v $c >/dev/null || die "$c not found"
done
[ -w /sys/class/zram-control/hot_add ] || die "needs root and zram"

BENCH_DIR=${BENCH_DIR:-var/bench-net}
SECS=${SECONDS_PER:-1.5}
DEPTH=${DEPTH:-8}
SIZES=${SIZES:-256K 2M}
THREADS=${THREADS:-1 4}
TRANSPORTS=${TRANSPORTS:-shm tcp}
TIERS=${TIERS:-dram flash}
DRAM_SET=${DRAM_SET:-96M}
DRAM_WBUF=${DRAM_WBUF:-1G}   # the dram tier's write buffers (store.dram_buffer)
FLASH_WBUF=${FLASH_WBUF:-128M} # the flash tier's
FLASH_SET=${FLASH_SET:-1G}
REDIS_SET=${REDIS_SET:-1G}
PORT=${PORT:-7470}
MPORT=$((PORT + 10))
RPORT=${REDIS_PORT:-7490}
LOAD_PCT=${LOAD_PCT:-70}
UCX_MODES=${UCX_MODES:-rma am am-mem}
DATA_SEND=${DATA_SEND:-auto} # server.data_send, and the am baselines' --send
SCALE=${SCALE:-1}
SMALL=${SMALL:-16K} # small-block sizes, shm dram: batches against single blocks
SCALE_SIZES=${SCALE_SIZES:-256K 2M}
SCALE_THREADS=${SCALE_THREADS:-4}
SHARDS=1
SECRET=bench-net-secret-$$-$RANDOM$RANDOM

bytes() { # 256K -> 262144
	local v=${1%[KMG]}
	case $1 in
	*K) echo $((v << 10)) ;; *M) echo $((v << 20)) ;;
	*G) echo $((v << 30)) ;; *) echo "$1" ;;
	esac
}

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
if [ "${PROFILE:-0}" = 1 ]; then
	command -v perf >/dev/null || die "PROFILE=1 needs perf (scripts/deps.sh bench)"
	mkdir -p "$BENCH_DIR/perf"
	# bench_net --phase-hook: perf on the daemon for the timed phase only
	cat >"$BENCH_DIR/perf-hook.sh" <<HOOK
#!/bin/sh
# \$1 start|stop, \$2 put|get; PERF_TAG and PERF_PID from bench-net.sh
d=$BENCH_DIR/perf
case \$1 in
start)
	perf record -q ${PERF_ARGS:---call-graph dwarf,16384 -F 400} -p "\$PERF_PID" -o "\$d/\$PERF_TAG-\$2.data" >/dev/null 2>&1 &
	echo \$! >"\$d/.pid"
	sleep 0.2 ;;
stop)
	p=\$(cat "\$d/.pid")
	kill -INT "\$p" 2>/dev/null
	while kill -0 "\$p" 2>/dev/null; do sleep 0.05; done ;;
esac
HOOK
	chmod +x "$BENCH_DIR/perf-hook.sh"
fi
RES=$BENCH_DIR/results.txt
LOG=$BENCH_DIR/bench-net.log
: >"$RES"
: >"$LOG"
ZRAMS=()
GPID=
RPID=

cleanup() {
	[ -n "$GPID" ] && kill -9 "$GPID" 2>/dev/null
	[ -n "$RPID" ] && kill -9 "$RPID" 2>/dev/null
	wait 2>/dev/null
	for z in "${ZRAMS[@]}"; do
		for _ in $(seq 50); do # io_uring lets go asynchronously
			echo 1 >"/sys/block/zram$z/reset" 2>/dev/null && break
			sleep 0.1
		done
		echo "$z" >/sys/class/zram-control/hot_remove 2>/dev/null || true
	done
}
trap cleanup EXIT

for _ in 1 2 3; do
	ZRAMS+=("$(cat /sys/class/zram-control/hot_add)")
done

zram_fresh() { # lz4: the faster kernel compressor on incompressible data
	local z
	for z in "${ZRAMS[@]}"; do
		for _ in $(seq 50); do
			echo 1 >"/sys/block/zram$z/reset" 2>/dev/null && break
			sleep 0.1
		done
		echo lz4 >"/sys/block/zram$z/comp_algorithm" 2>/dev/null || true
		echo 2G >"/sys/block/zram$z/disksize"
	done
}

ucx_env() { # transport -> UCX variables for both ends
	case $1 in
	shm) echo "UCX_TLS=posix,cma,tcp UCX_MM_ERROR_HANDLING=y UCX_NET_DEVICES=lo" ;;
	tcp) echo "UCX_TLS=tcp UCX_NET_DEVICES=lo UCX_TCP_TX_SEG_SIZE=256K UCX_TCP_RX_SEG_SIZE=1M" ;;
	esac
}

gpc_start() { # transport tier
	local dir=$BENCH_DIR/gpucached-$1-$2 args=()
	rm -rf "$dir"
	mkdir -p "$dir"
	printf '[tenant bench]\nsecret = %s\n' "$SECRET" >"$dir/bench.conf"
	zram_fresh
	for z in "${ZRAMS[@]}"; do args+=(--set "store.device=/dev/zram$z"); done
	if [ "$2" = dram ]; then
		args+=(--set "store.dram_buffer=$DRAM_WBUF" --set store.chunk_size=64M)
	else
		args+=(--set "store.dram_buffer=$FLASH_WBUF")
	fi
	env $(ucx_env "$1") "$GPUCACHED" -c "$dir/bench.conf" --data-dir "$dir" \
		--port "$PORT" --shards "$SHARDS" --set server.listen=127.0.0.1 \
		--set "server.metrics_port=$MPORT" --set server.log_level=warn \
		--set "server.data_send=$DATA_SEND" \
		"${args[@]}" ${EXTRA_GPC_ARGS:-} >"$dir/log" 2>&1 &
	GPID=$!
	for _ in $(seq 300); do
		grep -q "gpucached: ready" "$dir/log" 2>/dev/null && return 0
		kill -0 "$GPID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$dir/log" >&2
	die "gpucached did not start"
}

metric() { # name: sum over its samples
	curl -s "127.0.0.1:$MPORT/metrics" |
		awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 }
			END { printf "%.0f\n", s }'
}

gpc_stop() {
	local copy store_copy
	copy=$(metric gpucache_payload_copy_bytes_total)
	store_copy=$(metric gpucache_store_copy_bytes_total)
	echo "copy transport=$1 tier=$2 payload_copy_bytes=$copy store_copy_bytes=$store_copy" >>"$RES"
	kill -TERM "$GPID"
	wait "$GPID" || true
	GPID=
}

run_gpc() { # transport tier size threads [extra bench_net args]
	local tp=$1 tier=$2 size=$3 th=$4 sz keys set ops fr0 fr1 out
	shift 4
	sz=$(bytes "$size")
	if [ "$tier" = dram ]; then
		set=$(bytes "$DRAM_SET") ops=put,seal,fill,get
	else
		set=$(bytes "$FLASH_SET") ops=put,fill,get
	fi
	ops=${OPS:-$ops}
	# several threads share one client unless CLIENT=per-thread: on this
	# 2-CPU machine 4 busy-polling UCX workers lost to one (see the
	# comparison run and docs/benchmarks-net.md)
	[ "$th" -gt 1 ] && [ "${CLIENT:-shared}" = shared ] && set -- --shared-client "$@"
	if [ "${PROFILE:-0}" = 1 ]; then
		set -- --phase-hook "$BENCH_DIR/perf-hook.sh" "$@"
		PERF_TAG=$(echo "${TAG:-}" | tr -d ' =')s$SHARDS-$tp-$tier-$size-x$th
		export PERF_TAG PERF_PID=$GPID
	fi
	keys=$((set / sz))
	fr0=$(metric gpucache_store_flash_read_bytes_total)
	out=$(env $(ucx_env "$tp") timeout 120 "$BIN/bench_net" \
		--url "gpc://127.0.0.1:$PORT" --tenant bench --secret "$SECRET" \
		--size "$sz" --threads "$th" --depth "$DEPTH" --keys "$keys" \
		--ops "$ops" --seconds "$SECS" --server-pid "$GPID" \
		${BENCH_NET_ARGS:-} "$@" \
		2>>"$LOG") || die "bench_net failed ($tp $tier $size x$th)"
	fr1=$(metric gpucache_store_flash_read_bytes_total)
	echo "$out" | sed "s/^gpc /gpc ${TAG:-}shards=$SHARDS transport=$tp tier=$tier flash_read=$((fr1 - fr0)) /" |
		tee -a "$RES" | sed 's/^/  /'
}

run_engine() { # size: the engine alone on the flash tier's devices
	# (2+1 over the same three zram devices, the chunk and write buffers
	# gpucached's flash tier gets), put then get FLASH_SET, DEPTH gets in
	# flight: what the flash tier's PUT and GET are measured against
	local devs=() out
	zram_fresh
	for z in "${ZRAMS[@]}"; do devs+=("/dev/zram$z"); done
	out=$("$GPCTOOL" bench --format -k 2 -m 1 --chunk 16M --wbufs 4 \
		--size "$(bytes "$1")" --bytes "$FLASH_SET" --qd "$DEPTH" \
		--data random "${devs[@]}" 2>>"$LOG" | grep '^RESULT') ||
		die "gpucache bench failed ($1)"
	echo "$out" | sed "s/^RESULT /engine tier=flash size=$(bytes "$1") /" |
		tee -a "$RES" | sed 's/^/  /'
}

run_ucx() { # transport size threads tier (the gpucached run it precedes)
	local out mode
	for mode in $UCX_MODES; do
		local extra=()
		if [ "$mode" = am-mem ]; then
			local wb=$DRAM_WBUF
			[ "$4" = flash ] && wb=$FLASH_WBUF
			extra=(--server-span $(($(bytes "$wb") / $3)))
		fi
		out=$(env $(ucx_env "$1") timeout 120 "$BIN/bench_ucx_rma" \
			--mode "${mode%-mem}" --send "$DATA_SEND" "${extra[@]}" \
			--port $((PORT + 20)) --size "$(bytes "$2")" \
			--threads "$3" --depth "$DEPTH" --seconds "$SECS" \
			2>>"$LOG") || die "bench_ucx_rma --mode $mode failed ($1 $2 x$3)"
		echo "$out" | sed "s/^ucx /ucx transport=$1 tier=$4 /" |
			tee -a "$RES" | sed 's/^/  /'
	done
}

proc_cpu() { # pid -> utime+stime in clock ticks
	awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

run_redis() { # via(tcp|unix) size conns
	local sz keys n p cpu0 cpu1 test csv conn
	sz=$(bytes "$2")
	keys=$(($(bytes "$REDIS_SET") / sz))
	n=$((keys * 6)) # -r picks keys at random: 6 rounds cover 99.75%
	if [ "$1" = tcp ]; then conn=(-h 127.0.0.1 -p "$RPORT"); else
		conn=(-s "$BENCH_DIR/redis.sock"); fi
	redis-cli "${conn[@]}" flushall >/dev/null
	for test in set get; do
		cpu0=$(proc_cpu "$RPID")
		csv=$(redis-benchmark "${conn[@]}" -t "$test" -n "$n" -r "$keys" \
			-d "$sz" -c "$3" -P "$DEPTH" --csv 2>>"$LOG" | tail -1)
		cpu1=$(proc_cpu "$RPID")
		p=$(redis-cli "${conn[@]}" dbsize)
		echo "$csv" | awk -F'"' -v via="$1" -v sz="$sz" -v c="$3" \
			-v n="$n" -v keys="$keys" -v have="$p" -v test="$test" \
			-v cpu=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" '{
			gb = n * sz / 1e9
			printf "redis via=%s op=%s size=%d conns=%d gbps=%.3f " \
			    "p50_us=%.1f p99_us=%.1f srv_cpu_s=%.3f bytes=%.0f " \
			    "srv_cpu_s_per_gb=%.4f keys=%d present=%d\n", via, test,
			    sz, c, $4 * sz / 1e9, $10 * 1000, $14 * 1000,
			    cpu / hz, n * sz, cpu / hz / gb, keys, have }' |
			tee -a "$RES" | sed 's/^/  /'
	done
}

echo "bench-net: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg), UCX $(ucx_info -v | sed -n 's/# Version //p'), $(redis-server --version | cut -d' ' -f3)"
T0=$(date +%s)
read -r _ u0 n0 s0 i0 _ </proc/stat

if [[ " $TIERS " == *" flash "* ]] && [ "${ENGINE:-1}" = 1 ]; then
	echo "== the engine alone on the flash tier's devices (gpucache bench, 2+1 on zram)"
	for size in $SIZES; do
		run_engine "$size"
	done
fi

for tp in $TRANSPORTS; do
	for tier in $TIERS; do
		echo "== gpucached over $tp, $tier tier; each right after raw UCX ($UCX_MODES) of the same shape"
		gpc_start "$tp" "$tier"
		for size in $SIZES; do
			for th in $THREADS; do
				run_ucx "$tp" "$size" "$th" "$tier"
				run_gpc "$tp" "$tier" "$size" "$th"
			done
		done
		if [ "$tp" = shm ] && [ "$tier" = dram ]; then
			echo "== the other client mode (256K, 4 threads)"
			CLIENT=$([ "${CLIENT:-shared}" = shared ] && echo per-thread || echo shared) \
				TAG="compare=1 " run_gpc shm dram 256K 4
			# the latency point: 256K GET at LOAD_PCT% of the peak,
			# with the thread count that gave the best 256K GET; the
			# peak is measured again right before the paced run
			# (bench_net --rate-pct), so the load is a share of what
			# the machine gives at that moment
			th=$(awk '$1 == "gpc" && /transport=shm/ &&
				/tier=dram/ && /op=get/ && /size=262144/ &&
				!/compare=1/ {
				for (i = 2; i <= NF; i++) {
					split($i, kv, "=")
					if (kv[1] == "gbps") g = kv[2]
					if (kv[1] == "threads") t = kv[2]
				}
				if (g > best) { best = g; bt = t } }
				END { print bt ? bt : 1 }' "$RES")
			echo "== latency: 256K GET at ${LOAD_PCT}% of the peak measured right before ($th threads)"
			OPS=seal,fill,get TAG="latency=1 " run_gpc shm dram 256K \
				"$th" --rate-pct "$LOAD_PCT"
			# small blocks (a layer's KV block is 8-64 KiB): 64 in
			# flight as 64 messages, then as 4 batches of 16
			for size in $SMALL; do
				echo "== small blocks: $size, 64 in flight, one per message, then 16 per message"
				TAG="small=1 " run_gpc shm dram "$size" 1 --depth=64 --batch=1
				TAG="small=1 " run_gpc shm dram "$size" 1 --depth=4 --batch=16
			done
		fi
		gpc_stop "$tp" "$tier"
	done
done

if [ "$SCALE" = 1 ]; then
	for SHARDS in 1 2; do
		echo "== shard scaling: gpucached with $SHARDS shard(s), shm, dram tier, $SCALE_THREADS client threads"
		gpc_start shm dram
		for size in $SCALE_SIZES; do
			TAG="scale=1 " run_gpc shm dram "$size" "$SCALE_THREADS"
		done
		gpc_stop shm dram
	done
	SHARDS=1
fi

if [ "${REDIS:-1}" = 1 ]; then
	echo "== Redis $(redis-server --version | cut -d' ' -f3) (-c THREADS -P $DEPTH)"
	rm -f "$BENCH_DIR/redis.sock"
	redis-server --port "$RPORT" --bind 127.0.0.1 --protected-mode yes \
		--unixsocket "$BENCH_DIR/redis.sock" --unixsocketperm 700 \
		--save "" --appendonly no --dir "$BENCH_DIR" --logfile "$BENCH_DIR/redis.log" &
	RPID=$!
	for _ in $(seq 50); do
		redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break
		sleep 0.1
	done
	for via in tcp unix; do
		for size in $SIZES; do
			for th in $THREADS; do
				run_redis "$via" "$size" "$th"
			done
		done
	done
	redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
	wait "$RPID" 2>/dev/null || true
	RPID=
fi

read -r _ u1 n1 s1 i1 _ </proc/stat
echo "bench-net: $(( $(date +%s) - T0 )) s; machine busy $(( 100 * ((u1 + n1 + s1) - (u0 + n0 + s0)) / ((u1 + n1 + s1 + i1) - (u0 + n0 + s0 + i0)) ))% over the run, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$RES" "$LOAD_PCT" <<'EOF'
import sys
rows = []
for line in open(sys.argv[1]):
    w = line.split()
    d = {"kind": w[0]}
    for kv in w[1:]:
        k, _, v = kv.partition("=")
        d[k] = v
    rows.append(d)
f = float
ucx = {(r.get("mode", "rma"), r["transport"], r["tier"], r["op"], r["size"], r["threads"]): f(r["gbps"])
       for r in rows if r["kind"] == "ucx"}
gpc = [r for r in rows if r["kind"] == "gpc" and "latency" not in r
       and "compare" not in r and "scale" not in r and "small" not in r]
small = [r for r in rows if r["kind"] == "gpc" and "small" in r]
scale = [r for r in rows if r["kind"] == "gpc" and "scale" in r]
red = {(r["via"], r["op"], r["size"], r["conns"]): r
       for r in rows if r["kind"] == "redis"}
eng = {r["size"]: r for r in rows if r["kind"] == "engine"}
red_op = {"put": "set", "get": "get"}
mib = lambda n: "%dK" % (int(n) >> 10) if int(n) < 1 << 20 else "%dM" % (int(n) >> 20)

print("\n%-4s %-5s %-4s %-3s %-3s | %7s %7s %6s %7s %6s %7s %6s | %7s %6s | %8s %8s %8s | %6s %s"
      % ("tp", "tier", "size", "thr", "op", "gpc", "UCXrma", "ratio", "UCXam", "ratio",
         "UCXmem", "ratio", "Redis", "ratio", "p50_us", "p99_us", "p999_us", "s/GB", "notes"))
ratios = {"get": [], "put": [], "tcp": [], "shm": [], "get_am": [], "put_am": [],
          "get_am-mem": [], "put_am-mem": [], "flash_put": [], "flash_get": []}
for r in gpc:
    k = (r["transport"], r["op"], r["size"], r["threads"])
    g = f(r["gbps"])
    u = ucx.get(("rma", k[0], r["tier"]) + k[1:])
    a = ucx.get(("am", k[0], r["tier"]) + k[1:])
    am = ucx.get(("am-mem", k[0], r["tier"]) + k[1:])
    via = "tcp" if r["transport"] == "tcp" else "unix"
    rd = red.get((via, red_op[r["op"]], r["size"], r["threads"]))
    rg = f(rd["gbps"]) if rd else None
    if u:
        ratios[r["op"]].append((g / u, "%s %s %s x%s %s" % (k[0], r["tier"], mib(k[2]), k[3], k[1])))
    if a:
        ratios[r["op"] + "_am"].append((g / a, "%s %s %s x%s %s" % (k[0], r["tier"], mib(k[2]), k[3], k[1])))
    if am:
        ratios[r["op"] + "_am-mem"].append((g / am, "%s %s %s x%s %s" % (k[0], r["tier"], mib(k[2]), k[3], k[1])))
    e = eng.get(r["size"])
    if e and r["tier"] == "flash":
        # against the lesser of the engine alone and UCX AM (the goal)
        bound = min(x for x in (f(e[r["op"] + "_gbps"]), a or 1e9) if x > 0)
        ratios["flash_" + r["op"]].append((g / bound, "%s %s %s x%s %s" % (k[0], r["tier"], mib(k[2]), k[3], k[1])))
    if rg:
        ratios[r["transport"]].append((g / rg, "%s %s %s x%s %s" % (k[0], r["tier"], mib(k[2]), k[3], k[1])))
    notes = []
    if r["op"] == "get":
        notes.append("flash_read=%.0fMB" % (int(r["flash_read"]) / 1e6))
    for n in ("busy", "errors", "wrong"):
        if r[n] != "0":
            notes.append("%s=%s" % (n, r[n]))
    print("%-4s %-5s %-4s %-3s %-3s | %7.2f %7.2f %6.2f %7.2f %6.2f %7.2f %6.2f | %7s %6s | %8s %8s %8s | %6.3f %s"
          % (k[0], r["tier"], mib(k[2]), k[3], k[1], g, u or 0, g / u if u else 0,
             a or 0, g / a if a else 0, am or 0, g / am if am else 0,
             "%.2f" % rg if rg else "-", "%.2f" % (g / rg) if rg else "-",
             r["p50_us"], r["p99_us"], r["p999_us"], f(r["srv_cpu_s_per_gb"]),
             " ".join(notes)))
if eng:
    print("\nthe engine alone on the flash tier's zram devices (2+1, gpucache bench):")
    for size, e in sorted(eng.items(), key=lambda x: int(x[0])):
        print("  %-4s put %6.2f GB/s  get %6.2f GB/s" % (mib(size), f(e["put_gbps"]), f(e["get_gbps"])))
print("\nRedis (redis-benchmark, -P as gpucached's depth):")
for (via, op, size, c), r in sorted(red.items()):
    print("  %-4s %-3s %-4s x%s  %6.2f GB/s  p50 %8s us  p99 %8s us  %.3f s/GB  keys %s present %s"
          % (via, op, mib(size), c, f(r["gbps"]), r["p50_us"], r["p99_us"],
             f(r["srv_cpu_s_per_gb"]), r["keys"], r["present"]))
sh = [r for r in rows if r["kind"] == "gpc" and "compare" in r]
for r in sh:
    pt = [x for x in gpc if x["transport"] == r["transport"] and x["tier"] == r["tier"]
          and x["size"] == r["size"] and x["threads"] == r["threads"] and x["op"] == r["op"]]
    if pt:
        print("client %s vs %s (%s %s %s x%s %s): %.2f vs %.2f GB/s"
              % (pt[0]["client"], r["client"], r["transport"], r["tier"], mib(r["size"]),
                 r["threads"], r["op"], f(pt[0]["gbps"]), f(r["gbps"])))
lat = [r for r in rows if r["kind"] == "gpc" and "latency" in r]
cpu = lambda rs: sum(f(r["srv_cpu_s"]) for r in rs) / max(1e-9, sum(int(r["bytes"]) for r in rs) / 1e9)
ours = cpu(gpc)
ours_dram = cpu([r for r in gpc if r["tier"] == "dram"])
theirs = cpu(list(red.values()))
copy = sum(int(r["payload_copy_bytes"]) for r in rows if r["kind"] == "copy")
scopy = sum(int(r["store_copy_bytes"]) for r in rows if r["kind"] == "copy")
print("\nserver CPU s/GB: gpucached %.3f (dram tier %.3f), Redis %.3f; payload bytes copied by gpucached %d (engine copies %d)"
      % (ours, ours_dram, theirs, copy, scopy))
mn = lambda k: min(ratios[k]) if ratios[k] else (0.0, "-")
if small:
    print("\nsmall blocks (shm, dram tier, x1, 64 blocks in flight): one per message -> batches")
    one = {(r["size"], r["op"]): r for r in small if r["batch"] == "1"}
    for r in small:
        o = one.get((r["size"], r["op"]))
        if r["batch"] == "1" or o is None:
            continue
        print("  %-4s %s  %6.2f GB/s (%.3f s/GB) -> %6.2f GB/s (%.3f s/GB) in batches of %s: %.2fx"
              % (mib(r["size"]), r["op"], f(o["gbps"]), f(o["srv_cpu_s_per_gb"]),
                 f(r["gbps"]), f(r["srv_cpu_s_per_gb"]), r["batch"],
                 f(r["gbps"]) / f(o["gbps"])))
sc = {}
if scale:
    print("\nshard scaling (shm, dram tier):")
    for r in scale:
        print("  shards %s  %-4s x%s %s  %7.2f GB/s  p50 %8s us  p99 %8s us  %.3f s/GB"
              % (r["shards"], mib(r["size"]), r["threads"], r["op"], f(r["gbps"]),
                 r["p50_us"], r["p99_us"], f(r["srv_cpu_s_per_gb"])))
        key = (r["op"], r["shards"])
        sc[key] = max(sc.get(key, 0.0), f(r["gbps"]))
    per_op = [sc[(op, "2")] / sc[(op, "1")] for op in ("put", "get")
              if sc.get((op, "1")) and (op, "2") in sc]
    for op in ("put", "get"):
        if sc.get((op, "1")) and (op, "2") in sc:
            print("  %s: 2 shards / 1 = %.2f (best over sizes)" % (op, sc[(op, "2")] / sc[(op, "1")]))
    sc_val = min(per_op) if per_op else 0.0
else:
    sc_val = 0.0
for k, name, goal in (("get", "GET gpucached/raw UCX", ">= 0.9"), ("put", "PUT gpucached/raw UCX", ">= 0.9"),
                      ("get_am", "GET gpucached/UCX AM", ">= 0.9"), ("put_am", "PUT gpucached/UCX AM", ">= 0.9"),
                      ("get_am-mem", "GET gpucached/UCX AM, span", ">= 0.9"), ("put_am-mem", "PUT gpucached/UCX AM, span", ">= 0.9"),
                      ("flash_put", "flash PUT/min(engine, AM)", ">= 0.9"), ("flash_get", "flash GET/min(engine, AM)", "-"),
                      ("tcp", "gpucached tcp/Redis tcp", ">= 1"), ("shm", "gpucached shm/Redis unix", ">= 3")):
    v, where = mn(k)
    print("lowest %-26s %.2f (goal %s) at %s" % (name, v, goal, where))
if lat:
    l = lat[-1]
    print("latency at %s%% of peak (256K GET, shm, dram, %s threads, %s req/s): p50 %s us, p99 %s us, p999 %s us, achieved %s GB/s"
          % (sys.argv[2], l["threads"], l["rate"], l["p50_us"], l["p99_us"], l["p999_us"], l["gbps"]))
print("RESULT get_vs_ucx=%.2f put_vs_ucx=%.2f tcp_vs_redis=%.2f shm_vs_redis=%.2f cpu_vs_redis=%.2f payload_copy_bytes=%d server_cpu_s_per_gb=%.3f get_p50_us=%s get_p99_us=%s put_vs_am=%.2f get_vs_am=%.2f shard_scaling=%.2f put_vs_am_span=%.2f get_vs_am_span=%.2f flash_put_vs_engine=%.2f flash_get_vs_engine=%.2f"
      % (mn("get")[0], mn("put")[0], mn("tcp")[0], mn("shm")[0],
         ours / theirs if theirs else 0, copy, ours,
         lat[-1]["p50_us"] if lat else "-", lat[-1]["p99_us"] if lat else "-",
         mn("put_am")[0], mn("get_am")[0], sc_val,
         mn("put_am-mem")[0], mn("get_am-mem")[0],
         mn("flash_put")[0], mn("flash_get")[0]))
EOF
