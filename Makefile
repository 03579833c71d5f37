# gatelab build. `make` builds the release binary; `make test` and `make run`
# first install missing system libraries through `deps`.
PREFIX ?= /usr/local
CC ?= cc
PKGS := openblas ncursesw sqlite3
APT_PKGS := libopenblas-dev libncurses-dev libsqlite3-dev sqlite3 pkg-config python3 tmux
# Optional libraries: the binary builds without them and the command that
# needs one says so. Cairo draws `gatelab plot` (librsvg2-bin's rsvg-convert
# lets tests/test_plot.sh render the SVG it writes). `make HAVE_CAIRO=0`
# builds without Cairo even where it is installed.
OPT_PKGS := cairo
APT_PKGS += libcairo2-dev librsvg2-bin
HAVE_CAIRO ?= $(shell pkg-config --exists cairo 2>/dev/null && echo 1)
ifeq ($(HAVE_CAIRO),1)
  # fontconfig (which libcairo2-dev brings): plot.c releases its caches
  PKGS += cairo fontconfig
  CFLAGS += -DGATELAB_HAVE_CAIRO
endif

# Open MPI runs sessions and experiments over ranks (DESIGN §13; `mpirun -np
# N gatelab ...`). Compiled in when pkg-config finds ompi (libopenmpi-dev);
# openmpi-bin brings mpirun, which tests/test_mpi.sh needs. `make HAVE_MPI=0`
# builds without it even where it is installed; the binary then runs alone
# and refuses to be one of several ranks.
OPT_PKGS += ompi
APT_PKGS += libopenmpi-dev openmpi-bin
HAVE_MPI ?= $(shell pkg-config --exists ompi 2>/dev/null && echo 1)
ifeq ($(HAVE_MPI),1)
  PKGS += ompi
  CFLAGS += -DGATELAB_HAVE_MPI
endif

BUILD ?= build
MODE ?= release
ifeq ($(MODE),release)
  OPT := -O2 -march=native
else ifeq ($(MODE),asan)
  OPT := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(MODE),tsan)
  OPT := -O1 -g -fsanitize=thread
else
  OPT := -O0 -g
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(OPT) -Iinclude $(PKG_CFLAGS)
LDLIBS += $(PKG_LIBS) -lpthread -lm
LDFLAGS += $(filter -fsanitize=%,$(OPT))

