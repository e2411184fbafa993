#!/usr/bin/env bash
# py-tests.sh BUILD_DIR [SUITE]... - the Python tests (tests/python) against
# BUILD_DIR's libgpucache and gpucached, each suite in its own venv with the
# pinned packages of python/requirements/SUITE.txt (scripts/py-venv.sh:
# created once in a cache folder outside the clone, then reused).
#   base  the gpucache package (numpy, pytest) and `ruff check`
#   vllm  the vLLM v1 KV connector against the real vllm package
#   sglang  the SGLang HiCache storage backend against the real sglang package
#   lmcache the LMCache remote storage plugin against the real lmcache package
# Default: every suite. Prints pytest's summary per suite, then one line
#   py-tests: N passed, N failed, N skipped
# which scripts/run-tests.sh --counted adds to the make test line. A suite
# whose venv cannot be built counts as failed, never as skipped.
set -uo pipefail
die() { echo "py-tests: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: scripts/py-tests.sh BUILD_DIR [SUITE]..."
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "$1" && pwd) || die "no build dir $1"
shift
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(base vllm sglang lmcache)
export GPUCACHE_LIB=$B/src/client/libgpucache.so GPUCACHED=$B/src/server/gpucached
[ -f "$GPUCACHE_LIB" ] && [ -x "$GPUCACHED" ] || die "build $B first (make build)"
export PYTHONPATH=$ROOT/python${PYTHONPATH:+:$PYTHONPATH}
export UCX_TLS=${UCX_TLS:-posix,cma,tcp} GPUCACHE_NO_BUILD=1
export PYTHONHASHSEED=0 # vLLM's sha256_cbor block hashes are reproducible with it
export HF_HUB_OFFLINE=1 # the vLLM tests build their model config from a local file
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
pass=0 fail=0 skip=0

# add the counts of pytest's summary line in $1 (a log)
count() {
	local line p f e s
	line=$(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error)' "$1" | tail -1)
	p=$(grep -oE '[0-9]+ passed' <<<"$line" | cut -d' ' -f1)
	f=$(grep -oE '[0-9]+ failed' <<<"$line" | cut -d' ' -f1)
	e=$(grep -oE '[0-9]+ errors?' <<<"$line" | cut -d' ' -f1)
	s=$(grep -oE '[0-9]+ skipped' <<<"$line" | cut -d' ' -f1)
	pass=$((pass + ${p:-0})) fail=$((fail + ${f:-0} + ${e:-0})) skip=$((skip + ${s:-0}))
	[ -n "$line" ]
}

for s in "${suites[@]}"; do
	echo "== python suite: $s"
	start=$SECONDS
	if ! venv=$("$ROOT/scripts/py-venv.sh" "$s"); then
		echo "py-tests: $s: venv could not be built: FAILED"
		fail=$((fail + 1))
		continue
	fi
	case $s in
	base)
		paths=("$ROOT/tests/python/test_client.py" "$ROOT/tests/python/test_sim.py"
		       "$ROOT/tests/python/test_busy.py" "$ROOT/tests/python/test_dedupe.py")
		if (cd "$ROOT" && "$venv/bin/ruff" check python tests/python); then
			pass=$((pass + 1))
		else
			echo "py-tests: ruff check: FAILED"
			fail=$((fail + 1))
		fi
		;;
	*) # the package's own tests again, now with the engine's torch
		paths=("$ROOT/tests/python/test_client.py" "$ROOT/tests/python/$s") ;;
	esac
	log=$(mktemp)
	(cd "$ROOT" && "$venv/bin/python" -m pytest -q -p no:cacheprovider "${paths[@]}") 2>&1 |
		tee "$log"
	rc=${PIPESTATUS[0]}
	f0=$fail
	if ! count "$log"; then
		echo "py-tests: $s: pytest exited $rc with no summary line: FAILED"
		fail=$((fail + 1))
	elif [ "$rc" -ne 0 ] && [ "$fail" -eq "$f0" ]; then
		echo "py-tests: $s: pytest exited $rc: FAILED"
		fail=$((fail + 1))
	fi
	rm -f "$log"
	echo "== python suite $s: $((SECONDS - start)) s"
done
echo "py-tests: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
