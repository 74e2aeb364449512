# chela: plain Makefile, pkg-config for everything that ships a .pc file.
# wslay and http-parser ship none, so they are linked by name.
#
#   make            release build at build/chela
#   make debug      -O0 build at build/debug/chela
#   make asan       ASan+UBSan build at build/asan/chela, then every suite on it
#   make test       install deps, build, unit + e2e tests
#   make run        install deps, build, start the gateway on embedded defaults
#   make bench      benchmarks (bench/*.sh), never part of the tests
#   make fuzz       libFuzzer targets, each for FUZZ_SECONDS
#   make lint       clang-format check and cppcheck

CC       ?= gcc
PKGS     := libuv jansson sqlite3 openssl
# libcurl: headers only; it is dlopened at first use (src/net/curl_dl.h).
CURL_CFLAGS := $(shell pkg-config --cflags libcurl 2>/dev/null)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CURL_CFLAGS)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wstrict-prototypes
# libuv's headers need _GNU_SOURCE under -std=c17.
BASE_CFLAGS := -std=c17 -D_GNU_SOURCE $(WARN) -Isrc $(PKG_CFLAGS) -MMD -MP
LIBS     := $(PKG_LIBS) -lwslay -lhttp_parser -lpthread -lm -ldl
PYTHON   := /usr/bin/python3
FUZZ_SECONDS ?= 30

MODE ?= release
ifeq ($(MODE),release)
  BUILD := build
  OPT   := -O2 -g
endif
ifeq ($(MODE),debug)
  BUILD := build/debug
  OPT   := -O0 -g3 -DCH_DEBUG
endif
ifeq ($(MODE),asan)
  BUILD := build/asan
  OPT   := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -DCH_DEBUG
  LDOPT := -fsanitize=address,undefined
endif

CFLAGS  := $(BASE_CFLAGS) $(OPT) $(EXTRA_CFLAGS)
LDFLAGS := $(LDOPT) $(EXTRA_LDFLAGS)

SRC      := $(sort $(wildcard src/*/*.c src/*/*/*.c))
LIB_SRC  := $(filter-out src/cli/main.c,$(SRC))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ := $(BUILD)/obj/src/cli/main.o
UNIT_SRC := $(sort $(wildcard tests/unit/*/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/unit/%)

.PHONY: all release debug asan test unit e2e run bench fuzz lint clean deps check-layers asan-build
all: $(BUILD)/chela

release:
	@$(MAKE) --no-print-directory MODE=release all
debug:
	@$(MAKE) --no-print-directory MODE=debug all

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libchela.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/chela: $(MAIN_OBJ) $(BUILD)/libchela.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/unit/%: tests/unit/%.c $(BUILD)/libchela.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/libchela.a $(LIBS) -lcmocka

deps:
	@scripts/install-deps

# The WebSocket load generator bench/ws.sh drives (not part of the gateway).
$(BUILD)/ws_client: bench/ws_client.c
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -D_GNU_SOURCE $(WARN) -O2 -g -o $@ $<

# Unit tests: every tests/unit/<layer>/test_*.c is one cmocka binary, run
# from the repository root so case directories resolve.
unit: $(BUILD)/chela $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

e2e: $(BUILD)/chela
	CHELA_BIN=$(abspath $(BUILD)/chela) $(PYTHON) -m pytest -q tests/e2e $(PYTEST_ARGS)

check-layers:
	@scripts/check-layers

test: deps
	@$(MAKE) --no-print-directory MODE=$(MODE) check-layers unit e2e

asan-build:
	@$(MAKE) --no-print-directory MODE=asan $(BUILD)/chela
asan: deps
	@$(MAKE) --no-print-directory MODE=asan unit e2e

run: deps
	@$(MAKE) --no-print-directory MODE=release all
	./build/chela gateway $(RUN_ARGS)

bench: deps
	@$(MAKE) --no-print-directory MODE=release all
	@set -e; for b in bench/*.sh; do echo "== $$b"; bash $$b; done

fuzz: deps
	@scripts/run-fuzz $(FUZZ_SECONDS)

lint:
	@scripts/lint

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_BIN:=.d)
