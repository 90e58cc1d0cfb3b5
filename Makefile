# The two commands: `make demo` and `make test`. Both install dependencies
# (Debian packages, scripts/install-deps) and build first.
BUILD_DIR ?= build
FUZZ_DIR ?= build-fuzz
BUILD_TYPE ?= RelWithDebInfo
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc)

.PHONY: all deps configure build fuzz-build test fuzz demo up down bench asan tsan format clean

all: build

deps:
	scripts/install-deps

configure: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The fuzz targets build with clang in their own folder (ASan+UBSan, libFuzzer).
fuzz-build: deps
	cmake -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 -DMOA_FUZZ=ON -DMOA_WERROR=OFF
	cmake --build $(FUZZ_DIR) --target moa_fuzzers -j $(JOBS)

# Every test, then every fuzz target for a bounded time (20 s each).
test: build fuzz-build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) --timeout 300
	ctest --test-dir $(FUZZ_DIR) -L fuzz --output-on-failure -j $(JOBS)

# The fuzz targets for longer: FUZZ_SECONDS each (default 10 minutes).
FUZZ_SECONDS ?= 600
fuzz: fuzz-build
	MOA_FUZZ_SECONDS=$(FUZZ_SECONDS) ctest --test-dir $(FUZZ_DIR) -L fuzz --output-on-failure -V

CONFIG ?= deploy/local/cluster.yaml

demo: build
	BUILD_DIR=$(abspath $(BUILD_DIR)) deploy/local/cluster.sh demo $(CONFIG)

up: build
	BUILD_DIR=$(abspath $(BUILD_DIR)) deploy/local/cluster.sh up $(CONFIG)

down:
	deploy/local/cluster.sh down

bench: build
	bench/run-benchmarks.sh $(BUILD_DIR)

# Sanitizer builds live in their own build folders.
asan:
	$(MAKE) test BUILD_DIR=build-asan CMAKE_FLAGS=-DMOA_ASAN=ON BUILD_TYPE=Debug
tsan:
	$(MAKE) test BUILD_DIR=build-tsan CMAKE_FLAGS=-DMOA_TSAN=ON BUILD_TYPE=Debug

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(FUZZ_DIR) build-asan build-tsan
