# tern's front end. The two user commands (README.md):
#
#   make demo   install missing packages, build, run a shell pipeline and sqlite3 under tern (compared
#               with the kernel), then the crash/recover demo
#   make test   install missing packages, build, run every test; then the concurrency tests under
#               ThreadSanitizer, the unit tests under AddressSanitizer+UBSan, the crash simulator
#               (pmem trace build) and the fuzzers (CI-sized)
#
# Everything else here is a helper those two use (build, build-tsan, build-asan, test-*) or a
# maintainer target (bench, format, clean). CMake does the real work; this file only fixes the
# build directories and flags so every machine and CI runs the same thing.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := demo

# The machines have 2 cores; more jobs only thrash.
JOBS ?= 2
CTEST_JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo

# ThreadSanitizer builds use clang: gcc 12 rejects std::atomic_thread_fence under -fsanitize=thread
# (-Wtsan, an error with -Werror). The ASan tree stays on gcc so a second compiler's warnings and
# sanitizer runtime are exercised too.
TSAN_CC ?= clang
TSAN_CXX ?= clang++

# Sanitizer reports must fail the run, not scroll by.
export TSAN_OPTIONS ?= halt_on_error=1 second_deadlock_stack=1
export ASAN_OPTIONS ?= detect_leaks=1 abort_on_error=0 strict_string_checks=1
export UBSAN_OPTIONS ?= print_stacktrace=1 halt_on_error=1

comma := ,

# configure(dir, extra cmake args): Ninja for a fresh tree; a tree someone already configured keeps
# its generator (CMake refuses to switch generators in place).
define configure
	cmake -S . -B $(1) $$(test -f $(1)/CMakeCache.txt || echo -G Ninja) \
	  -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(2)
endef

# Suites and build trees run one after another even under `make -j`: each step already uses all cores.
.NOTPARALLEL:

.PHONY: demo test deps build build-tsan build-asan test-all test-tsan test-asan test-crash-sim \
  test-fuzz bench format clean

demo: deps
	$(call configure,build,)
	cmake --build build -j $(JOBS) --target tern tern_shim tern_demo
	./scripts/demo.sh build

test: test-all test-tsan test-asan test-crash-sim test-fuzz
	@echo "make test: all suites passed (build/ all, build-tsan/ concurrency, build-asan/ unit," \
	  "build-trace/ crash simulator, build-fuzz/ fuzzers)"

deps:
	./scripts/install_deps.sh

build: deps
	$(call configure,build,)
	cmake --build build -j $(JOBS)

# clang links the sanitizer runtime into executables only; a shared library (libtern.so) leaves the
# __tsan_* symbols for the executable to provide, which `-Wl,--no-undefined` rejects. `-z undefs`,
# placed last on every link line (CMAKE_CXX_STANDARD_LIBRARIES), allows that in this tree only.
build-tsan: deps
	$(call configure,build-tsan,-DTERN_SANITIZE=thread -DTERN_BUILD_BENCH=OFF \
	  -DCMAKE_C_COMPILER=$(TSAN_CC) -DCMAKE_CXX_COMPILER=$(TSAN_CXX) \
	  -DCMAKE_CXX_STANDARD_LIBRARIES=-Wl$(comma)-z$(comma)undefs)
	cmake --build build-tsan -j $(JOBS) --target tests_concurrency

build-asan: deps
	$(call configure,build-asan,-DTERN_SANITIZE=address -DTERN_BUILD_BENCH=OFF)
	cmake --build build-asan -j $(JOBS) --target tests_unit

# --no-tests=error: a suite that silently runs nothing (a missing label, a test that was not
# registered) must fail, not pass.
test-all: build
	cd build && ctest --output-on-failure --no-tests=error -j $(CTEST_JOBS)

# setarch -R: clang 14's TSan runtime aborts ("unexpected memory mapping") on kernels with more
# ASLR entropy than it expects (vm.mmap_rnd_bits > 28); without randomisation it always works.
test-tsan: build-tsan
	cd build-tsan && setarch $$(uname -m) -R \
	  ctest --output-on-failure --no-tests=error -j $(CTEST_JOBS) -L concurrency

test-asan: build-asan
	cd build-asan && ctest --output-on-failure --no-tests=error -j $(CTEST_JOBS) -L unit

# bench/run.sh builds its own Release tree (build-bench/) and writes bench/results/; pass options
# with BENCH_ARGS, e.g. `make bench BENCH_ARGS=--quick`.
BENCH_ARGS ?=
# The crash simulator needs pmem/'s trace mode, a build of its own; only the test binaries that need
# it are built there (the simulator, the planted bug, and the races landed by the trace build's
# hooks: in-place appends, the order of frees, grow-ahead wake-ups, the shared-state sweep, an attach while the file grows). Selected by name: their label (crash) also covers
# the process-kill tests, which the plain tree already runs.
test-crash-sim: deps
	$(call configure,build-trace,-DTERN_PMEM_TRACE=ON -DTERN_BUILD_BENCH=OFF)
	cmake --build build-trace -j $(JOBS) --target crash_sim_test planted_bug_test tail_race_test free_order_test grow_ahead_test state_sweep_race_test \
	  attach_grow_race_test
	cd build-trace && ctest --output-on-failure --no-tests=error -j $(CTEST_JOBS) \
	  -R '^(CrashSim|PlantedBug|TailRaceTest|FreeOrderTest|GrowAheadTest|StateSweepRaceTest|AttachGrowRaceTest)\.'

# libFuzzer targets, CI-sized (fuzz/run.sh: its own clang ASan tree in build-fuzz/, a fixed number
# of executions per target, then every saved regression input).
test-fuzz: deps
	@if [ -f fuzz/run.sh ]; then JOBS=$(JOBS) bash fuzz/run.sh; \
	else echo "make test-fuzz: no fuzz/run.sh, nothing to run"; fi

bench: deps
	@if [ -f bench/run.sh ]; then bash bench/run.sh $(BENCH_ARGS); \
	else echo "make bench: bench/run.sh does not exist yet"; exit 1; fi

format:
	@command -v clang-format >/dev/null || { echo "make format: clang-format is not installed"; exit 1; }
	git ls-files '*.h' '*.cc' | xargs -r clang-format --dry-run -Werror

clean:
	rm -rf build build-tsan build-asan build-trace build-fuzz build-bench
