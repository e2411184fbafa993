#!/usr/bin/env bash
# Build the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang into
# build-fuzz/, independent of the gcc Meson builds, and run each for
# SECONDS (default 5; make fuzz uses 300), all targets at once.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: wire config (default all)
#   FUZZ_COV=1 scripts/fuzz.sh ...            then line coverage of the code
#                                             under test over the corpus
#
# Each target starts from its committed seeds (tests/fuzz/corpus/<target>,
# read only) plus what earlier runs found (build-fuzz/corpus/<target>).
# A crash, leak, timeout, sanitizer report or failed invariant fails the
# script (exit 1) and prints the reproducer and the command that replays
# it. Without clang or its libFuzzer runtime it says SKIPPED and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."

secs=${1:-5}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(wire config)
out=${FUZZ_BUILD:-build-fuzz}
cc=${FUZZ_CC:-clang}

case "$secs" in ''|*[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;; esac
mkdir -p "$out"

warn=(-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
      -Wno-missing-field-initializers)
base=(-std=c17 -D_GNU_SOURCE -g "${warn[@]}" -Iinclude -Isrc)
# everything a target may need; the linker keeps what it uses
lib_src=(src/net/wire.c src/server/config.c src/common/*.c)
libs=(-linih -lisal)

# clang with a working libFuzzer runtime?
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
  > "$out/probe.c"
if ! command -v "$cc" >/dev/null 2>&1 ||
   ! "$cc" -fsanitize=fuzzer "$out/probe.c" -o "$out/probe" >/dev/null 2>&1; then
  echo "fuzz: SKIPPED ($cc with libFuzzer not available)"
  exit 0
fi

for t in "${targets[@]}"; do
  [ -f "tests/fuzz/fuzz_$t.c" ] || { echo "fuzz: no target '$t'" >&2; exit 2; }
  echo "fuzz: building fuzz_$t"
  "$cc" "${base[@]}" -O1 -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    "tests/fuzz/fuzz_$t.c" "${lib_src[@]}" "${libs[@]}" -o "$out/fuzz_$t" ||
    { echo "fuzz: build of fuzz_$t FAILED"; exit 1; }
done

# run one target; its output goes to $out/fuzz_$t.log
run_one() {
  local t=$1 dict=()
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$out/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -max_len=20000 -print_final_stats=1 "${dict[@]}" \
      -artifact_prefix="$out/artifacts/$t/" \
      "$out/corpus/$t" "tests/fuzz/corpus/$t" >"$out/fuzz_$t.log" 2>&1
}

echo "fuzz: running ${targets[*]} for ${secs}s each"
pids=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
done

failed=0
for i in "${!targets[@]}"; do
  t=${targets[$i]}
  wait "${pids[$i]}"
  rc=$?
  log="$out/fuzz_$t.log"
  execs=$(awk '/stat::number_of_executed_units:/{print $2}' "$log")
  rate=$(awk '/stat::average_exec_per_sec:/{print $2}' "$log")
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  if [ "$rc" -eq 0 ]; then
    echo "fuzz_$t: ok: ${execs:-?} execs (${rate:-?}/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}"
  else
    failed=$((failed + 1))
    repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "fuzz_$t: FAILED (exit $rc); log: $log"
    tail -n 40 "$log" | sed 's/^/  | /'
    if [ -n "$repro" ]; then
      echo "fuzz_$t: reproducer: $repro"
      echo "fuzz_$t: replay with: $out/fuzz_$t $repro"
    fi
  fi
done

if [ "${FUZZ_COV:-0}" != 0 ] && command -v llvm-profdata >/dev/null &&
   command -v llvm-cov >/dev/null; then
  for t in "${targets[@]}"; do
    "$cc" "${base[@]}" -O0 -fprofile-instr-generate -fcoverage-mapping \
      "tests/fuzz/fuzz_$t.c" tests/fuzz/standalone.c "${lib_src[@]}" \
      "${libs[@]}" -o "$out/cov_$t" || continue
    LLVM_PROFILE_FILE="$out/cov_$t.profraw" "$out/cov_$t" \
      "$out/corpus/$t" "tests/fuzz/corpus/$t" >/dev/null 2>&1
    llvm-profdata merge -o "$out/cov_$t.profdata" "$out/cov_$t.profraw"
    case "$t" in wire) under=src/net/wire.c ;; config) under=src/server/config.c ;;
                 *) under=src ;; esac
    echo "fuzz_$t: coverage of $under over its corpus:"
    llvm-cov report "$out/cov_$t" -instr-profile="$out/cov_$t.profdata" \
      "$under" | sed 's/^/  /'
  done
fi

echo "fuzz: ${#targets[@]} targets, $((${#targets[@]} - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
