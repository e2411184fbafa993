# GPUCache top-level Makefile: thin wrapper over Meson + Ninja that also
# installs missing Debian packages (scripts/deps.sh, idempotent).
#   make demo          install, build, format a store under ./var, run the
#                      engine benchmark on it
#   make test          build twice (plain, ASan+UBSan) and run every test
#   make bench-engine  engine vs fio on files and zram (needs root for zram)
#   make soak / crash-long / fault-long   longer campaigns, bounded defaults

BUILD      ?= build
ASAN_BUILD ?= build-asan
MESON_OPTS ?=

.PHONY: all deps build build-asan test test-plain test-asan demo \
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

test: build build-asan
	scripts/run-tests.sh $(BUILD) $(ASAN_BUILD)

demo: build
	@scripts/deps.sh bench
	scripts/demo.sh $(BUILD)

bench-engine: build
	@scripts/deps.sh bench
	scripts/bench-engine.sh $(BUILD)

crash-long: build-asan
	GPC_CRASH_SEEDS=$${GPC_CRASH_SEEDS:-20000} $(ASAN_BUILD)/tests/test_crash

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
