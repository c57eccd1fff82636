# The two commands a new user runs (see README): `make bench` and `make test`.
# Each installs what is missing (Debian/Ubuntu packages via apt-get; root or sudo), then works.

SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
APT_PACKAGES := liblz4-dev pkg-config

.PHONY: all deps build test bench bench-full benchmarks compression-probe clean

all: build

# Installs the system libraries the package links (liblz4) when pkg-config cannot find them.
deps:
	@if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists liblz4; then \
		echo "make: installing $(APT_PACKAGES)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi

build: deps
	$(SWIFT) build

# Every test of every module: build once, then run. Also compiles the benchmark runner so it
# cannot fall behind the library's API (cheap: it does not build the benchmark harness).
test: deps
	cd Benchmarks && $(SWIFT) build --product annals-headline
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# Release build of the benchmark runner, then the headline append/replay table on a temporary
# store (writes bench-results/latest.json). `make bench-full` runs the 10M-event sizes.
bench: deps
	cd Benchmarks && $(SWIFT) build -c release --product annals-headline
	Benchmarks/.build/release/annals-headline

bench-full: deps
	cd Benchmarks && $(SWIFT) build -c release --product annals-headline
	Benchmarks/.build/release/annals-headline --full

# The package-benchmark suites (append batch sizes × durability, replay).
benchmarks: deps
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark

# The LZ4 scheme measurements behind format version 2 (Tools/compression-probe).
compression-probe: deps
	cd Benchmarks && $(SWIFT) build -c release --product annals-headline
	Benchmarks/.build/release/annals-headline corpus /tmp/annals-corpus.bin 300000
	$(CC) -O2 -o /tmp/annals-compression-probe Tools/compression-probe/probe.c -llz4
	/tmp/annals-compression-probe /tmp/annals-corpus.bin

clean:
	rm -rf .build Benchmarks/.build bench-results
