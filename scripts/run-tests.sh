#!/usr/bin/env bash
# Run the whole Meson test suite in each build directory given; print one
# closing line "make test: N passed, N failed, N skipped" over all of them.
# Exit non-zero if anything failed or nothing ran.
set -uo pipefail
pass=0 fail=0 skip=0
for b in "$@"; do
  echo "== tests in $b"
  meson test -C "$b" --print-errorlogs --num-processes 2 | tee "$b/test-run.log"
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
