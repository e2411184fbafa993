#!/usr/bin/env bash
# No x86-only code: GPUCache must build and run the same on x86-64 and on
# aarch64 (BlueField-3 Arm cores). This scans our C sources and build files,
# with comments and string literals blanked out, for what would tie them to
# one architecture or to x86's strong memory ordering:
#   - SIMD intrinsics of any ISA (immintrin.h, arm_neon.h, _mm_*,
#     __builtin_ia32_*, cpuid, rdtsc): SIMD belongs behind the libraries'
#     own run-time dispatch (ISA-L, xxHash), never in our tree;
#   - inline assembly, architecture ifdefs (__x86_64__, __SSE4_2__, ...),
#     target attributes/pragmas, __builtin_cpu_supports;
#   - volatile (except volatile sig_atomic_t): it orders nothing on Arm's
#     weak memory model; shared state uses <stdatomic.h>. The legacy
#     __sync_* and raw __atomic_* builtins likewise go through stdatomic;
#   - cache-line (or SIMD) sizes as literals: alignment of 32/64/128/256 in
#     _Alignas / alignas / aligned() / posix_memalign / aligned_alloc must
#     name a constant, and at most one #define of a *CACHE*LINE* size exists;
#   - ISA flags in build files (-march=, -mavx*, -msse*, -mpclmul, -mcrc32,
#     -mtune=native) outside cross/ and the Meson cross file.
# The cross build (make cross, -Werror) and the aarch64 test run (make
# test-aarch64) check the rest: char signedness, alignment, atomics.
#
# Usage: scripts/check-portable.sh [--self-test] [ROOT]
# Prints file:line: problem for each finding; exit 1 if any, 0 if none.
# Findings already reported and awaiting a fix in src/ are listed in KNOWN
# below (file and exact code): they print as "known", do not fail, and the
# entry should go with the fix.
set -euo pipefail

if [ "${1:-}" = "--self-test" ]; then
  t=$(mktemp -d)
  trap 'rm -rf "$t"' EXIT
  mkdir -p "$t/bad/src" "$t/bad/tools" "$t/good/src"
  cat > "$t/bad/src/bad.c" <<'C'
#include <immintrin.h>
#include <arm_neon.h>
#if defined(__x86_64__)
static volatile int stop;
#endif
static _Alignas(64) char pad[64];
#define MY_CACHELINE 64
#define OTHER_CACHE_LINE_SIZE 128
void f(void) { __asm__ volatile("pause"); _mm_pause();
  __sync_fetch_and_add(&x, 1); __builtin_ia32_rdtsc();
  if (__builtin_cpu_supports("avx2")) g(); posix_memalign(&p, 64, 10); }
__attribute__((aligned(128))) int y; int z = __atomic_load_n(&y, 0);
C
  echo "add_project_arguments('-mavx2', '-march=native', language : 'c')" \
    > "$t/bad/tools/meson.build"
  cat > "$t/good/src/good.c" <<'C'
/* volatile, immintrin.h, __x86_64__ and _Alignas(64) in a comment */
#include <signal.h>
#include <stdatomic.h>
static volatile sig_atomic_t got_signal;
static const char *s = "asm volatile _mm_add __sync_x __x86_64__";
#define GPC_CACHELINE 64
static _Alignas(GPC_CACHELINE) atomic_int n;
static _Alignas(4096) char sector[4096];
C
  echo "project('x', 'c') # -march=native in a comment" > "$t/good/meson.build"
  want=17
  out=$("$0" "$t/bad" 2>&1) && { echo "$out"; echo "self-test: bad tree passed"; exit 1; }
  got=$(grep -c '^src/bad.c:\|^tools/meson.build:' <<<"$out" || true)
  if [ "$got" -ne "$want" ]; then
    echo "$out"
    echo "check-portable self-test: $got findings in the bad tree, want $want"
    exit 1
  fi
  if ! out=$("$0" "$t/good" 2>&1); then
    echo "$out"
    echo "check-portable self-test: the good tree failed"
    exit 1
  fi
  echo "check-portable self-test: ok ($got findings in the bad tree, none in the good one)"
  exit 0
fi

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
exec python3 - <<'PY'
import os, re, sys

SRC_DIRS = ["src", "include", "tools", "tests", "python"]

# (file, code with comments blanked, stripped): reported, awaiting a fix.
KNOWN = set()
C_RULES = [
    (r'#\s*include\s*<(\w*intrin|[xepstn]mmintrin|cpuid|arm_neon|arm_sve|'
     r'arm_acle|altivec)\.h>',
     "ISA intrinsics header: leave SIMD to the libraries' own dispatch"),
    (r'\b_mm(256|512)?_\w+|\b__m(128|256|512)[id]?\b|\b__builtin_ia32_\w+',
     "x86 intrinsic"),
    (r'\b(v\w+q_[usfp]\d+|vld1\w*|vst1\w*)\s*\(', "NEON intrinsic"),
    (r'\b__(rdtsc|rdtscp|cpuid\w*|get_cpuid\w*)\b', "x86-only builtin"),
    (r'\b(__asm__|__asm|asm)\b\s*(volatile|__volatile__|goto)?\s*\(',
     "inline assembly"),
    (r'\b(__x86_64__|__x86_64|__amd64__|__i386__|_M_X64|_M_IX86|__SSE\w*__|'
     r'__AVX\w*__|__aarch64__|__ARM_NEON\w*|__ARM_FEATURE_\w+)\b',
     "architecture ifdef"),
    (r'__attribute__\s*\(\(\s*(target|target_clones)\s*\(|#\s*pragma\s+GCC\s+target',
     "ISA target attribute/pragma"),
    (r'\b__builtin_cpu_(supports|is|init)\b', "x86-only CPU dispatch"),
    (r'\b__sync_\w+', "__sync builtin: use <stdatomic.h>"),
    (r'\b__atomic_\w+\s*\(', "raw __atomic builtin: use <stdatomic.h>"),
    (r'\b(_Alignas|alignas)\s*\(\s*(32|64|128|256)\s*\)',
     "literal cache-line/SIMD alignment: name the one constant"),
    (r'\baligned\s*\(\s*(32|64|128|256)\s*\)',
     "literal cache-line/SIMD alignment: name the one constant"),
    (r'\b(posix_memalign\s*\([^,]*,|aligned_alloc\s*\()\s*(32|64|128|256)\s*,',
     "literal cache-line/SIMD alignment: name the one constant"),
]
C_RULES = [(re.compile(p), m) for p, m in C_RULES]
VOLATILE = re.compile(r'\bvolatile\b')
SIG_ATOMIC = re.compile(r'\bvolatile\s+sig_atomic_t\b|\bsig_atomic_t\s+volatile\b')
ASM = re.compile(r'\b(__asm__|__asm|asm)\b')
CACHELINE_DEF = re.compile(r'#\s*define\s+(\w*CACHE_?LINE\w*)\s+\(?\s*\d+')
BUILD_FLAGS = re.compile(r'-m(arch|tune)=native|-march=(x86|i\d86|core|haswell|'
                         r'skylake|znver|sandybridge|ivybridge|broadwell|icelake)\w*|'
                         r'-mavx\w*|-msse\w*|-mpclmul|-mcrc32|-maes\b|-mbmi\w*|'
                         r'-mfma\b|-mpopcnt|-mlzcnt')

def blank(text):
    """Comments and string/char literals to spaces; newlines kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', text[i:j])); i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(' ' * (j - i)); i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + re.sub(r'[^\n]', ' ', text[i + 1:j - 1]) + c
                       if j - i >= 2 else text[i:j]); i = j
        else:
            out.append(c); i += 1
    return "".join(out)

def blank_hash_comments(text):
    return re.sub(r"#[^\n]*", lambda m: ' ' * len(m.group(0)), text)

findings, known, seen, cl_defs, nfiles = [], [], set(), [], 0
for d in SRC_DIRS:
    for dp, dns, fns in os.walk(d):
        dns[:] = sorted(x for x in dns if not x.startswith("build"))
        for fn in sorted(fns):
            p = os.path.join(dp, fn)
            if not fn.endswith((".c", ".h")):
                continue
            nfiles += 1
            with open(p, errors="replace") as f:
                lines = blank(f.read()).split("\n")
            for ln, line in enumerate(lines, 1):
                for rx, msg in C_RULES:
                    if not rx.search(line):
                        continue
                    if (p, line.strip()) in KNOWN:
                        known.append(f"{p}:{ln}: known, to fix: {msg}: "
                                     f"{line.strip()}")
                        seen.add((p, line.strip()))
                    else:
                        findings.append(f"{p}:{ln}: {msg}: {line.strip()}")
                if (VOLATILE.search(line) and not SIG_ATOMIC.search(line)
                        and not ASM.search(line)):
                    findings.append(f"{p}:{ln}: volatile orders nothing on "
                                    f"Arm: use <stdatomic.h>: {line.strip()}")
                m = CACHELINE_DEF.search(line)
                if m:
                    cl_defs.append(f"{p}:{ln}: {m.group(1)}")

if len(cl_defs) > 1:
    for c in cl_defs:
        findings.append(f"{c}: more than one cache-line size constant "
                        f"({len(cl_defs)}): keep one")

build_files = []
for dp, dns, fns in os.walk("."):
    dns[:] = sorted(x for x in dns if not (x.startswith(("build", ".")) or
                    x in ("cross", "var")))
    for fn in sorted(fns):
        if fn in ("meson.build", "meson_options.txt", "meson.options",
                  "Makefile") or fn.endswith(".mk"):
            build_files.append(os.path.normpath(os.path.join(dp, fn)))
for p in build_files:
    with open(p, errors="replace") as f:
        text = f.read()
    if not p.endswith(("Makefile", ".mk")):
        text = blank_hash_comments(text)
    for ln, line in enumerate(text.split("\n"), 1):
        if p.endswith(("Makefile", ".mk")):
            line = line.split("#", 1)[0]
        for m in BUILD_FLAGS.finditer(line):
            findings.append(f"{p}:{ln}: ISA flag {m.group(0)} in a build "
                            f"file: per-CPU tuning belongs in a cross/native "
                            f"file: {line.strip()}")

for f in known + findings:
    print(f)
for k in sorted(KNOWN - seen):
    print(f"check-portable: KNOWN entry no longer found, remove it: {k[0]}")
print(f"check-portable: {nfiles} C files, {len(build_files)} build files, "
      f"{len(findings)} problems, {len(known)} known"
      + (f"; cache-line constant: {cl_defs[0]}" if len(cl_defs) == 1 else ""))
sys.exit(1 if findings else 0)
PY
