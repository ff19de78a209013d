# uring-sync — build, test, demo, bench.  `make` builds everything into build/.
# Missing build dependencies are installed with apt-get (as root) first.

BUILD      ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= 2
CMAKE_FLAGS ?=
GO         ?= go
RCLONE_TAGS ?=   # "allbackends" builds rclone with every backend (s3, sftp, drive, ...)
# make install: files go to $(DESTDIR)$(PREFIX)/{bin,$(LIBDIR),include,share}.
# LIBDIR=lib is what GNUInstallDirs picks outside /usr, and Debian's linker and
# pkg-config search /usr/local/lib too; LIBDIR=lib/x86_64-linux-gnu for multiarch.
PREFIX     ?= /usr/local
LIBDIR     ?= lib
DESTDIR    ?=
FUZZ_SECONDS ?= 60  # per libFuzzer harness, in `make fuzz`

DEB_PACKAGES := build-essential cmake pkg-config liburing-dev libssl-dev libcli11-dev \
                libgtest-dev googletest rsync util-linux time scdoc man-db zsh bindfs
STAMP := $(BUILD)/.deps-ok

.PHONY: all deps native rclone test test-native test-e2e test-go test-race demo bench bench-deps bench-quick bench-readme test-bench clean format lint sanitize sanitize-thread
.PHONY: install uninstall test-install fuzz fuzz-deps

all: native rclone

# Install what a fresh Debian 12 machine lacks (needs root; prints the
# command otherwise).  Checked again whenever this file (and so the list) changes.
$(STAMP): Makefile
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing packages:$$missing — run: sudo apt-get install$$missing"; exit 1; fi; \
	fi
	@mkdir -p $(BUILD) && touch $@

deps: $(STAMP)

$(BUILD)/CMakeCache.txt: $(STAMP) CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

native: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# rclone with the uring backend; the engine is linked statically (link_static.go).
rclone: native
	$(GO) build -p $(JOBS) -trimpath -tags '$(RCLONE_TAGS)' -o $(BUILD)/bin/rclone ./cmd/rclone

test-native: native
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# End-to-end: the CLI on generated trees, both engines, whole-tree comparison.
test-e2e: native
	go test -count=1 ./test/e2e/...

# The Go binding, the rclone backend (incl. rclone's fstests) and the rclone binary end to end.
test-go: native rclone
	URING_RCLONE=$(CURDIR)/$(BUILD)/bin/rclone $(GO) test -count=1 -p $(JOBS) ./backend/... ./cmd/...

test-race: native
	$(GO) test -count=1 -p $(JOBS) -race ./backend/...

lint:
	test -z "$$(gofmt -l backend cmd test)"
	$(GO) vet ./...

test: test-native test-e2e test-go test-race lint sanitize test-install test-bench

