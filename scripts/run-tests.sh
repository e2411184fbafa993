#!/usr/bin/env bash
# Run the whole Meson test suite in each build directory given; print one
# closing line "make test: N passed, N failed, N skipped" over all of them.
# Exit non-zero if anything failed or nothing ran.
# Usage: run-tests.sh [--check CMD]... BUILDDIR...
#   --check CMD  also run CMD (a whole-tree check such as
#                scripts/check-portable.sh); it counts as one test.
#   --counted CMD  also run CMD, a suite of its own (scripts/py-tests.sh)
#                whose last line "NAME: N passed, N failed, N skipped"
#                adds its counts; a CMD that fails without such a line,
#                or with no failure counted, counts as one failure.
# A cross build dir (e.g. build-aarch64) runs through its cross file's
# exe_wrapper (qemu-user), with timeouts scaled by GPC_CROSS_TIMEOUT_MULT
# (default 3).
set -uo pipefail
pass=0 fail=0 skip=0
checks=() counted=()
while [ $# -gt 0 ] && { [ "$1" = "--check" ] || [ "$1" = "--counted" ]; }; do
  if [ "$1" = "--check" ]; then checks+=("$2"); else counted+=("$2"); fi
  shift 2
done
for c in ${checks[@]+"${checks[@]}"}; do
  echo "== check: $c"
  if $c; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
for c in ${counted[@]+"${counted[@]}"}; do
  echo "== suite: $c"
  clog=$(mktemp)
  $c 2>&1 | tee "$clog"
  crc=${PIPESTATUS[0]}
  line=$(grep -E '^[A-Za-z-]+: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$clog" | tail -1)
  rm -f "$clog"
  read -r cp cf cs < <(sed -E 's/^[^:]*: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/' <<<"$line")
  pass=$((pass + ${cp:-0})); fail=$((fail + ${cf:-0})); skip=$((skip + ${cs:-0}))
  if [ "$crc" -ne 0 ] && [ "${cf:-0}" -eq 0 ]; then fail=$((fail + 1)); fi
done
is_cross() {
  grep -q '^cross_file = ' "$1/meson-private/cmd_line.txt" 2>/dev/null
}
for b in "$@"; do
  extra=()
  if is_cross "$b"; then
    extra=(--timeout-multiplier "${GPC_CROSS_TIMEOUT_MULT:-3}")
    echo "== tests in $b (cross: under its exe_wrapper)"
  else
    echo "== tests in $b"
  fi
  start=$SECONDS
  meson test -C "$b" --print-errorlogs --num-processes 2 ${extra[@]+"${extra[@]}"} |
    tee "$b/test-run.log"
  echo "== $b: $((SECONDS - start)) s"
  log="$b/test-run.log"
  p=$(awk '/^Ok:/{print $2}' "$log"); f=$(awk '/^Fail:/{print $2}' "$log")
  s=$(awk '/^Skipped:/{print $2}' "$log"); t=$(awk '/^Timeout:/{print $2}' "$log")
  u=$(awk '/^Unexpected Pass:/{print $3}' "$log")
  pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0} + ${t:-0} + ${u:-0}))
  skip=$((skip + ${s:-0}))
  [ -n "$p" ] || fail=$((fail + 1))
done
echo "make test: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