SRC := $(wildcard src/*.c) $(wildcard store/*.c) $(wildcard ui/*.c)
LIB_SRC := $(filter-out src/main.c,$(SRC))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/$(MODE)/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/$(MODE)/tests/%)
BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/$(MODE)/bench/%)
BIN := $(BUILD)/$(MODE)/gatelab

.PHONY: all deps test test-asan test-tsan test-bins bench bench-deps run install clean check-deps fuzz fuzz-deps
all: $(BIN)
	@ln -sf $(BIN) gatelab

$(BUILD)/$(MODE)/%.o: %.c $(wildcard include/*.h) $(wildcard store/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The git revision every session records (sessions.git_rev): "+dirty" when the
# tree has uncommitted changes, "unknown" outside a git checkout. The stamp
# file changes only when the revision does, so only common.o (where
# gl_git_rev() returns it) is rebuilt then.
GIT_REV := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git rev-parse HEAD >/dev/null 2>&1 && ! git diff --quiet HEAD -- 2>/dev/null && echo +dirty)
REV_STAMP := $(BUILD)/$(MODE)/git_rev
.PHONY: FORCE
$(REV_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(GIT_REV)' | cmp -s - $@ 2>/dev/null || echo '$(GIT_REV)' >$@
$(BUILD)/$(MODE)/src/common.o: $(REV_STAMP)
$(BUILD)/$(MODE)/src/common.o: CFLAGS += -DGL_GIT_REV='"$(GIT_REV)"'

$(BIN): $(LIB_OBJ) $(BUILD)/$(MODE)/src/main.o
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/$(MODE)/tests/%: tests/%.c $(wildcard tests/*.h) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIB_OBJ) -o $@ $(LDLIBS)

$(BUILD)/$(MODE)/bench/%: tests/bench/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIB_OBJ) -o $@ $(LDLIBS)

# $(call apt_install,WHO,PACKAGES): shell code that installs PACKAGES with
# apt-get (through sudo when not root), first from the cached lists, then
# after an update; WHO names the target in its messages.
apt_install = \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; \
	else echo "$(1): need root or sudo to install $(2)" >&2; exit 1; fi; \
	command -v apt-get >/dev/null || { echo "$(1): no apt-get; install $(2) by hand" >&2; exit 1; }; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$SUDO apt-get install -y $(2) || { $$SUDO apt-get update && $$SUDO apt-get install -y $(2); } || \
	  { echo "$(1): apt-get could not install $(2)" >&2; exit 1; }

# Installs what pkg-config cannot find (apt-get, through sudo when not root).
deps:
	@missing=""; \
	for p in $(PKGS) $(OPT_PKGS); do pkg-config --exists $$p 2>/dev/null || missing="$$missing $$p"; done; \
	for c in python3 sqlite3 tmux rsvg-convert mpirun; do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: missing:$$missing; installing $(APT_PKGS)"; \
	  $(call apt_install,deps,$(APT_PKGS)); \
	fi

test: deps
	$(MAKE) --no-print-directory all $(TEST_BIN)
	@sh tests/run.sh $(BUILD)/$(MODE)

test-asan: deps
	$(MAKE) --no-print-directory MODE=asan all test-bins
	@GATELAB_QUICK=1 sh tests/run.sh $(BUILD)/asan

test-tsan: deps
	$(MAKE) --no-print-directory MODE=tsan all test-bins
	@GATELAB_QUICK=1 sh tests/run.sh $(BUILD)/tsan

test-bins: $(TEST_BIN)

bench: deps
	$(MAKE) --no-print-directory all $(BENCH_BIN)
	@for b in $(BENCH_BIN); do $$b || exit 1; done

# The bench's peer (tests/bench/torch_ref.py): PyTorch from Debian. Never a
# test dependency; without it the bench says the comparison was skipped.
bench-deps: deps
	@/usr/bin/python3 -c 'import torch' 2>/dev/null || python3 -c 'import torch' 2>/dev/null || \
	  { $(call apt_install,bench-deps,python3-torch); }

run: deps
	$(MAKE) --no-print-directory all
	./$(BIN)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/gatelab

clean:
	rm -rf $(BUILD) gatelab

# ---- fuzzing ----
# `make fuzz [FUZZ_SECONDS=N] [FUZZ_TARGETS="fuzz_bin fuzz_db"]`: every
# tests/fuzz/fuzz_*.c as a libFuzzer binary (clang, ASan + UBSan) in
# $(BUILD)/fuzz/bin/, linked against the library sources compiled with clang
# into $(BUILD)/fuzz/obj/ (not -Werror: the gcc build is the one held to it).
# tests/fuzz/run.sh then runs each target for FUZZ_SECONDS on a copy of its
# seed corpus tests/fuzz/corpus/TARGET/, prints one line of figures per
# target and "N passed, N failed" (targets); it fails if any target
# crashes, leaks or hangs (the input is kept in $(BUILD)/fuzz/artifacts/).
FUZZ_SECONDS ?= 30
FUZZ_CC ?= clang
# Debian's clang has no libFuzzer or sanitizer runtimes of its own:
# libclang-rt-dev brings those of the default clang (libclang-rt-14-dev on 12).
FUZZ_APT_PKGS := clang libclang-rt-dev
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_LIB_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -O1 -g $(FUZZ_SAN) -Iinclude $(PKG_CFLAGS)
FUZZ_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_TARGETS ?= $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN = $(FUZZ_TARGETS:%=$(FUZZ_DIR)/bin/%)
.SECONDARY: $(FUZZ_OBJ)

$(FUZZ_DIR)/obj/%.o: %.c $(wildcard include/*.h) $(wildcard store/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_LIB_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/bin/%: tests/fuzz/%.c $(wildcard tests/fuzz/*.h) $(wildcard include/*.h) $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_LIB_CFLAGS) -Werror -fsanitize=fuzzer $< $(FUZZ_OBJ) -o $@ $(LDLIBS)

# What `make deps` installs plus a clang that links -fsanitize=fuzzer: tried
# on a one-line target first, installed (FUZZ_APT_PKGS) only when that fails.
fuzz-deps: deps
	@mkdir -p $(FUZZ_DIR)
	@printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >$(FUZZ_DIR)/probe.c
	@probe() { command -v $(FUZZ_CC) >/dev/null 2>&1 || { echo "no $(FUZZ_CC) in PATH" >$(FUZZ_DIR)/probe.log; return 1; }; \
	  $(FUZZ_CC) -fsanitize=fuzzer,address,undefined $(FUZZ_DIR)/probe.c -o $(FUZZ_DIR)/probe \
	    >$(FUZZ_DIR)/probe.log 2>&1; }; \
	if ! probe; then \
	  echo "fuzz-deps: $(FUZZ_CC) cannot link -fsanitize=fuzzer,address,undefined; installing $(FUZZ_APT_PKGS)"; \
	  $(call apt_install,fuzz-deps,$(FUZZ_APT_PKGS)); \
	  probe || { echo "fuzz-deps: $(FUZZ_CC) still cannot link a libFuzzer target: $$(head -n 1 $(FUZZ_DIR)/probe.log 2>/dev/null)" >&2; exit 1; }; \
	fi

fuzz: fuzz-deps
	$(MAKE) --no-print-directory $(FUZZ_BIN)
	@sh tests/fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGETS)
