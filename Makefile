# GPUCache top-level Makefile: thin wrapper over Meson + Ninja that also
# installs missing Debian packages (scripts/deps.sh, idempotent).
#   make demo          install, build, start gpucached on file devices under
#                      ./var, replay the Mooncake trace through libgpucache,
#                      show the metrics, stop it cleanly
#   make test          build three times (plain, ASan+UBSan, aarch64) and run
#                      every test (aarch64 under qemu-user), plus the
#                      portability check
#   make test-python   the Python package and engine connectors (tests/python)
#                      in venvs cached under /var/cache/gpucache
#   make bench-peers   gpucached beside Mooncake Store, loopback tcp
#   make bench-engine  engine vs fio on files and zram (needs root for zram)
#   make bench-cache   hit ratio against LRU and Belady, offline and live
#   make soak / crash-long / fault-long   longer campaigns, bounded defaults

BUILD      ?= build
ASAN_BUILD ?= build-asan
MESON_OPTS ?=

.PHONY: bench-net bench-cache demo-engine all deps build build-asan test test-plain test-asan demo \
	test-python bench-peers \
	bench-engine crash-long clean

all: build

deps:
	@scripts/deps.sh build

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS) --buildtype=debugoptimized

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) $(MESON_OPTS) --buildtype=debug \
		-Db_sanitize=address,undefined -Db_lundef=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

build-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

test-plain: build
	scripts/run-tests.sh $(BUILD)

test-asan: build-asan
	scripts/run-tests.sh $(ASAN_BUILD)

# Python package and engine connectors (tests/python), each suite in a venv
# cached outside the clone (scripts/py-venv.sh); PY_SUITES picks suites.
PY_SUITES ?= base vllm sglang lmcache
test-python: build
	scripts/run-tests.sh --counted "scripts/py-tests.sh $(BUILD) $(PY_SUITES)"

test: build build-asan cross
	scripts/run-tests.sh --check "scripts/check-portable.sh --self-test" \
		--check scripts/check-portable.sh \
		--check "scripts/fuzz.sh 5" \
		--counted "scripts/py-tests.sh $(BUILD) $(PY_SUITES)" \
		$(BUILD) $(ASAN_BUILD) $(AARCH64_BUILD)

demo: build
	scripts/demo-daemon.sh $(BUILD)

demo-engine: build
	scripts/demo.sh $(BUILD)

bench-engine: build
	@scripts/deps.sh bench
	scripts/bench-engine.sh $(BUILD)

bench-net: build
	@scripts/deps.sh bench
	scripts/bench-net.sh $(BUILD)

# the cache policy: gpucache sim (LRU, Belady, ours) and the trace through
# a real daemon at 1M and 3M tokens; plot in var/bench-cache/hit-ratio.png
bench-cache: build
	@scripts/deps.sh cache
	scripts/bench-cache.sh $(BUILD)

bench-peers: build
	scripts/bench-peers.sh $(BUILD)

crash-long: build-asan
	GPC_CRASH_SEEDS=$${GPC_CRASH_SEEDS:-20000} $(ASAN_BUILD)/tests/test_crash

FUZZ_SECONDS ?= 300
.PHONY: fuzz
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz

# aarch64 (BlueField-3 Arm cores): cross build with Debian's cross toolchain
# and multiarch arm64 -dev packages (scripts/cross-deps.sh installs what is
# missing and extracts ISA-L into $(AARCH64_BUILD)/sysroot), tests under
# qemu-user; see cross/aarch64-linux-gnu.ini and docs/deploy-bluefield.md.
#   make cross           build every library, binary and test for aarch64
#   make test-aarch64    run the unit/crash/fault/func suites under qemu
#   make check-portable  no x86-only code (scripts/check-portable.sh)
AARCH64_BUILD ?= build-aarch64
CROSS_FILE    ?= cross/aarch64-linux-gnu.ini

.PHONY: cross-deps cross test-aarch64 check-portable clean-cross

cross-deps:
	@scripts/cross-deps.sh $(AARCH64_BUILD)

$(AARCH64_BUILD)/build.ninja: | cross-deps
	meson setup $(AARCH64_BUILD) $(MESON_OPTS) --buildtype=debugoptimized \
		--cross-file $(AARCH64_BUILD)/cross-paths.ini \
		--cross-file $(CROSS_FILE)

cross: cross-deps $(AARCH64_BUILD)/build.ninja
	ninja -C $(AARCH64_BUILD)

test-aarch64: cross
	scripts/run-tests.sh $(AARCH64_BUILD)

check-portable:
	@scripts/check-portable.sh --self-test
	scripts/check-portable.sh

clean-cross:
	rm -rf $(AARCH64_BUILD)
