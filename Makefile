# gatelab build. `make` builds the release binary; `make test` and `make run`
# first install missing system libraries through `deps`.
PREFIX ?= /usr/local
CC ?= cc
PKGS := openblas ncursesw sqlite3
APT_PKGS := libopenblas-dev libncurses-dev libsqlite3-dev sqlite3 pkg-config python3 tmux

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

.PHONY: all deps test test-asan test-tsan bench run install clean check-deps
all: $(BIN)
	@ln -sf $(BIN) gatelab

$(BUILD)/$(MODE)/%.o: %.c $(wildcard include/*.h) $(wildcard store/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BIN): $(LIB_OBJ) $(BUILD)/$(MODE)/src/main.o
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/$(MODE)/tests/%: tests/%.c $(wildcard tests/*.h) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIB_OBJ) -o $@ $(LDLIBS)

$(BUILD)/$(MODE)/bench/%: tests/bench/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIB_OBJ) -o $@ $(LDLIBS)

# Installs what pkg-config cannot find (apt-get, through sudo when not root).
deps:
	@missing=""; \
	for p in $(PKGS); do pkg-config --exists $$p 2>/dev/null || missing="$$missing $$p"; done; \
	for c in python3 sqlite3 tmux; do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: missing:$$missing; installing $(APT_PKGS)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "deps: need root or sudo to install $(APT_PKGS)" >&2; exit 1; fi; \
	  command -v apt-get >/dev/null || { echo "deps: no apt-get; install $(APT_PKGS) by hand" >&2; exit 1; }; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y $(APT_PKGS) || { $$SUDO apt-get update && $$SUDO apt-get install -y $(APT_PKGS); } || \
	    { echo "deps: apt-get could not install $(APT_PKGS)" >&2; exit 1; }; \
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

run: deps
	$(MAKE) --no-print-directory all
	./$(BIN)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/gatelab

clean:
	rm -rf $(BUILD) gatelab
