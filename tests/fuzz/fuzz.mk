# tests/fuzz/fuzz.mk: the libFuzzer targets (see tests/fuzz/README).
# Run from the top of the tree, by `make fuzz` or by hand:
#
#   make -f tests/fuzz/fuzz.mk [build|run] [FUZZ_SECONDS=N] [FUZZ_TARGETS=...]
#
# lib/*.c is compiled again with clang, with coverage for libFuzzer and
# under ASan and UBSan, into build/fuzz (never shared with build/rel or
# build/san); each tests/fuzz/<target>.c links into
# build/fuzz/bin/fuzz-<target>.
# Only FUZZ_* variables are read here, so that a CC, CFLAGS or SANITIZE
# given to the top Makefile changes nothing.

FUZZ_CC ?= clang
FUZZ_AR ?= ar
FUZZ_SECONDS ?= 30
FUZZ_BUILD ?= build/fuzz
FUZZ_TARGETS ?= config yamldoc request targets task nessus results filter mcp

FUZZ_PKGS := hiredis jansson yaml-0.1 libcurl libxml-2.0
FUZZ_PKG_CFLAGS := $(shell pkg-config --cflags $(FUZZ_PKGS))
FUZZ_PKG_LIBS := $(shell pkg-config --libs $(FUZZ_PKGS))
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
FUZZ_CFLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Ilib \
	$(FUZZ_PKG_CFLAGS) $(FUZZ_SAN)

FUZZ_LIB_SRC := $(wildcard lib/*.c)
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:lib/%.c=$(FUZZ_BUILD)/lib/%.o)
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/bin/fuzz-%)

run: build
	FUZZ_BIN=$(abspath $(FUZZ_BUILD)/bin) FUZZ_OUT=$(abspath $(FUZZ_BUILD)) \
		tests/fuzz/run-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

build: $(FUZZ_BINS)

$(FUZZ_BUILD)/lib/%.o: lib/%.c $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/libnp.a: $(FUZZ_LIB_OBJ)
	rm -f $@
	$(FUZZ_AR) rcs $@ $^

# np-mcp's reader is static in cmd/np-mcp.c: the mcp target includes it
# (clang, unlike gcc, warns about its { NULL } table ends).
$(FUZZ_BUILD)/bin/fuzz-mcp: cmd/np-mcp.c
$(FUZZ_BUILD)/bin/fuzz-mcp: FUZZ_XFLAGS := -Wno-missing-field-initializers

$(FUZZ_BUILD)/bin/fuzz-%: tests/fuzz/%.c tests/fuzz/fuzz.h lib/np.h \
		$(FUZZ_BUILD)/libnp.a
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_XFLAGS) -fsanitize=fuzzer -o $@ $< \
		$(FUZZ_BUILD)/libnp.a $(FUZZ_PKG_LIBS) -lm

.PHONY: run build
.SECONDARY:
