# gort — the front door. `make demo` and `make test` are all a new machine needs.
.PHONY: all demo build test test-release test-asan test-tsan test-arm64 test-consumer bench bench-http bench-scaling bench-quick deps clean

JOBS ?= $(shell nproc)
BUILD := build/release

all: build

deps:
	@scripts/deps.sh build

# Builds in Release and runs the flagship example: a tour of what gort does.
demo: deps build
	@$(BUILD)/examples/tour

build:
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-g -DGORT_BUILD_BENCH=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Every test: Release, ASan, TSan, arm64 under qemu, and a consumer of the installed package.
test:
	@scripts/deps.sh test
	@scripts/test-all.sh

test-release test-asan test-tsan test-arm64 test-consumer:
	@scripts/deps.sh test
	@GORT_TEST_STAGES=$(patsubst test-%,%,$@) scripts/test-all.sh

# gort against Go (and Boost.Fiber) on the same workloads, interleaved; prints ratios.
bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	@python3 bench/compare.py $(BUILD)

# fib's scaling curve, maxprocs 1, 2, 4, 8 and 16, beside Go's (for a machine with 16+ cores;
# bench/device-scaling.sh packs and runs the same on one that cannot build).
bench-scaling:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	@python3 bench/compare.py $(BUILD) --impls gort,go --filter '^fib/' --procs 1,2,4,8,16

# gort's examples/http_hello against Go's net/http under wrk (bench/http_compare.py).
bench-http:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	@python3 bench/http_compare.py $(BUILD)

clean:
	rm -rf build
