#!/usr/bin/env bash
# bench-engine.sh BUILD_DIR - the flash engine against fio on the same
# devices, in one run (what `make bench-engine` runs; docs/benchmarks.md).
#
# For each medium (files on the local disk; zram, a RAM-backed block device
# that takes O_DIRECT) and each geometry (1+0 on 1 device, 4+2 on 6):
#   1. create the devices and prefill them once (fio, not measured), so that
#      neither tool writes into unwritten file extents or fresh zram pages;
#   2. REPS times: fio sequential write, `gpucache bench --format` (put
#      phase ending with a flush, then get phase), fio random read, so
#      that each engine phase runs next to the fio run it is compared to;
#   3. per repetition the ratios
#        write: engine put / (fio write x k/(k+m))   (parity is written too)
#        read:  engine get / fio random read
#      and, reported, the median of each figure and of each ratio.
# Then the index rebuild of REBUILD_BLOCKS 4 KiB blocks on open.
#
# Thread scaling (THREADS_LIST, default "1 nproc"; on zram 4+2, files 4+2
# without zram): `gpucache bench --threads N` (N engines, each over its own
# region of the same devices, as gpucached's N shards run them) against
# fio with numjobs=N, job j on the same slice of every device as engine j
# (--offset_increment = the device size / N), QD in flight per job and per
# engine, BYTES in total; THREADS_REPS repetitions, same ratios as above.
#
# Fairness: both tools do 1 MiB O_DIRECT I/O through io_uring from one
# thread with QD (32) I/Os in flight in total: fio runs one job over all
# the devices of a configuration (--filename=a:b:...), the engine keeps 32
# gets in flight. fio writes the bytes the engine puts on flash (BYTES/k
# per device) and reads BYTES at random from that region; both write the
# same payload (DATA=pattern: fio --buffer_pattern of the engine's bytes;
# DATA=random: incompressible bytes on both sides). fio's write ends with
# an fsync, as the engine's put phase ends with a flush. fio's figure is
# the better of a plain run and a --force_async=1 run (see fio_best).
#
# Environment: BENCH_DIR (var/bench), BYTES (2G, per configuration),
# REPS (3), QD (32), DATA (pattern|random), REBUILD_BLOCKS (1000000),
# MEDIA ("file zram"), THREADS_LIST ("1 $(nproc)"; "" skips it),
# THREADS_REPS (3).
set -euo pipefail
shopt -s inherit_errexit # a failure inside $(...) stops the run too

die() { echo "bench-engine: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: scripts/bench-engine.sh BUILD_DIR"
BUILD=$1
GPC=$BUILD/tools/gpucache
[ -x "$GPC" ] || die "$GPC not found: build first (make build)"
command -v fio >/dev/null || die "fio not found (apt-get install fio)"
command -v python3 >/dev/null || die "python3 not found"

BENCH_DIR=${BENCH_DIR:-var/bench}
BYTES=${BYTES:-2G}
REPS=${REPS:-3}
NPROC=$(nproc)
THREADS_LIST=${THREADS_LIST-$( [ "$NPROC" -gt 1 ] && echo "1 $NPROC" || echo 1)}
THREADS_REPS=${THREADS_REPS:-3}
QD=${QD:-32}
DATA=${DATA:-pattern}
REBUILD_BLOCKS=${REBUILD_BLOCKS:-1000000}
MEDIA=${MEDIA:-file zram}
MiB=$((1 << 20))

to_bytes() { # 4G -> bytes
	python3 - "$1" <<'EOF'
import sys
s = sys.argv[1].strip().upper()
m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
print(int(s[:-1]) * m[s[-1]] if s[-1] in m else int(s))
EOF
}
BYTES_B=$(to_bytes "$BYTES")
[ "$BYTES_B" -ge $((256 * MiB)) ] || die "BYTES must be at least 256M"
case $DATA in
pattern) FIO_DATA=(--buffer_pattern="0x$(python3 -c \
	'print(bytes((i * 131 + 7) & 255 for i in range(256)).hex())')") ;;
