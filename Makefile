# np: Nessus scanner pools. GNU make; no configure step.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man

CC ?= cc
CFLAGS ?= -O2 -g
PKGS := hiredis jansson yaml-0.1 libcurl libxml-2.0
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
override CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Ilib $(PKG_CFLAGS)
LDLIBS += $(PKG_LIBS) -lm

# SANITIZE=1 builds everything under ASan and UBSan into its own tree, so a
# plain build and a sanitized one never share objects.
ifeq ($(SANITIZE),1)
BUILD ?= build/san
override CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
override LDFLAGS += -fsanitize=address,undefined
else
BUILD ?= build/rel
endif

LIB_SRC := $(wildcard lib/*.c)
LIB_OBJ := $(LIB_SRC:lib/%.c=$(BUILD)/lib/%.o)
CMDS := $(sort $(patsubst cmd/%.c,%,$(wildcard cmd/np-*.c)))
BINS := $(CMDS:%=$(BUILD)/bin/%)
UNIT_SRC := $(wildcard tests/unit/t_*.c)
UNITS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# Test drivers: small programs the bats tests run to reach lib/ directly.
DRIVER_SRC := $(wildcard tests/unit/x_*.c)
DRIVERS := $(DRIVER_SRC:tests/unit/%.c=$(BUILD)/tests/%)

all: $(BINS)

$(BUILD)/lib/%.o: lib/%.c $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/cmd/%.o: cmd/%.c lib/np.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libnp.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/cmd/%.o $(BUILD)/libnp.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/tap.h $(BUILD)/libnp.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libnp.a $(LDLIBS)

# The chaos tests' slow-disk shim: plain flags, it is LD_PRELOADed.
$(BUILD)/tests/slowsync.so: tests/chaos/slowsync.c
	@mkdir -p $(@D)
	$(CC) -O2 -std=c11 -Wall -Wextra -Werror -shared -fPIC -o $@ $< -ldl

check: all $(UNITS) $(DRIVERS) $(BUILD)/tests/slowsync.so
	NP_BIN=$(abspath $(BUILD)/bin) NP_UNIT=$(abspath $(BUILD)/tests) NP_SANITIZE=$(SANITIZE) tests/run

lint: all
	NP_BIN=$(abspath $(BUILD)/bin) tests/run tests/lint.bats

# libFuzzer targets (clang, ASan, UBSan) in build/fuzz, each run
# FUZZ_SECONDS (default 30) after its regressions; see tests/fuzz/README.
fuzz:
	$(MAKE) -f tests/fuzz/fuzz.mk run
.PHONY: fuzz

demo: all
	NP_BIN=$(abspath $(BUILD)/bin) scripts/demo

SYSCONFDIR ?= /etc
SYSTEMDDIR ?= $(PREFIX)/lib/systemd/system
LIBDIR ?= $(PREFIX)/lib
DATADIR ?= $(PREFIX)/share
UNITS := $(wildcard systemd/*.service systemd/*.timer)

install: all
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSTEMDDIR) \
		$(DESTDIR)$(LIBDIR)/sysusers.d $(DESTDIR)$(LIBDIR)/tmpfiles.d \
		$(DESTDIR)$(SYSCONFDIR)/np $(DESTDIR)$(DATADIR)/np
	for c in $(CMDS); do install -m 0755 $(BUILD)/bin/$$c $(DESTDIR)$(BINDIR)/$$c; done
	for m in man/*.[1-8]; do s=$${m##*.}; mkdir -p $(DESTDIR)$(MANDIR)/man$$s; \
		install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done
	for u in $(UNITS); do sed 's|/usr/local/bin/|$(BINDIR)/|' $$u > \
		$(DESTDIR)$(SYSTEMDDIR)/$${u#systemd/}; \
		chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/$${u#systemd/}; done
	install -m 0644 systemd/np.sysusers $(DESTDIR)$(LIBDIR)/sysusers.d/np.conf
	install -m 0644 systemd/np.tmpfiles $(DESTDIR)$(LIBDIR)/tmpfiles.d/np.conf
	install -m 0644 etc/np.yaml.example $(DESTDIR)$(SYSCONFDIR)/np/np.yaml.example
	install -m 0644 scripts/np-alerts.yml $(DESTDIR)$(DATADIR)/np/np-alerts.yml

uninstall:
	for c in $(CMDS); do rm -f $(DESTDIR)$(BINDIR)/$$c; done
	for m in man/*.[1-8]; do s=$${m##*.}; rm -f $(DESTDIR)$(MANDIR)/man$$s/$${m#man/}; done
	for u in $(UNITS); do rm -f $(DESTDIR)$(SYSTEMDDIR)/$${u#systemd/}; done
	rm -f $(DESTDIR)$(LIBDIR)/sysusers.d/np.conf $(DESTDIR)$(LIBDIR)/tmpfiles.d/np.conf
	rm -f $(DESTDIR)$(SYSCONFDIR)/np/np.yaml.example $(DESTDIR)$(DATADIR)/np/np-alerts.yml
	-rmdir $(DESTDIR)$(SYSCONFDIR)/np $(DESTDIR)$(DATADIR)/np 2>/dev/null

# make bench [BENCH_QUICK=1]: the benchmarks of bench/ (bench/README.md), never
# part of check. The baselines link hiredis alone.
BENCH_BIN := $(BUILD)/bench
$(BENCH_BIN)/baseline-%: bench/baseline/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(shell pkg-config --libs hiredis)
$(BENCH_BIN)/measure: bench/tools/measure.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $<
$(BENCH_BIN)/rtt.so: bench/tools/rtt.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -shared -fPIC -o $@ $< -ldl
bench: all $(addprefix $(BENCH_BIN)/,measure rtt.so baseline-enqueue baseline-ping)
	NP_BIN=$(abspath $(BUILD)/bin) NP_BENCH_BIN=$(abspath $(BENCH_BIN)) \
		BENCH_QUICK=$(BENCH_QUICK) bench/run
.PHONY: bench

clean:
	rm -rf build

.PHONY: all check lint demo install uninstall clean
.SECONDARY:
