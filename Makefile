# techfeed — one non-recursive Makefile.
#
#   make            build programs and library into build/
#   make run        install missing packages, build, run the demo
#   make test       install missing packages, build under ASan+UBSan, run every test
#   make asan       build the sanitizer variant only (build/asan)
#   make install    PREFIX=/usr/local DESTDIR=  (make uninstall removes the same files)
#   make fuzz       libFuzzer harnesses (clang), bounded time
#   make bench      benchmarks against the peers
#
# O= picks the output directory, SAN=1 adds sanitizers. V=1 shows commands.

O       ?= build
SAN     ?= 0
PREFIX  ?= /usr/local
VERSION := 0.1.0

Q := $(if $(V),,@)
CC ?= cc

PKGS     := libczmq libzmq libprotobuf-c sqlite3 jansson libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wshadow \
           -Wstrict-prototypes -Wmissing-prototypes -fno-strict-aliasing -MMD -MP \
           -DTF_VERSION='"$(VERSION)"'
ifeq ($(SAN),1)
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
INCLUDES := -I$(O)/gen -Iproto -Istorage -Iservices/common -Iservices/ingestd -Iclients/lib -Itests/lib $(PKG_CFLAGS)
LIBS     := $(PKG_LIBS) -lpthread -lm

# --------------------------------------------------------------- sources

GEN_C     := $(O)/gen/techfeed.pb-c.c
GEN_H     := $(O)/gen/techfeed.pb-c.h
WIRE_SRC  := $(wildcard proto/*.c) $(GEN_C)
STORE_SRC := $(wildcard storage/*.c)
COMMON_SRC:= $(wildcard services/common/*.c)
SERVER_SRC:= $(filter-out services/ingestd/main.c,$(wildcard services/ingestd/*.c))
CLIENT_SRC:= $(wildcard clients/lib/*.c)
TESTLIB_SRC := $(wildcard tests/lib/*.c)

obj = $(patsubst %.c,$(O)/obj/%.o,$(patsubst $(O)/%,%,$(1)))

WIRE_OBJ   := $(call obj,$(WIRE_SRC))
STORE_OBJ  := $(call obj,$(STORE_SRC))
COMMON_OBJ := $(call obj,$(COMMON_SRC))
SERVER_OBJ := $(call obj,$(SERVER_SRC))
CLIENT_OBJ := $(call obj,$(CLIENT_SRC))
TESTLIB_OBJ:= $(call obj,$(TESTLIB_SRC))

LIBTECHFEED := $(O)/libtechfeed.a
# The shared library: the same sources compiled again with -fPIC into $(O)/pic.
SOMAJOR     := $(firstword $(subst ., ,$(VERSION)))
LIBTECHFEED_SO := $(O)/libtechfeed.so.$(VERSION)
LIB_PIC_OBJ := $(patsubst $(O)/obj/%,$(O)/pic/%,$(WIRE_OBJ) $(CLIENT_OBJ))
LIB_LIBS    := $(shell pkg-config --libs libczmq libzmq libprotobuf-c jansson sqlite3 2>/dev/null) -lpthread -lm
SERVER_LIB  := $(O)/libtfserver.a
INGESTD     := $(O)/techfeed-ingestd
CLI         := $(O)/techfeed

UNIT_TESTS  := $(patsubst tests/unit/%.c,$(O)/tests/%,$(wildcard tests/unit/test_*.c))
INTEG_TESTS := $(patsubst tests/integration/%.c,$(O)/tests/%,$(wildcard tests/integration/test_*.c))

.PHONY: all deps run test soak check asan install uninstall fuzz bench clean format
# Generated code and objects are kept, not treated as intermediate.
.SECONDARY:
.DEFAULT_GOAL := all

all: $(INGESTD) $(CLI) $(LIBTECHFEED) $(LIBTECHFEED_SO)

# --------------------------------------------------------------- rules

$(O)/gen/%.pb-c.c $(O)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(dir $@)
	@echo "  PROTOC  $<"
	$(Q)protoc-c --c_out=$(O)/gen -Iproto $<

$(O)/obj/gen/%.o: $(O)/gen/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(INCLUDES) -c $< -o $@

$(O)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(INCLUDES) -c $< -o $@

$(LIBTECHFEED): $(WIRE_OBJ) $(CLIENT_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/pic/gen/%.o: $(O)/gen/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $< (PIC)"
	$(Q)$(CC) $(CFLAGS) -fPIC $(INCLUDES) -c $< -o $@

$(O)/pic/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $< (PIC)"
	$(Q)$(CC) $(CFLAGS) -fPIC $(INCLUDES) -c $< -o $@

# Exports only the API of techfeed.h and techfeed.pb-c.h (libtechfeed.map).
$(LIBTECHFEED_SO): $(LIB_PIC_OBJ) clients/lib/libtechfeed.map
	@echo "  LD      $@"
	$(Q)$(CC) -shared -Wl,-soname,libtechfeed.so.$(SOMAJOR) -Wl,--no-undefined \
	    -Wl,--version-script=clients/lib/libtechfeed.map $(LDFLAGS) $(LIB_PIC_OBJ) $(LIB_LIBS) -o $@

$(SERVER_LIB): $(WIRE_OBJ) $(STORE_OBJ) $(COMMON_OBJ) $(SERVER_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(INGESTD): $(O)/obj/services/ingestd/main.o $(SERVER_LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) $^ $(LIBS) -o $@

$(CLI): $(call obj,$(wildcard clients/cli/*.c)) $(LIBTECHFEED)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) $^ $(LIBS) -o $@

# Every test links the server and client libraries; the linker keeps what it uses.
$(O)/tests/%: $(O)/obj/tests/unit/%.o $(TESTLIB_OBJ) $(SERVER_LIB) $(LIBTECHFEED)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) $^ $(LIBS) $(CMOCKA_LIBS) -o $@

$(O)/tests/%: $(O)/obj/tests/integration/%.o $(TESTLIB_OBJ) $(SERVER_LIB) $(LIBTECHFEED)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) $^ $(LIBS) $(CMOCKA_LIBS) -o $@

# --------------------------------------------------------------- fuzzing
#
# libFuzzer harnesses (tests/fuzz/fuzz_*.c over fuzz_targets.c), built with
# clang under ASan+UBSan into $(O)/fuzz/; the generated code and the sources
# they reach are compiled again with clang into their own archive. `make
# fuzz` runs each for FUZZ_SECONDS on a temp copy of its seed corpus; a
# crash input is saved in $(O)/fuzz/artifacts/<target>/ (keep it in
# tests/fuzz/regressions/<target>/). `make check` also builds them when
# clang has libFuzzer, and test_fuzz_run runs each briefly.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_DIR     := $(O)/fuzz
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(filter-out tests/fuzz/fuzz_targets.c,\
                $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS    := $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_TARGETS))
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Wno-unused-parameter -MMD -MP \
                -DTF_VERSION='"$(VERSION)"' $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_LIB     := $(FUZZ_DIR)/libfuzztargets.a
fuzz_obj      = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(patsubst $(O)/%,%,$(1)))
FUZZ_LIB_OBJ := $(call fuzz_obj,$(WIRE_SRC) $(STORE_SRC) $(COMMON_SRC) $(SERVER_SRC) \
                clients/lib/tf_reader.c tests/fuzz/fuzz_targets.c)

$(FUZZ_DIR)/obj/gen/%.o: $(O)/gen/%.c
	@mkdir -p $(dir $@)
	@echo "  CLANG   $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(INCLUDES) -c $< -o $@

$(FUZZ_DIR)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	@echo "  CLANG   $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(INCLUDES) -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB)
	@echo "  LD      $@"
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $^ $(LIBS) -o $@

# The replay test calls the harness bodies directly (built with $(CC)).
$(O)/tests/test_fuzz_regressions: $(O)/obj/tests/unit/test_fuzz_regressions.o \
        $(O)/obj/tests/fuzz/fuzz_targets.o $(TESTLIB_OBJ) $(SERVER_LIB) $(LIBTECHFEED)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) $^ $(LIBS) $(CMOCKA_LIBS) -o $@

# Seed corpora: regenerated on purpose only (they are committed).
$(FUZZ_DIR)/make_seeds: $(O)/obj/tests/fuzz/make_seeds.o $(LIBTECHFEED)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) $^ $(LIBS) -o $@

.PHONY: fuzz-build fuzz-seeds
fuzz-build: $(FUZZ_BINS)

fuzz: deps
	$(Q)$(MAKE) --no-print-directory fuzz-build
	$(Q)tests/fuzz/run-fuzzers.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-seeds: $(FUZZ_DIR)/make_seeds
	$(Q)$< clients/demo/milestones.ndjson tests/fuzz/corpus

# In `make check`, only where clang can link a libFuzzer program.
ifneq ($(filter check,$(MAKECMDGOALS)),)
FUZZ_USABLE := $(shell echo 'int LLVMFuzzerTestOneInput (const char *d, unsigned long n) { return 0; }' | \
                 $(FUZZ_CC) -x c - -fsanitize=fuzzer -o /dev/null 2>/dev/null && echo yes)
check: $(if $(FUZZ_USABLE),$(FUZZ_BINS))
endif

-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)

# --------------------------------------------------------------- packages

PACKAGES := build-essential pkg-config libzmq3-dev libczmq-dev libprotobuf-c-dev \
            protobuf-c-compiler libsqlite3-dev sqlite3 libjansson-dev libcmocka-dev \
            libmicrohttpd-dev curl docker-compose clang libclang-rt-dev
PACKAGES += groff-base man-db
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

deps:
	@missing=$$(for p in $(PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
	    echo "  APT     installing:" $$missing; \
	    $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# --------------------------------------------------------------- top targets

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)clients/demo/run-demo.sh $(O)

asan:
	$(Q)$(MAKE) --no-print-directory O=build/asan SAN=1 all

test: deps
	$(Q)$(MAKE) --no-print-directory O=build/asan SAN=1 check

# The long kill -9 variant of the fault test: 200 rounds (about 7 minutes).
soak: deps
	$(Q)$(MAKE) --no-print-directory O=build/asan SAN=1 all build/asan/tests/test_fault_kill
	$(Q)TF_SOAK=1 TF_TEST_TIMEOUT=1500 tests/run.sh build/asan build/asan/tests/test_fault_kill

check: all $(UNIT_TESTS) $(INTEG_TESTS)
	$(Q)tests/run.sh $(O) $(UNIT_TESTS) $(INTEG_TESTS)

# bin/ for both programs (the service too: one directory to put on PATH).
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATADIR    ?= $(PREFIX)/share
MANDIR     ?= $(DATADIR)/man
PUBLIC_H   := clients/lib/techfeed.h $(GEN_H)

install: all
	@echo "  INSTALL $(DESTDIR)$(PREFIX)"
	$(Q)install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/techfeed \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DATADIR)/techfeed/demo
	$(Q)install -m 0755 $(INGESTD) $(CLI) $(DESTDIR)$(BINDIR)/
	$(Q)install -m 0644 $(LIBTECHFEED_SO) $(DESTDIR)$(LIBDIR)/
	$(Q)ln -sf libtechfeed.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libtechfeed.so.$(SOMAJOR)
	$(Q)ln -sf libtechfeed.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libtechfeed.so
	$(Q)install -m 0644 $(LIBTECHFEED) $(DESTDIR)$(LIBDIR)/
	$(Q)install -m 0644 $(PUBLIC_H) $(DESTDIR)$(INCLUDEDIR)/techfeed/
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' clients/lib/techfeed.pc.in >$(DESTDIR)$(LIBDIR)/pkgconfig/techfeed.pc
	$(Q)install -m 0644 docs/man/techfeed.1 $(DESTDIR)$(MANDIR)/man1/
	$(Q)install -m 0644 docs/man/techfeed-ingestd.8 $(DESTDIR)$(MANDIR)/man8/
	$(Q)install -m 0644 clients/demo/*.ndjson $(DESTDIR)$(DATADIR)/techfeed/demo/
	$(Q)[ -n "$(DESTDIR)" ] || ldconfig 2>/dev/null || true

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/techfeed-ingestd $(DESTDIR)$(BINDIR)/techfeed \
	    $(DESTDIR)$(LIBDIR)/libtechfeed.so* $(DESTDIR)$(LIBDIR)/libtechfeed.a \
	    $(DESTDIR)$(LIBDIR)/pkgconfig/techfeed.pc $(DESTDIR)$(MANDIR)/man1/techfeed.1 \
	    $(DESTDIR)$(MANDIR)/man8/techfeed-ingestd.8
	rm -rf $(DESTDIR)$(INCLUDEDIR)/techfeed $(DESTDIR)$(DATADIR)/techfeed

# --------------------------------------------------------------- benchmark
#
# `make bench` installs BENCH_PACKAGES (the peers, their C clients,
# gnuplot), builds the service and tests/bench/ with -O2 and no sanitizers
# into build/bench/, and runs techfeed-bench there: one markdown table on
# stdout, RESULTS.md and PNGs in build/bench/. About 5 minutes (284 to
# 314 s in sessions 6 and 7); BENCH_ARGS=--quick is a one-minute smoke run.

BENCH_PACKAGES := redis-server libhiredis-dev nats-server libnats-dev gnuplot-nox
BENCH_DIR      := build/bench
BENCH_ARGS     ?=
BENCH_PC       := hiredis libnats
BENCH_OBJ      := $(call obj,$(wildcard tests/bench/*.c))
BENCH          := $(O)/techfeed-bench

$(BENCH_OBJ): INCLUDES += $(shell pkg-config --cflags $(BENCH_PC) 2>/dev/null)

$(BENCH): $(BENCH_OBJ) $(O)/obj/tests/lib/tf_testkit.o $(LIBTECHFEED)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) $^ $(LIBS) $(shell pkg-config --libs $(BENCH_PC) 2>/dev/null) -o $@

.PHONY: bench-deps bench-build
bench-deps:
	$(Q)$(MAKE) --no-print-directory deps PACKAGES="$(BENCH_PACKAGES)"

bench-build: $(INGESTD) $(BENCH)

bench: deps bench-deps
	$(Q)$(MAKE) --no-print-directory O=$(BENCH_DIR) SAN=0 bench-build
	$(Q)BENCH_COMMAND='make bench$(if $(BENCH_ARGS), BENCH_ARGS="$(BENCH_ARGS)")' \
	    $(BENCH_DIR)/techfeed-bench --build $(BENCH_DIR) --out $(BENCH_DIR) $(BENCH_ARGS)

clean:
	rm -rf build

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

-include $(shell find $(O)/obj $(O)/pic -name '*.d' 2>/dev/null)
