#!/usr/bin/env bash
# demo.sh BUILD_DIR - what `make demo-engine` runs: the engine alone:
# format a small store of 4 file-backed devices (3+1) under ./var/demo,
# run the engine benchmark on it, then `gpucache stat` and `gpucache fsck`,
# explaining each step. The store is left in place to poke at.
#
# Environment: DEMO_DIR (var/demo), DEMO_DEV_SIZE (1G per device),
# DEMO_BYTES (512M put then read back by the benchmark).
set -euo pipefail

die() { echo "demo: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: scripts/demo.sh BUILD_DIR"
GPC=$1/tools/gpucache
[ -x "$GPC" ] || die "$GPC not found: build first (make build)"
DIR=${DEMO_DIR:-var/demo}
SIZE=${DEMO_DEV_SIZE:-1G}
BYTES=${DEMO_BYTES:-512M}
mkdir -p "$DIR" || die "cannot create $DIR"
DEVS=("$DIR"/dev{0..3}.img)

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B= N=; fi
say() { printf '\n%s%s%s\n' "$B" "$*" "$N"; }
run() { echo "\$ $*"; "$@"; }
trap 'echo "demo: failed; the store under $DIR may be incomplete" >&2' ERR

say "1. Format: 4 file-backed devices of $SIZE as one store, 3+1 (each segment is a stripe of 3 data chunks and 1 parity chunk, so any one device can be lost)."
run "$GPC" format -k 3 -m 1 --size "$SIZE" "${DEVS[@]}"

say "2. Benchmark: put $BYTES of 1 MiB blocks (copied into the DRAM write buffer, sealed into erasure-coded segments, written with O_DIRECT through io_uring and flushed), then read them back at random, 32 gets in flight, each one checked."
run "$GPC" bench --bytes "$BYTES" --qd 32 "${DEVS[@]}"
echo "(put/get: GB/s seen by the caller; write amplification counts parity and metadata; cpu: the engine's own cost per GB; index: the DRAM the engine keeps per block (its table is sized for a full store, so a nearly empty one shows more); RESULT: the same, for scripts. This store lives on files of the local disk, so the figures are the disk's: see docs/benchmarks.md for the engine against fio.)"

say "3. Stat: open the store read-only. The index was rebuilt from the segment summaries on flash (the 'recovery' line), as after a restart."
run "$GPC" stat "${DEVS[@]}"

say "4. Fsck: read back and verify every segment, chunk (CRC32C) and block."
run "$GPC" fsck "${DEVS[@]}"

say "Done. The store is in $DIR ($(du -sh "$DIR" | cut -f1) on disk); remove it with: rm -rf $DIR"
