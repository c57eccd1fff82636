# The two commands a new user runs (see README): `make bench` and `make test`.
# Each installs what is missing (Debian/Ubuntu packages via apt-get; root or sudo), then works.

SWIFT ?= swift
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
APT_PACKAGES := liblz4-dev librdkafka-dev pkg-config
# Only the Benchmarks package links these: the peers `make bench` compares Annals with.
BENCH_APT_PACKAGES := libsqlite3-dev liblmdb-dev

SHELL := /bin/bash
.PHONY: all deps bench-deps python-deps build test docs tsan fuzz fuzz-tests fuzz-build fuzz-libfuzzer torture bench bench-full benchmarks benchmarks-check compression-probe clean

all: build

# Installs the system libraries the package links (liblz4; librdkafka for AnnalsKafka and
# `annals publish`) when pkg-config cannot find them.
deps:
	@if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists liblz4 rdkafka; then \
		echo "make: installing $(APT_PACKAGES)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi

bench-deps: deps
	@if ! pkg-config --exists sqlite3 lmdb; then \
		echo "make: installing $(BENCH_APT_PACKAGES)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(BENCH_APT_PACKAGES); \
	fi

# The Python reader's dependencies (PyPI lz4, and cryptography for encrypted stores, format
# version 7): pip where it works, else Debian's packages.
python-deps:
	@if ! $(PYTHON) -c 'import lz4.block' >/dev/null 2>&1; then \
		echo "make: installing the Python lz4 package"; \
		if command -v $(PYTHON) >/dev/null 2>&1 && PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install -q lz4 >/dev/null 2>&1; then :; \
		else $(SUDO) apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends python3 python3-lz4; fi; \
		$(PYTHON) -c 'import lz4.block' || { echo "make: $(PYTHON) cannot import lz4 (try: $(PYTHON) -m pip install lz4)"; exit 1; }; \
	fi
	@if ! $(PYTHON) -c 'from cryptography.hazmat.primitives.ciphers.aead import AESGCM' >/dev/null 2>&1; then \
		echo "make: installing the Python cryptography package"; \
		if command -v $(PYTHON) >/dev/null 2>&1 && PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install -q cryptography >/dev/null 2>&1; then :; \
		else $(SUDO) apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends python3 python3-cryptography; fi; \
		$(PYTHON) -c 'from cryptography.hazmat.primitives.ciphers.aead import AESGCM' || { echo "make: $(PYTHON) cannot import cryptography (try: $(PYTHON) -m pip install cryptography)"; exit 1; }; \
	fi

build: deps
	$(SWIFT) build

# Every test of every module: build once, then run. Also compiles the benchmark runner so it
# cannot fall behind the library's API (cheap: it does not build the benchmark harness), and
# runs the Python reader's tests against stores the built `annals` writes and the fixtures.
test: bench-deps python-deps
	cd Benchmarks && $(SWIFT) build --product annals-headline
	$(SWIFT) build --build-tests
	$(PYTHON) Tools/doc-check/check_doc_comments.py
	ANNALS_BIN=$(CURDIR)/.build/debug/annals $(PYTHON) -m unittest discover -s Tools/python-reader/tests
	$(SWIFT) test --skip-build
	$(MAKE) docs

# The DocC catalogs of the three library modules, with warnings as errors (a broken symbol link
# fails). The docc plugin is resolved only here (ANNALS_DOCS), in a build directory of its own.
DOCS_MODULES = AnnalsStorage Annals AnnalsKafka
docs: deps
	ANNALS_DOCS=1 $(SWIFT) package --scratch-path .build-docs generate-documentation \
		$(foreach module,$(DOCS_MODULES),--target $(module)) --warnings-as-errors \
		--disable-indexing

# The concurrency-heavy tests under Thread Sanitizer (a separate build directory), with pthread
# locks in place of Synchronization.Mutex, whose synchronization TSan cannot see on Linux.
tsan: deps
	$(SWIFT) build --build-tests --sanitize=thread -Xswiftc -DANNALS_PTHREAD_LOCKS --scratch-path .build-tsan
	$(SWIFT) test --skip-build --sanitize=thread -Xswiftc -DANNALS_PTHREAD_LOCKS --scratch-path .build-tsan \
		--filter 'ConcurrencyTests|SubscriptionTests|ProjectionTests|RepositoryTests|IndexFileTests|CompressionTests|CompactionTests|FaultInjectionTests|FaultPlanTests|ReadViewTests|ProjectionWaitTests|ObservabilityTests|TracingTests|CommandContextTests|ArchiveTests|QueryTests|ConditionalAppendTests|DecisionTests|EncryptionTests|ReadAheadTests|LZ4DictionaryCopyTests|StagedFramesTests|EventIDGeneratorTests'

# Long torture: `annals import` and `annals compact` killed TORTURE_KILLS times (every committed
# batch checked after each kill; make test runs 4), and SIMULATION_RUNS workloads of 20
# simulated crashes each (make test runs 24 + 12).
TORTURE_KILLS ?= 200
SIMULATION_RUNS ?= 500
torture: deps
	$(SWIFT) build --build-tests
	ANNALS_TORTURE_KILLS=$(TORTURE_KILLS) ANNALS_SIMULATION_RUNS=$(SIMULATION_RUNS) \
		$(SWIFT) test --skip-build --filter 'KillTests|CompactionCrashTests|CrashSimulationTests'


