#!/usr/bin/env bash
# bench-peers.sh BUILD_DIR [ARGS...] - what `make bench-peers` runs: gpucached
# beside Mooncake Store (mooncake-transfer-engine-non-cuda from PyPI, in a
# venv cached outside the clone by scripts/py-venv.sh), both over loopback
# TCP, same block sizes and batches (tools/bench_peers.py; ARGS go to it:
# --sizes 256K,2M --total 128M --batch 32 --rounds 2). The last line is
#   RESULT put_vs_mooncake=<r> get_vs_mooncake=<r>
set -euo pipefail
die() { echo "bench-peers: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: scripts/bench-peers.sh BUILD_DIR [ARGS...]"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "$1" && pwd) || die "no build dir $1"
shift
export GPUCACHE_LIB=$B/src/client/libgpucache.so GPUCACHED=$B/src/server/gpucached
[ -f "$GPUCACHE_LIB" ] && [ -x "$GPUCACHED" ] || die "build $B first (make build)"
venv=$("$ROOT/scripts/py-venv.sh" mooncake) || die "the mooncake venv could not be built"
export PYTHONPATH=$ROOT/python GPUCACHE_NO_BUILD=1
exec "$venv/bin/python" "$ROOT/tools/bench_peers.py" "$@"
