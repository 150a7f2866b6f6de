# sockgate - see README.md. `make`, `make check`, `make demo`, `make install`.
VERSION    = 0.1.0
PREFIX    ?= /usr/local
DESTDIR   ?=
BUILD     ?= build
CC        ?= cc
MUSLCC    ?= musl-gcc
CLANG     ?= clang
CFLAGS    ?= -O2 -g
LDFLAGS   ?=
SANITIZE  ?=
FUZZ_SECONDS ?= 60
# Warnings are errors in CI (and wherever WERROR=1).
ifneq ($(CI)$(WERROR),)
WERROR_FLAG = -Werror
endif

APPLET_NAMES := $(shell sed -n 's/^APPLET[[:punct:]]\([a-z0-9-]*\),.*/\1/p' applets/applets.h)
CORE_SRC    := $(sort $(wildcard core/*.c))
APPLET_SRC  := $(sort $(wildcard applets/*.c))
PRELOAD_SRC := $(sort $(wildcard preload/*.c))
UNIT_SRC    := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRC    := $(sort $(wildcard tests/fuzz/fuzz_*.c))
TOOL_SRC    := $(sort $(wildcard tests/tools/*.c))
GO_SRC      := $(sort $(wildcard tests/tools/go/*.go))
STATIC_SRC  := $(sort $(wildcard tests/tools/static/*.c))
HEADERS     := $(wildcard core/*.h applets/*.h preload/*.h preload/*.def preload/compat/*.h tests/unit/*.h)

# libbsd in "overlay" mode, linked statically into both builds. The archive
# paths are asked of the compiler when a recipe runs, not when make reads
# this file: on a fresh machine the deps step installs libbsd-dev only after
# that, and a path computed at parse time stays the bare "libbsd.a".
BSD_CFLAGS  = -isystem /usr/include/bsd -DLIBBSD_OVERLAY
BSD_LIBS    = $$($(CC) -print-file-name=libbsd.a) $$($(CC) -print-file-name=libmd.a)

WARN        = -Wall -Wextra -Wno-unused-parameter -Wshadow -Wvla $(WERROR_FLAG)
BASE_CFLAGS = -std=gnu11 -D_GNU_SOURCE -DSOCKGATE_VERSION='"$(VERSION)"' -Icore -Iapplets \
              $(BSD_CFLAGS) $(WARN) $(CFLAGS)

ifeq ($(SANITIZE),1)
SAN_FLAGS   = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# Under the sanitizers the executable is built with the host compiler
# (glibc, dynamic): ASan does not support static musl.
EXE_CC      = $(CC)
EXE_LDFLAGS = $(SAN_FLAGS)
else
EXE_CC      = $(MUSLCC)
# Sized for containers (installed stripped: < 256 KiB, checked in build.bats):
# -Os and unused sections dropped. The applets' hot paths are system calls
# (splice, accept4, sendmsg), which -Os does not slow. No unwind tables:
# nothing in C unwinds (musl's thread cancellation does not), and they were
# 16 KiB of the file.
EXE_LDFLAGS = -static -Wl,--gc-sections
# musl ships no kernel headers; use the system's (linux-libc-dev).
KINC        = $(BUILD)/kinc
EXE_CFLAGS  = -isystem $(KINC) -Os -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables
endif

CORE_MUSL_OBJ    = $(CORE_SRC:%.c=$(BUILD)/exe/%.o)
APPLET_OBJ       = $(APPLET_SRC:%.c=$(BUILD)/exe/%.o)
# `make PARACONTAINER=1`: the library for glibc 2.17 and later, from objects
# of its own (preload/compat/glibc-old.h says how).
ifeq ($(PARACONTAINER),1)
PIC         = pic-para
PARA_STUBS  = $(BUILD)/para-stubs/libdl.so.2 $(BUILD)/para-stubs/libpthread.so.0
PARACONTAINER_FLAGS = -include preload/compat/glibc-old.h
LIB_SYSLIBS = -Wl,--no-as-needed $(PARA_STUBS)
else
PIC         = pic
LIB_SYSLIBS = -ldl -lpthread
endif
PARA_VER   := $(if $(findstring aarch64,$(shell $(CC) -dumpmachine)),GLIBC_2.17,GLIBC_2.2.5)
CORE_PIC_OBJ     = $(CORE_SRC:%.c=$(BUILD)/$(PIC)/%.o)
PRELOAD_OBJ      = $(PRELOAD_SRC:%.c=$(BUILD)/$(PIC)/%.o)
# Run as a program, the library is sockgate-mkctl (preload/prog.c).
PROG_PIC_OBJ     = $(BUILD)/$(PIC)/applets/mkctl.o $(BUILD)/$(PIC)/applets/util.o
CORE_HOST_OBJ    = $(CORE_SRC:%.c=$(BUILD)/host/%.o)
UNIT_BIN         = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/unit/%)
FUZZ_BIN         = $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
TOOL_BIN         = $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
GO_BIN           = $(GO_SRC:tests/tools/go/%.go=$(BUILD)/go/%)
STATIC_BIN       = $(STATIC_SRC:tests/tools/static/%.c=$(BUILD)/static/%)
APPLET_LINKS     = $(APPLET_NAMES:%=$(BUILD)/sockgate-%)
# The library for musl programs (Alpine): the same sources built with musl-gcc.
MUSL_PIC_OBJ     = $(patsubst $(BUILD)/$(PIC)/%,$(BUILD)/pic-musl/%,$(PRELOAD_OBJ) $(PROG_PIC_OBJ) $(CORE_PIC_OBJ))

DEPS_STAMP = $(BUILD)/.deps-ok

.PHONY: all deps check unit tools fuzz-build para-lib fuzz bench soak demo install uninstall clean lint
all: $(BUILD)/sockgate $(APPLET_LINKS) $(BUILD)/libsockgate.so $(BUILD)/libsockgate-musl.so

# --- dependencies: installed when root on Debian, else named -----------------
BUILD_PKGS = musl-tools libbsd-dev
TEST_PKGS  = bats bats-support bats-assert curl netcat-openbsd socat nginx haproxy \
             python3 iproute2 util-linux mandoc clang libclang-rt-14-dev \
             postgresql redis-server dnsutils dnsmasq-base default-jdk-headless nodejs systemd golang-go \
             iperf3
BENCH_PKGS = iperf3 wrk
deps: $(DEPS_STAMP)
$(DEPS_STAMP): tests/deps.sh
	@tests/deps.sh $(BUILD_PKGS) $(TEST_PKGS)
	@mkdir -p $(BUILD) && touch $@

# --- the static multi-call executable ---------------------------------------
$(BUILD)/exe/%.o: %.c $(HEADERS) Makefile | $(DEPS_STAMP) $(KINC)
	@mkdir -p $(dir $@)
	$(EXE_CC) $(BASE_CFLAGS) $(EXE_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

$(BUILD)/kinc: | $(DEPS_STAMP)
	@mkdir -p $@
	ln -sfn /usr/include/linux $@/linux
	ln -sfn /usr/include/asm-generic $@/asm-generic
	ln -sfn $$(dirname $$(find /usr/include -path '*/asm/types.h' | grep -v generic | head -1)) $@/asm

$(BUILD)/sockgate: $(CORE_MUSL_OBJ) $(APPLET_OBJ)
	$(EXE_CC) $(EXE_LDFLAGS) $(LDFLAGS) -o $@ $^ $(BSD_LIBS)

$(BUILD)/sockgate-%: $(BUILD)/sockgate
	ln -sf sockgate $@

# --- the preload library (glibc) ---------------------------------------------
$(BUILD)/$(PIC)/%.o: %.c $(HEADERS) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Ipreload -fPIC -fvisibility=hidden $(PARACONTAINER_FLAGS) -c -o $@ $<

$(BUILD)/libsockgate.map: preload/hooks.def
	@mkdir -p $(BUILD)
	{ echo '{ global:'; sed -n 's/^HOOK(\([a-z0-9_]*\),.*/  \1;/p' $<; \
	  echo 'local: *; };'; } > $@

$(BUILD)/libsockgate.so: $(PRELOAD_OBJ) $(PROG_PIC_OBJ) $(CORE_PIC_OBJ) $(BUILD)/libsockgate.map $(PARA_STUBS)
	$(CC) -shared -fPIC $(LDFLAGS) -Wl,--version-script=$(BUILD)/libsockgate.map \
	  -Wl,-z,now -Wl,-e,sg_prog_start -o $@ $(PRELOAD_OBJ) $(PROG_PIC_OBJ) $(CORE_PIC_OBJ) $(BSD_LIBS) $(LIB_SYSLIBS)

$(BUILD)/para-stubs/%: preload/compat/glibc-old-stubs.c
	@mkdir -p $(dir $@)
	echo '$(PARA_VER) { global: *; };' > $@.map
	$(CC) -shared -fPIC $(if $(findstring libdl,$*),-DSTUB_LIBDL) -Wl,-soname,$* \
	  -Wl,--version-script=$@.map -o $@ $<

$(BUILD)/pic-musl/%.o: %.c $(HEADERS) | $(DEPS_STAMP) $(BUILD)/kinc
	@mkdir -p $(dir $@)
	$(MUSLCC) $(BASE_CFLAGS) -isystem $(BUILD)/kinc -Ipreload -fPIC -fvisibility=hidden -c -o $@ $<

$(BUILD)/libsockgate-musl.so: $(MUSL_PIC_OBJ) $(BUILD)/libsockgate.map
	$(MUSLCC) -shared -fPIC $(LDFLAGS) -Wl,--version-script=$(BUILD)/libsockgate.map \
	  -Wl,-z,now -Wl,-e,sg_prog_start -o $@ $(MUSL_PIC_OBJ) $(BSD_LIBS)

# The old-glibc build that `make check` reads the version needs of.
para-lib:
	@$(MAKE) --no-print-directory PARACONTAINER=1 BUILD=$(BUILD)/para $(BUILD)/para/libsockgate.so

# --- tests -------------------------------------------------------------------
$(BUILD)/host/%.o: %.c $(HEADERS) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

$(BUILD)/unit/%: tests/unit/%.c $(CORE_HOST_OBJ) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -Itests/unit -o $@ $< $(CORE_HOST_OBJ) $(BSD_LIBS)

unit: $(UNIT_BIN)

# Only pattern rules name these, which would make them intermediate files
# that make deletes after each run (and rebuilds on the next).
.SECONDARY: $(CORE_HOST_OBJ)

# Small test programs the bats suites drive (built with glibc, linked to core).
$(BUILD)/tools/%: tests/tools/%.c $(CORE_HOST_OBJ) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -o $@ $< $(CORE_HOST_OBJ) $(BSD_LIBS) -lpthread

# Programs no preload reaches (sockgate-run --seccomp): Go with CGO_ENABLED=0,
# standard library only, built offline with its cache under build/; and C
# linked statically with musl.
$(BUILD)/go/%: tests/tools/go/%.go | $(DEPS_STAMP)
	@mkdir -p $(BUILD)/go
	cd $(BUILD)/go && GOCACHE=$(abspath $(BUILD))/go/cache GOPATH=$(abspath $(BUILD))/go/path GOENV=off \
	  GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0 go build -o $(abspath $@) $(abspath $<)

$(BUILD)/static/%: tests/tools/static/%.c | $(DEPS_STAMP) $(KINC)
	@mkdir -p $(dir $@)
	$(MUSLCC) -static -O2 $(WARN) -o $@ $<

tools: $(TOOL_BIN) $(GO_BIN) $(STATIC_BIN)

FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
$(BUILD)/fuzz/%: tests/fuzz/%.c $(CORE_SRC) $(HEADERS) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CLANG) -std=gnu11 -D_GNU_SOURCE -Icore $(BSD_CFLAGS) $(FUZZ_FLAGS) -o $@ $< $(CORE_SRC) $(BSD_LIBS)

fuzz-build: $(FUZZ_BIN)

fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do n=$${f##*/fuzz_}; mkdir -p $(BUILD)/fuzz/new-$$n; \
	  echo "fuzz $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 $(BUILD)/fuzz/new-$$n tests/fuzz/corpus/$$n \
	    2>$(BUILD)/fuzz/$$n.log || { tail -40 $(BUILD)/fuzz/$$n.log; exit 1; }; done; echo "fuzz: all targets clean"

# FUZZ_SMOKE=0 leaves out the fuzz targets' 3-second smoke run (and their
# build); BATS_STREAMS=2 runs the bats files in two processes (tests/run.sh).
FUZZ_SMOKE ?= 3
check: all unit tools $(if $(filter 0,$(FUZZ_SMOKE)),,fuzz-build) para-lib
	@SANITIZE=$(SANITIZE) BUILD=$(BUILD) FUZZ_SMOKE=$(FUZZ_SMOKE) tests/run.sh

bench: all
	@tests/deps.sh $(BENCH_PKGS)
	@for b in tests/bench/*.sh; do BUILD=$(BUILD) bash $$b || exit 1; done

# Not in check: relay and server under load for SOAK_SECONDS (tests/soak.sh).
SOAK_SECONDS ?= 600
soak: all tools
	@tests/deps.sh $(BENCH_PKGS)
	@SOAK_SECONDS=$(SOAK_SECONDS) BUILD=$(BUILD) tests/soak.sh

demo: all
	@BUILD=$(BUILD) tests/demo.sh

lint:
	mandoc -Tlint -Wwarning man/*.[1-8]

# --- install -----------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib \
	  $(DESTDIR)$(PREFIX)/share/doc/sockgate/examples
	install -s -m 755 $(BUILD)/sockgate $(DESTDIR)$(PREFIX)/bin/sockgate
	for a in $(APPLET_NAMES); do ln -sf sockgate $(DESTDIR)$(PREFIX)/bin/sockgate-$$a; done
	install -m 755 $(BUILD)/libsockgate.so $(DESTDIR)$(PREFIX)/lib/libsockgate.so
	install -m 755 $(BUILD)/libsockgate-musl.so $(DESTDIR)$(PREFIX)/lib/libsockgate-musl.so
	for m in man/*.[1-8]; do s=$${m##*.}; install -d $(DESTDIR)$(PREFIX)/share/man/man$$s; \
	  install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/; done
	for e in man/examples/*; do [ -f "$$e" ] && install -m 644 $$e $(DESTDIR)$(PREFIX)/share/doc/sockgate/examples/; done; true

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/sockgate $(APPLET_NAMES:%=$(DESTDIR)$(PREFIX)/bin/sockgate-%)
	rm -f $(DESTDIR)$(PREFIX)/lib/libsockgate.so $(DESTDIR)$(PREFIX)/lib/libsockgate-musl.so
	for m in man/*.[1-8]; do s=$${m##*.}; rm -f $(DESTDIR)$(PREFIX)/share/man/man$$s/$${m##*/}; done
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/sockgate

clean:
	rm -rf $(BUILD)