random) FIO_DATA=() ;;
*) die "DATA must be pattern or random" ;;
esac

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
LOG=$BENCH_DIR/bench-engine.log
: >"$LOG"
ZRAMS=() # zram indexes this run created
FILES=() # files this run created

zram_free() { # index: reset (retried: io_uring drops its references
	# asynchronously after a process exits) and remove
	local z=$1 t
	for t in $(seq 50); do
		echo 1 >"/sys/block/zram$z/reset" 2>/dev/null && break
		sleep 0.2
	done
	echo "$z" >/sys/class/zram-control/hot_remove 2>/dev/null ||
		echo "bench-engine: could not remove zram$z" >&2
}
cleanup() {
	local z
	for z in "${ZRAMS[@]}"; do zram_free "$z"; done
	ZRAMS=()
	[ ${#FILES[@]} -eq 0 ] || rm -f "${FILES[@]}"
	FILES=()
	rm -f "$BENCH_DIR/fio.json"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

zram_ok() {
	[ "$(id -u)" -eq 0 ] || { ZRAM_WHY="not root"; return 1; }
	[ -w /sys/class/zram-control/hot_add ] || modprobe zram 2>/dev/null || true
	[ -w /sys/class/zram-control/hot_add ] ||
		{ ZRAM_WHY="no /sys/class/zram-control"; return 1; }
	return 0
}

# make_devs MEDIUM N SIZE_BYTES: sets DEVS to N new devices of SIZE_BYTES.
make_devs() {
	local medium=$1 n=$2 size=$3 i z
	DEVS=()
	for ((i = 0; i < n; i++)); do
		if [ "$medium" = file ]; then
			local f=$BENCH_DIR/dev$i.img
			rm -f "$f"
			FILES+=("$f")
			fallocate -l "$size" "$f" || die "fallocate $f failed"
			DEVS+=("$f")
		else
			z=$(cat /sys/class/zram-control/hot_add) ||
				die "zram hot_add failed"
			ZRAMS+=("$z")
			echo "$size" >"/sys/block/zram$z/disksize" ||
				die "cannot size zram$z to $size bytes"
			DEVS+=("/dev/zram$z")
		fi
	done
}

# fio_run RW TOTAL_SIZE IO_SIZE [FIO_OPTION...]: prints GB/s (1e9 B/s).
fio_run() {
	local rw=$1 size=$2 io=$3 names out
	shift 3
	names=$(IFS=:; echo "${DEVS[*]}")
	out=$BENCH_DIR/fio.json
	fio --name="$rw" --filename="$names" --direct=1 --ioengine=io_uring \
		--bs=1M --iodepth="$QD" --rw="$rw" --size="$size" \
		--io_size="$io" --randrepeat=1 --end_fsync=1 "${FIO_DATA[@]}" "$@" \
		--group_reporting --output-format=json --output="$out" ||
		die "fio $rw on ${DEVS[*]} failed"
	python3 - "$out" "$rw" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
d = j["write" if sys.argv[2] == "write" else "read"]
print("%.3f" % (d["bw_bytes"] / 1e9))
EOF
}

# fio_best RW TOTAL_SIZE [IO_SIZE]: the better of two fio runs, plain
# io_uring and io_uring with every request handed to kernel workers
# (force_async=1): on zram, a synchronous device, the plain run does the
# (de)compression in fio's thread, the other spreads it over the CPUs, as
# the kernel does for some of the engine's requests. The baseline is fio's
# best, never its worse.
fio_best() {
	local a b rw=$1 size=$2 io=${3:-$2}
	shift $(($# < 3 ? $# : 3))
	a=$(fio_run "$rw" "$size" "$io" "$@")
	b=$(fio_run "$rw" "$size" "$io" "$@" --force_async=1)
	echo "fio $rw $*: plain $a, force_async $b GB/s" >>"$LOG"
	awk -v a="$a" -v b="$b" 'BEGIN { print (a > b ? a : b) }'
}
# (fio_best RW TOTAL_SIZE [IO_SIZE [FIO_OPTION...]]; IO_SIZE "" = TOTAL_SIZE)

# engine_run K M [BENCH_OPTION...]: runs the engine bench, prints its
# RESULT fields.
engine_run() {
	local out k=$1 m=$2
	shift 2
	out=$("$GPC" bench --format -k "$k" -m "$m" --bytes "$BYTES_B" \
		--qd "$QD" --data "$DATA" "$@" "${DEVS[@]}" 2>&1) || {
		echo "$out" >&2
		die "gpucache bench failed on ${DEVS[*]}"
	}
	echo "$out" >>"$LOG"
	grep '^RESULT ' <<<"$out" | sed 's/^RESULT //'
}

calc() { awk "BEGIN { printf \"${2:-%.3f}\", $1 }"; }
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }
median() {
	printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {
		if (NR % 2) print a[(NR + 1) / 2]
		else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
spread() { printf '%s\n' "$@" | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%s..%s", lo, hi}'; }

ROWS=()      # table lines
WRATIOS=()   # write ratios
RRATIOS=()   # read ratios
ECS=()       # ec+crc s/GB of the k+m>1 configurations

# rep_note R K N RES: one repetition's engine figures and ratios, appended
# to the calling bench function's fw fr ep eg wr rr arrays (bash scoping:
# its locals are ours), and its line of the log.
rep_note() {
	local r=$1 k=$2 n=$3 res=$4
	[ "$(field errors "$res")" = 0 ] || die "engine read errors: $res"
	ep+=("$(field put_gbps "$res")")
	eg+=("$(field get_gbps "$res")")
	wr+=("$(calc "${ep[-1]} / (${fw[-1]} * $k / $n)")")
	rr+=("$(calc "${eg[-1]} / ${fr[-1]}")")
	echo "   rep $r: fio write ${fw[-1]} read ${fr[-1]} GB/s;" \
		"engine put ${ep[-1]} get ${eg[-1]} GB/s;" \
		"ratios ${wr[-1]} ${rr[-1]}"
}

# bench_config MEDIUM K M
bench_config() {
	local medium=$1 k=$2 m=$3 n=$(($2 + $3))
	local region=$((BYTES_B / k / MiB * MiB)) dev_size r res
	local fw=() fr=() ep=() eg=() ec=() crc=() wr=() rr=()
	# the engine's data on a device is ~1.04x the region (record headers,
	# summaries, an open segment); room for more, so nothing is evicted
	dev_size=$(((region + region / 4 + 64 * MiB) / MiB * MiB))
	echo "== $medium $k+$m: $n device(s) of $((dev_size / MiB)) MiB," \
		"$((BYTES_B / MiB)) MiB of 1 MiB blocks, qd $QD, $DATA data"
	make_devs "$medium" "$n" "$dev_size"
	[ "$medium" = file ] || echo "   zram compression:" \
		"$(sed 's/.*\[\(.*\)\].*/\1/' "/sys/block/${DEVS[0]#/dev/}/comp_algorithm")"
	fio_run write $((dev_size * n)) $((dev_size * n)) >/dev/null # prefill
	for ((r = 1; r <= REPS; r++)); do
		fw+=("$(fio_best write $((region * n)))")
		res=$(engine_run "$k" "$m")
		fr+=("$(fio_best randread $((region * n)) "$BYTES_B")")
		[ "$(field segs_evicted "$res")" = 0 ] ||
			echo "bench-engine: warning: segments evicted: $res" >&2
		ec+=("$(field ec_cpu_s_per_gb "$res")")
		crc+=("$(field crc_cpu_s_per_gb "$res")")
		rep_note "$r" "$k" "$n" "$res"
	done
	cleanup
	local mfw mec mcrc
	mfw=$(median "${fw[@]}")
	mec=$(median "${ec[@]}"); mcrc=$(median "${crc[@]}")
	WRATIOS+=("$(median "${wr[@]}")"); RRATIOS+=("$(median "${rr[@]}")")
	[ "$m" -eq 0 ] || ECS+=("$(calc "$mec + $mcrc" %.4f)")
	ROWS+=("$(printf '| %s %s+%s | %s (%s) | %s | %s (%s) | **%s** (%s) | %s (%s) | %s (%s) | **%s** (%s) | %s | %s |' \
		"$medium" "$k" "$m" "$mfw" "$(spread "${fw[@]}")" \
		"$(calc "$mfw * $k / $n")" "$(median "${ep[@]}")" \
		"$(spread "${ep[@]}")" "${WRATIOS[-1]}" "$(spread "${wr[@]}")" \
		"$(median "${fr[@]}")" "$(spread "${fr[@]}")" \
		"$(median "${eg[@]}")" "$(spread "${eg[@]}")" "${RRATIOS[-1]}" \
		"$(spread "${rr[@]}")" "$mec" "$mcrc")")
}

TROWS=()     # thread-scaling table lines
declare -A TW TR # thread count -> median write / read ratio

# bench_threads MEDIUM K M N: N engine threads against fio numjobs=N.
bench_threads() {
	local medium=$1 k=$2 m=$3 nt=$4 n=$(($2 + $3))
	local region=$((BYTES_B / k / MiB * MiB)) dev_size inc r res
	local fw=() fr=() ep=() eg=() wr=() rr=() jobs
	dev_size=$(((region + region / 4 + 64 * MiB * nt) / MiB * MiB))
	inc=$((dev_size / nt / MiB * MiB))
	jobs=(--numjobs="$nt" --offset_increment="$inc")
	echo "== threads: $medium $k+$m, $nt engine thread(s) vs fio numjobs=$nt," \
		"$((BYTES_B / MiB)) MiB in all, qd $QD each"
	make_devs "$medium" "$n" "$dev_size"
	fio_run write $((dev_size * n)) $((dev_size * n)) >/dev/null # prefill
	for ((r = 1; r <= THREADS_REPS; r++)); do
		fw+=("$(fio_best write $((region * n / nt)) "" "${jobs[@]}")")
		res=$(engine_run "$k" "$m" --threads "$nt")
		fr+=("$(fio_best randread $((region * n / nt)) $((BYTES_B / nt)) "${jobs[@]}")")
		rep_note "$r" "$k" "$n" "$res"
	done
	cleanup
	TW[$nt]=$(median "${wr[@]}")
	TR[$nt]=$(median "${rr[@]}")
	TROWS+=("$(printf '| %s %s+%s | %s | %s (%s) | %s (%s) | **%s** (%s) | %s (%s) | %s (%s) | **%s** (%s) |' \
		"$medium" "$k" "$m" "$nt" "$(median "${fw[@]}")" "$(spread "${fw[@]}")" \
		"$(median "${ep[@]}")" "$(spread "${ep[@]}")" "${TW[$nt]}" "$(spread "${wr[@]}")" \
		"$(median "${fr[@]}")" "$(spread "${fr[@]}")" \
		"$(median "${eg[@]}")" "$(spread "${eg[@]}")" "${TR[$nt]}" "$(spread "${rr[@]}")")")
}

# rebuild_run MEDIUM: fills a 1+0 store with REBUILD_BLOCKS 4 KiB blocks
# and times the index rebuild of a fresh open.
rebuild_run() {
	local medium=$1 size out
	# 8 KiB per block on flash (record header + data) plus summaries
	size=$(((REBUILD_BLOCKS * 8448 * 9 / 8 + 256 * MiB) / MiB * MiB))
	echo "== rebuild: $REBUILD_BLOCKS blocks of 4 KiB, 1+0 on $medium" \
		"($((size / MiB)) MiB)"
	make_devs "$medium" 1 "$size"
	out=$("$GPC" bench --format -k 1 -m 0 --rebuild-blocks "$REBUILD_BLOCKS" \
		"${DEVS[@]}" 2>&1) || { echo "$out" >&2; die "rebuild bench failed"; }
	echo "$out" >>"$LOG"
	cleanup
	grep -v '^RESULT' <<<"$out" | sed 's/^/   /'
	REB=$(grep '^RESULT ' <<<"$out")
	[ "$(field rebuild_blocks "$REB")" = "$REBUILD_BLOCKS" ] ||
		echo "bench-engine: warning: $(field rebuild_blocks "$REB") of" \
			"$REBUILD_BLOCKS blocks indexed (device too small?)" >&2
}

echo "bench-engine: $(nproc) CPUs, $(uname -r), $(fio --version), $(date -u +%FT%TZ)," \
	"load average $(cut -d' ' -f1-3 /proc/loadavg)"
HAVE_ZRAM=0
for medium in $MEDIA; do
	if [ "$medium" = zram ]; then
		if ! zram_ok; then
			echo "== zram: SKIPPED ($ZRAM_WHY): no zram figures in this run"
			continue
		fi
		HAVE_ZRAM=1
	fi
	bench_config "$medium" 1 0
	bench_config "$medium" 4 2
done
[ ${#ROWS[@]} -gt 0 ] || die "no configuration ran (MEDIA=$MEDIA)"
if [ -n "$THREADS_LIST" ]; then
	tmedium=file
	[ $HAVE_ZRAM = 1 ] && tmedium=zram
	for nt in $THREADS_LIST; do bench_threads "$tmedium" 4 2 "$nt"; done
fi
if [ $HAVE_ZRAM = 1 ]; then rebuild_run zram; else rebuild_run file; fi

echo
echo "Medians of $REPS repetitions (min..max). GB/s = 1e9 bytes/s. Write bound ="
echo "fio write x k/(k+m); ratios are per repetition (engine / fio run beside it)."
echo "cpu: engine CPU seconds per GB of blocks put once and read once, for"
echo "erasure coding and for checksums (CRC32C)."
echo
echo "| config | fio write GB/s | bound | engine put GB/s | put/bound | fio randread GB/s | engine get GB/s | get/fio | ec s/GB | crc s/GB |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for row in "${ROWS[@]}"; do echo "$row"; done
echo
wmin=$(printf '%s\n' "${WRATIOS[@]}" | sort -g | head -1)
rmin=$(printf '%s\n' "${RRATIOS[@]}" | sort -g | head -1)
ecw=$(printf '%s\n' "${ECS[@]:-nan}" | sort -g | tail -1)
ipb=$(field index_bytes_per_block "$REB")
rbs=$(field rebuild_s "$REB")
rblk=$(field rebuild_blocks "$REB")
echo "index: $ipb DRAM bytes per indexed block (goal <= 32);" \
	"rebuild of $rblk blocks on open: $rbs s (goal <= 2 s)"
if [ ${#TROWS[@]} -gt 0 ]; then
	echo
	echo "Thread scaling: N engine threads (gpucached's shard regions) vs fio numjobs=N;"
	echo "medians of $THREADS_REPS repetitions (min..max), fio = the better of plain and force_async."
	echo
	echo "| config | N | fio write GB/s | engine put GB/s | put/bound | fio randread GB/s | engine get GB/s | get/fio |"
	echo "|---|---|---|---|---|---|---|---|"
	for row in "${TROWS[@]}"; do echo "$row"; done
	echo
fi
tmax=$(printf '%s\n' $THREADS_LIST | sort -g | tail -1)
[ "$tmax" = "$NPROC" ] || [ -z "$tmax" ] ||
	echo "bench-engine: note: threads ratios are at N=$tmax, not nproc=$NPROC" >&2
echo "ec_cpu_s_per_gb below = erasure coding + checksums, worst k+m>1 configuration"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "RESULT write_vs_fio=$wmin read_vs_fio=$rmin index_bytes_per_block=$ipb" \
	"rebuild_1m_blocks_s=$rbs ec_cpu_s_per_gb=$ecw" \
	"write_vs_fio_threads=${TW[$tmax]:-nan} read_vs_fio_threads=${TR[$tmax]:-nan}"
