# spypixel: hand-written Makefile. `make` builds build/spypixel.
# SPDX-License-Identifier: MIT

CC      ?= gcc
BUILD   ?= build
PKGS    := libmicrohttpd gnutls libsystemd sqlite3 libpq libmaxminddb libpcre2-8 yaml-0.1 libsodium jansson libcurl gmime-3.0 libxml-2.0
OPT     ?= -O2
WERROR  ?=
SANITIZE ?=

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  += -std=c17 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Wshadow -Wformat=2 \
           -Wno-unused-parameter -Wstrict-prototypes -Wmissing-prototypes \
           -fno-strict-aliasing $(WERROR) $(SANITIZE) -MMD -MP -Isrc -I$(BUILD)/gen $(PKG_CFLAGS)
LDFLAGS += $(SANITIZE)
LDLIBS  += $(PKG_LIBS) -lpthread -lm

SRC      := $(wildcard src/*.c)
OBJ      := $(SRC:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/assets_data.o
LIB_OBJ  := $(filter-out $(BUILD)/obj/main.o,$(OBJ))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

# Dashboard files built into the binary (STYLE.md habit 7).
ASSETS   := $(shell find web -type f ! -name '.*' 2>/dev/null | LC_ALL=C sort) \
            $(wildcard node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css)

.PHONY: all deps test-deps test unit asan bench run clean format

all: $(BUILD)/spypixel

$(BUILD)/spypixel: $(OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/gen/assets_data.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/assets_data.o: $(BUILD)/gen/assets_data.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/bin2c: tools/bin2c.c
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -O1 -Wall -Wextra -o $@ $<

$(BUILD)/gen/assets_data.c: $(BUILD)/bin2c $(ASSETS)
	@mkdir -p $(dir $@)
	$(BUILD)/bin2c $@ $(ASSETS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(LIB_OBJ) $(LDFLAGS) $(LDLIBS) -lcmocka

$(BUILD)/bench/%: bench/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB_OBJ) $(LDFLAGS) $(LDLIBS)

unit: $(UNIT_BIN)

deps:
	scripts/install-deps

test-deps:
	scripts/install-deps --test

# `make test`: installs what is missing, builds, runs every suite, ends with
# one "N passed, N failed" line.
test: test-deps
	$(MAKE) all unit
	BUILD=$(BUILD) scripts/run-tests

# The same suites under AddressSanitizer and UBSan, in a separate build tree.
asan: test-deps
	$(MAKE) BUILD=build/asan OPT=-O1 \
	  SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all unit
	BUILD=build/asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1 scripts/run-tests

bench: test-deps all $(BENCH_BIN)
	BUILD=$(BUILD) bench/run

run: deps all
	mkdir -p data
	$(BUILD)/spypixel serve --listen 127.0.0.1:8080 --data ./data

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c tools/*.c bench/*.c

clean:
	rm -rf build

-include $(OBJ:.o=.d) $(UNIT_BIN:=.d) $(BENCH_BIN:=.d)
