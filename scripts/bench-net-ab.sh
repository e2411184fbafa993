#!/usr/bin/env bash
# bench-net-ab.sh BUILD_A BUILD_B - two gpucached builds (or two sets of
# flags) in one run, interleaved: ROUNDS rounds of bench-net.sh on A and
# on B (the order alternating per round), same client tools, same
# baselines; prints per shape the median GB/s of A and B and B/A.
#
# What differs between A and B: the gpucached binary (BUILD_A/src/server
# vs BUILD_B/src/server) and A_ARGS / B_ARGS (extra gpucached flags, e.g.
# "--set server.poll_spin_us=0"). Tools come from BUILD_B/tools.
# Environment: ROUNDS (3), and bench-net.sh's own (TRANSPORTS, TIERS,
# SIZES, THREADS, SECONDS_PER...; the defaults here are a short subset:
# TIERS=dram, UCX_MODES=am, REDIS=0, SCALE=0).
set -euo pipefail
die() { echo "bench-net-ab: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: scripts/bench-net-ab.sh BUILD_A BUILD_B"
A=$1 B=$2
ROUNDS=${ROUNDS:-3}
OUT=${BENCH_DIR:-var/bench-net}-ab
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: >"$OUT/ab.txt"
export TIERS=${TIERS:-dram} UCX_MODES=${UCX_MODES:-am} REDIS=${REDIS:-0}
export SCALE=${SCALE:-0} BENCH_NET_BIN=$B/tools
here=$(dirname "$0")
read -r _ u0 n0 s0 i0 _ </proc/stat
echo "bench-net-ab: A=$A (${A_ARGS:-}) B=$B (${B_ARGS:-}), $ROUNDS rounds, load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= ROUNDS; r++)); do
	order="A B"
	[ $((r % 2)) -eq 0 ] && order="B A"
	for v in $order; do
		if [ "$v" = A ]; then build=$A args=${A_ARGS:-}; else build=$B args=${B_ARGS:-}; fi
		echo "== round $r: $v"
		EXTRA_GPC_ARGS=$args BENCH_DIR=$OUT/run "$here/bench-net.sh" "$build" \
			>"$OUT/round$r-$v.log" 2>&1 || { tail "$OUT/round$r-$v.log"; die "bench-net failed"; }
		grep -E '^(gpc|ucx) ' "$OUT/run/results.txt" | grep -v 'latency=1\|compare=1' |
			sed "s/^/$v /" >>"$OUT/ab.txt"
		grep '^RESULT' "$OUT/round$r-$v.log" | sed "s/^/  $v /"
	done
done
read -r _ u1 n1 s1 i1 _ </proc/stat
echo "bench-net-ab: machine busy $(( 100 * ((u1 + n1 + s1) - (u0 + n0 + s0)) / ((u1 + n1 + s1 + i1) - (u0 + n0 + s0 + i0)) ))% over the run, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT/ab.txt" <<'EOF'
import sys, statistics
from collections import defaultdict
g = defaultdict(list)
for line in open(sys.argv[1]):
    w = line.split()
    v, kind = w[0], w[1]
    d = dict(kv.split("=", 1) for kv in w[2:] if "=" in kv)
    who = v if kind == "gpc" else "am" if d.get("mode") == "am" else "rma"
    key = (d["transport"], d["tier"], int(d["size"]), int(d["threads"]),
           d["op"] + ("/" + d["batch"] if d.get("batch", "1") != "1" else ""))
    g[key, who].append(float(d["gbps"]))
    if kind == "gpc":
        g[key, v + "cpu"].append(float(d["srv_cpu_s_per_gb"]))
        g[key, v + "p99"].append(float(d["p99_us"]))
med = lambda k: statistics.median(g[k]) if g.get(k) else 0.0
print("\nmedians over rounds; GB/s; s/GB = server CPU per GB; B/A per shape")
print("%-4s %-5s %-5s %-3s %-6s | %6s %6s %6s | %7s %7s | %6s %6s | %9s %9s"
      % ("tp", "tier", "size", "thr", "op", "A", "B", "B/A", "UCX am", "B/am", "A s/GB", "B s/GB", "A p99_us", "B p99_us"))
ratios = []
for key in sorted({k for k, _ in g}):
    a, b, am = med((key, "A")), med((key, "B")), med((key, "am"))
    if a:
        ratios.append(b / a)
    print("%-4s %-5s %-5s %-3d %-6s | %6.2f %6.2f %6.2f | %7.2f %7.2f | %6.3f %6.3f | %9.0f %9.0f"
          % (key[0], key[1], "%dK" % (key[2] >> 10), key[3], key[4], a, b, b / a if a else 0,
             am, b / am if am else 0, med((key, "Acpu")), med((key, "Bcpu")),
             med((key, "Ap99")), med((key, "Bp99"))))
if ratios:
    print("B/A over shapes: geometric mean %.2f, min %.2f, max %.2f"
          % (statistics.geometric_mean(ratios), min(ratios), max(ratios)))
EOF