# Refresh the loader's cache after a root install into the live system, so
# programs find the new (or stop finding the old) liburingsync.so.0.
LDCONFIG = if [ -z '$(DESTDIR)' ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi

# Install (CMake's install rules; see "Install" in README.md).  uninstall removes
# the files listed in the manifest of the last install from this build
# directory; pass it the same DESTDIR.
install: native
	@grep -qx 'CMAKE_INSTALL_LIBDIR:PATH=$(LIBDIR)' $(BUILD)/CMakeCache.txt || \
	  cmake -S . -B $(BUILD) -DCMAKE_INSTALL_LIBDIR='$(LIBDIR)' >/dev/null
	DESTDIR='$(DESTDIR)' cmake --install $(BUILD) --prefix '$(PREFIX)'
	@$(LDCONFIG)

uninstall:
	@test -f $(BUILD)/install_manifest.txt || { echo "no $(BUILD)/install_manifest.txt: nothing installed from this build"; exit 1; }
	@while IFS= read -r f || [ -n "$$f" ]; do rm -fv '$(DESTDIR)'"$$f"; done < $(BUILD)/install_manifest.txt
	@grep '/uringsync/uringsync\.h$$' $(BUILD)/install_manifest.txt | while IFS= read -r h; do \
	  rmdir --ignore-fail-on-non-empty '$(DESTDIR)'"$${h%/*}"; done
	@$(LDCONFIG)

# Installs into a temporary DESTDIR and uses the result as a user would; also
# fails when an option of `uring-sync --help` is missing from the man page or
# a completion.
test-install: native
	BUILD='$(BUILD)' MAKE='$(MAKE)' bash test/install/check.sh

demo: native
	bash test/demo.sh

# The bench's own dependencies (fio, gnuplot, rsync, GNU time from Debian; cpz,
# fcp and xcp built with cargo at pinned versions into $(BUILD)/bench/cargo),
# each installed only when missing.  bench-quick skips the Rust peers it lacks.
bench-deps:
	python3 test/bench/bench.py --deps

bench: native bench-deps
	python3 test/bench/bench.py $(BENCH_ARGS)

bench-quick: native
	python3 test/bench/bench.py --quick $(BENCH_ARGS)

# The README's performance table, rewritten from a results file (default: the last bench run's).
BENCH_RESULTS ?= $(BUILD)/bench/results.json
bench-readme:
	python3 test/bench/report.py $(BENCH_RESULTS) --readme README.md

# The bench report's tables, README rewrite and chart on a canned results.json (no timing, no root).
test-bench:
	python3 -m unittest discover -s test/bench -p '*_test.py'

# ASan+UBSan (sanitize) and TSan (sanitize-thread) builds of the engine and its tests.
sanitize: $(STAMP)
	cmake -S . -B $(BUILD)/asan -DCMAKE_BUILD_TYPE=Debug -DUSYNC_SANITIZE=address
	cmake --build $(BUILD)/asan -j $(JOBS)
	cd $(BUILD)/asan && ctest --output-on-failure -j $(JOBS)

sanitize-thread: $(STAMP)
	cmake -S . -B $(BUILD)/tsan -DCMAKE_BUILD_TYPE=Debug -DUSYNC_SANITIZE=thread
	cmake --build $(BUILD)/tsan -j $(JOBS)
	cd $(BUILD)/tsan && ctest --output-on-failure -j $(JOBS)

# clang, its sanitizer runtimes and libFuzzer, installed with apt-get (as root)
# when missing; the libFuzzer package must match clang's major version.
define apt-install
if [ "$$(id -u)" = 0 ]; then \
  echo "installing: $(1)"; \
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; \
else echo "missing packages: $(1) — run: sudo apt-get install $(1)"; exit 1; fi
endef

fuzz-deps:
	@command -v clang++ >/dev/null 2>&1 || { $(call apt-install,clang); }
	@v=$$(clang++ -dumpversion | cut -d. -f1); missing=""; \
	for p in libfuzzer-$$v-dev libclang-rt-$$v-dev; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(call apt-install,$$missing); fi

# libFuzzer harnesses of the exclude globs and the CLI's numbers, built with
# clang (ASan+UBSan) in $(BUILD)/fuzz and run FUZZ_SECONDS each; a crash, a
# disagreement with the reference, or an input slower than 10 s fails.
FUZZERS := filter_fuzzer:native/tests/filter_fuzzer.dict cli_fuzzer:cmd/uring-sync/cli_fuzzer.dict

fuzz: $(STAMP) fuzz-deps
	CC=clang CXX=clang++ cmake -S . -B $(BUILD)/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUSYNC_FUZZ=ON -DUSYNC_TESTS=OFF
	cmake --build $(BUILD)/fuzz -j $(JOBS) --target filter_fuzzer cli_fuzzer
	@set -e; for f in $(FUZZERS); do \
	  name=$${f%%:*}; dict=$${f#*:}; corpus=$(BUILD)/fuzz/corpus/$$name; mkdir -p $$corpus; \
	  echo "== $$name for $(FUZZ_SECONDS) s (corpus $$corpus)"; \
	  $(BUILD)/fuzz/bin/$$name -max_total_time=$(FUZZ_SECONDS) -timeout=10 -max_len=256 \
	    -dict=$$dict -artifact_prefix=$(BUILD)/fuzz/$$name- -print_final_stats=1 $$corpus; \
	done

format:
	clang-format -i native/include/*/*.h native/src/*.h native/src/*.cc native/tests/*.cc cmd/uring-sync/*.h cmd/uring-sync/*.cc

clean:
	rm -rf $(BUILD)