# Fuzzing, bounded in time. First the seeded mutation tests past the checksums (frames, LZ4
# blocks, dictionary references, index files) and the corruption sweeps under AddressSanitizer
# (leak detection off: XCTest's own runner leaks 144 bytes at exit); then the libFuzzer targets
# of Tests/AnnalsStorageTests/Fuzzing (frames, index, lz4, records, open), FUZZ_SECONDS each, from
# seeds made of the golden stores plus every input that ever crashed one (Tests/Fixtures/fuzz).
# A crash leaves .build-fuzz/crash-<target>-*: copy it to Tests/Fixtures/fuzz/<target>/, where
# `make test` replays it for ever (FuzzRegressionTests).
FUZZ_ITERATIONS ?= 5000
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := frames index lz4 records open
FUZZ_DIR := .build-fuzz
fuzz: fuzz-tests fuzz-libfuzzer

fuzz-tests: deps
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=detect_leaks=0 ANNALS_FUZZ_ITERATIONS=$(FUZZ_ITERATIONS) \
		$(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan \
		--filter 'StructuredFuzzTests|CorruptionSweepTests|CompressionTests|LZ4Tests|BlockCompressorTests|FuzzRegressionTests'

# The libFuzzer binary: the AnnalsStorage module compiled with the fuzz targets (a test file,
# never part of the library) and Tools/fuzz/Entry.swift by swiftc (-sanitize=fuzzer,address),
# its C helpers by clang with the same instrumentation.
fuzz-build: deps
	mkdir -p $(FUZZ_DIR)/modules/CAnnalsSupport $(FUZZ_DIR)/obj
	printf 'module CAnnalsSupport {\n    header "%s"\n    header "%s"\n    export *\n}\n' \
		"$(CURDIR)/Sources/CAnnalsSupport/include/AnnalsSupport.h" "$(CURDIR)/Sources/CAnnalsSupport/include/AnnalsSyscalls.h" \
		> $(FUZZ_DIR)/modules/CAnnalsSupport/module.modulemap
	for source in Sources/CAnnalsSupport/*.c; do \
		clang -c -O1 -g -fsanitize=address,fuzzer-no-link -ISources/CAnnalsSupport/include $$source \
			-o $(FUZZ_DIR)/obj/$$(basename $$source .c).o || exit 1; \
	done
	swiftc -sanitize=fuzzer,address -parse-as-library -g -Onone -module-name AnnalsStorage -D ANNALS_FUZZ_BUILD \
		-I $(FUZZ_DIR)/modules/CAnnalsSupport -I Sources/CLZ4 \
		$$(find Sources/AnnalsStorage -name '*.swift' | sort) Tests/AnnalsStorageTests/Fuzzing/FuzzTargets.swift \
		Tools/fuzz/Entry.swift $(FUZZ_DIR)/obj/*.o -llz4 \
		-o $(FUZZ_DIR)/annals-fuzz

fuzz-libfuzzer: fuzz-build
	rm -rf $(FUZZ_DIR)/seeds && $(PYTHON) Tools/fuzz/seeds.py $(FUZZ_DIR)/seeds
	for target in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$target; \
		cp Tests/Fixtures/fuzz/$$target/* $(FUZZ_DIR)/seeds/$$target/ 2>/dev/null; \
		echo "fuzz: $$target for $(FUZZ_SECONDS) s"; \
		SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 ANNALS_FUZZ_TARGET=$$target $(FUZZ_DIR)/annals-fuzz -max_total_time=$(FUZZ_SECONDS) \
			-timeout=10 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crash-$$target- \
			$(FUZZ_DIR)/corpus/$$target $(FUZZ_DIR)/seeds/$$target 2>&1 | grep -E 'stat::number_of_executed_units|stat::new_units_added|ERROR|SUMMARY|Test unit written|crash point' ; \
		status=$${PIPESTATUS[0]}; [ $$status -eq 0 ] || { echo "fuzz: $$target failed (status $$status)"; exit 1; }; \
	done

# Release build of the benchmark runner, then the headline table on temporary stores: Annals,
# SQLite and LMDB side by side with the machine's limits (writes bench-results/latest.json and
# latest.svg). `make bench-full` runs the 10M-event sizes.
bench: bench-deps
	cd Benchmarks && $(SWIFT) build -c release --product annals-headline
	Benchmarks/.build/release/annals-headline

bench-full: bench-deps
	cd Benchmarks && $(SWIFT) build -c release --product annals-headline
	Benchmarks/.build/release/annals-headline --full

# The package-benchmark suites (append batch sizes × durability, replay).
benchmarks: bench-deps
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark

# Allocation counts of the suites against the checked-in Benchmarks/Thresholds (a regression
# fails); `make benchmarks-thresholds` records new ones after an intended change.
benchmarks-check: bench-deps
	cd Benchmarks && $(SWIFT) package benchmark thresholds check --path Thresholds

benchmarks-thresholds: bench-deps
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark thresholds update --path Thresholds

# The LZ4 scheme measurements behind format version 2 (Tools/compression-probe).
compression-probe: bench-deps
	cd Benchmarks && $(SWIFT) build -c release --product annals-headline
	Benchmarks/.build/release/annals-headline corpus /tmp/annals-corpus.bin 300000
	$(CC) -O2 -o /tmp/annals-compression-probe Tools/compression-probe/probe.c -llz4
	/tmp/annals-compression-probe /tmp/annals-corpus.bin

clean:
	rm -rf .build .build-asan .build-tsan .build-fuzz Benchmarks/.build bench-results
