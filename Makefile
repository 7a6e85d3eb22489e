# lb — build, run and test. See README.md.
#   make          build build/lb and build/demo-backend
#   make run      install what is missing, then run the demo (lb + 3 backends)
#   make test     install what is missing (scripts/install-deps, and the browser
#                 tests' npm packages: scripts/install-node-deps), run make
#                 check, then every test on the normal build and on an
#                 ASan/UBSan build (build-asan/), then lb.service under a
#                 systemd of its own (scripts/systemd-check)
#   make check    formatting and include rules (scripts/check-format,
#                 scripts/check-includes) and their self-test (scripts/test-checks)
#   make format   format every C file in place with clang-format
#   make valgrind every integration suite with lb under valgrind's memcheck
#                 (scripts/run-valgrind; not part of make test; installs valgrind)
#   make soak     the memory-flat fault tests with 100,000 TLS sessions, both
#                 builds (scripts/run-soak; not part of make test)
#   make bench-pick  time picks and updates of every strategy (tests/bench/)
#   make fuzz     build the libFuzzer targets (tests/fuzz/, with clang, into
#                 build-fuzz/) and run each for FUZZ_SECONDS (default 300)
#   make fuzz-smoke  the same for FUZZ_SMOKE_SECONDS each (default 20); make
#                 test runs it last

CC := gcc
BUILD ?= build
SAN ?= 0
PKGS := libevent libevent_openssl openssl jansson libcares
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

ifeq ($(SAN),1)
OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
else
OPT := -O2
endif

# Recursive (=) on purpose: pkg-config runs only once install-deps has run.
CFLAGS = -std=gnu11 -g $(OPT) -Wall -Wextra -Werror -D_GNU_SOURCE -I. \
         -DLB_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS))
LDLIBS = $(shell pkg-config --libs $(PKGS)) -lm
TEST_CFLAGS = $(shell pkg-config --cflags check)
TEST_LDLIBS = $(shell pkg-config --libs check)

LIB_SRCS := $(wildcard config/*.c health/*.c) $(filter-out lb/main.c,$(wildcard lb/*.c lb/*/*.c))
# The dashboard page (lb/admin/dashboard.html) is built into lb:
# scripts/embed-dashboard writes it, with its Content-Security-Policy (the
# SHA-256 of its inline script and style), as a C file under $(BUILD)/gen/.
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/lb/admin/dashboard_page.o
# llhttp comes from Debian's node-llhttp (scripts/install-deps), which ships C
# sources, not a library: its three files are compiled from where Debian puts
# them into liblb.a. Nothing of llhttp is copied into this repo.
LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp
LLHTTP_OBJS := $(addprefix $(BUILD)/obj/llhttp/,api.o http.o llhttp.o)
TEST_SRCS := $(wildcard tests/*.c tests/harness/*.c tests/unit/*.c tests/integration/*.c)
# A shim the tests preload into lb (LD_PRELOAD), built without sanitizers.
TEST_SHIM := $(BUILD)/small-sndbuf.so
TEST_OBJS := $(TEST_SRCS:%.c=$(BUILD)/obj/%.o)

.PHONY: all tests run test check deps clean format install bench-pick fuzz fuzz-smoke fuzz-build valgrind soak
all: $(BUILD)/lb $(BUILD)/demo-backend
tests: $(BUILD)/lb-tests $(TEST_SHIM)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/gen/lb/admin/dashboard_page.c: lb/admin/dashboard.html scripts/embed-dashboard
	@mkdir -p $(dir $@)
	python3 scripts/embed-dashboard $< $@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# Only lb/proto/ speaks HTTP through llhttp, so only it sees llhttp's header.
$(BUILD)/obj/lb/proto/%.o: CFLAGS += -I$(LLHTTP_INC)

# llparse's generated code leaves hundreds of callback parameters unused, and
# these are Debian's files, not ours to edit: for them alone that warning is
# off and the others are shown but do not fail the build (a Debian update that
# warns differently must not break lb's). Our own code keeps -Werror.
$(BUILD)/obj/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Werror,$(CFLAGS)) -Wno-unused-parameter -I$(LLHTTP_INC) -MMD -MP -c -o $@ $<

$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_CFLAGS) -DLB_BUILD_DIR='"$(abspath $(BUILD))"' -MMD -MP -c -o $@ $<

$(BUILD)/liblb.a: $(LIB_OBJS) $(LLHTTP_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/lb: $(BUILD)/obj/lb/main.o $(BUILD)/liblb.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/demo-backend: $(BUILD)/obj/scripts/demo-backend.o
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/lb-tests: $(TEST_OBJS) $(BUILD)/liblb.a
	$(CC) $(CFLAGS) -o $@ $^ $(TEST_LDLIBS) $(LDLIBS)

$(TEST_SHIM): tests/shim/small_sndbuf.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -shared -fPIC -o $@ $< -ldl

# Not part of make test: prints a markdown table (docs/performance.md, Picks).
bench-pick: $(BUILD)/bench-pick
	$(BUILD)/bench-pick

$(BUILD)/bench-pick: $(BUILD)/obj/tests/bench/bench_pick.o $(BUILD)/liblb.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

deps:
	@scripts/install-deps

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo-run

test: deps
	@scripts/install-node-deps
	@$(MAKE) --no-print-directory check
	@$(MAKE) --no-print-directory BUILD=build all tests
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 all tests
	@scripts/run-tests build
	@scripts/run-tests build-asan
	@scripts/systemd-check build
	@$(MAKE) --no-print-directory fuzz-smoke

# make install [PREFIX=/usr/local] [DESTDIR=]: the binary, the man pages,
# the systemd unit (its paths the install's), the logrotate file, the
# documents (and the dashboard's screenshot admin-api.md shows) and an
# example config; /etc/lb/lb.json only when there is none (a file in use is never
# overwritten). Needs the build: `make` first (or BUILD=build-asan...).
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/lb
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
install: $(BUILD)/lb
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/lb
	install -m 0755 $(BUILD)/lb $(DESTDIR)$(SBINDIR)/lb
	install -m 0644 dist/lb.8 $(DESTDIR)$(MANDIR)/man8/lb.8
	install -m 0644 dist/lb.json.5 $(DESTDIR)$(MANDIR)/man5/lb.json.5
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' dist/lb.service.in \
	    > $(DESTDIR)$(UNITDIR)/lb.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/lb.service
	install -m 0644 README.md docs/*.md docs/dashboard.png $(DESTDIR)$(DOCDIR)/
	install -m 0644 dist/lb.json dist/lb.logrotate config/examples/*.json examples/lb@.service \
	    $(DESTDIR)$(DOCDIR)/examples/
	install -d $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	install -m 0644 dist/lb.logrotate $(DESTDIR)$(SYSCONFDIR)/logrotate.d/lb
	[ -e $(DESTDIR)$(SYSCONFDIR)/lb/lb.json ] || \
	    install -m 0644 dist/lb.json $(DESTDIR)$(SYSCONFDIR)/lb/lb.json

# Not part of make test: the memory-flat fault tests over 100,000 TLS
# sessions (make test runs 30,000), in the plain and the ASan build.
soak: deps
	@$(MAKE) --no-print-directory BUILD=build all tests
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 all tests
	@scripts/run-soak build build-asan

# Not part of make test: slow (lb runs ~20x slower; every integration suite
# takes over an hour). VALGRIND_SUITES picks the suites; scripts/run-valgrind
# says which tests skip themselves there.
VALGRIND_SUITES ?=
valgrind: deps
	@scripts/install-deps valgrind
	@$(MAKE) --no-print-directory BUILD=build all tests
	@scripts/run-valgrind build $(VALGRIND_SUITES)

# All three run, so one failure does not hide another.
check: deps
	@rc=0; scripts/check-format || rc=1; scripts/check-includes || rc=1; \
	scripts/test-checks || rc=1; exit $$rc

# The files scripts/check-format checks, subfolders included.
format:
	find lb config health tests scripts -type f -name '*.[ch]' -exec clang-format -i {} +

# --- fuzzing (tests/fuzz/, docs/reliability.md) ---
# Each target is lb's own sources built again with clang's libFuzzer and
# ASan/UBSan into build-fuzz/ (never the gcc objects), linked with only what
# it drives. A run works on a copy of the committed corpus under
# build-fuzz/corpus/, so tests/fuzz/corpus/ changes only on purpose, and
# fails on any crash, leak, timeout or sanitizer report.
FUZZ_BUILD := build-fuzz
FUZZ_CC := clang
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = -std=gnu11 -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) -Wall -Wextra -Werror \
              -D_GNU_SOURCE -I. -I$(LLHTTP_INC) -DLB_VERSION='"$(VERSION)"' \
              $(shell pkg-config --cflags jansson)
FUZZ_TARGETS := config proxy http_request http_response tls_hello admin dns etcd
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_LLHTTP := $(addprefix $(FUZZ_BUILD)/obj/llhttp/,api.o http.o llhttp.o)
# What each target links besides its own file.
FUZZ_SRCS_config := config/config_load.c config/config_address.c config/config_escape.c \
                    config/json_locate.c
FUZZ_LIBS_config := $(shell pkg-config --libs jansson 2>/dev/null)
FUZZ_SRCS_proxy := lb/proto/proxy_proto.c
FUZZ_SRCS_http_request := lb/proto/http_head.c
FUZZ_SRCS_http_response := lb/proto/http_head.c lb/proto/http_body.c
FUZZ_SRCS_tls_hello := lb/proto/tls_hello.c
FUZZ_SRCS_admin := lb/admin/admin_request.c config/config_escape.c
FUZZ_LIBS_admin := $(shell pkg-config --libs jansson 2>/dev/null)
FUZZ_SRCS_dns := lb/proto/dns_answer.c
FUZZ_SRCS_etcd := lb/proto/etcd_msg.c
FUZZ_LIBS_etcd := $(shell pkg-config --libs jansson 2>/dev/null) -lcrypto
# Per target: the longest input tried (a head, a config, a ClientHello).
FUZZ_MAXLEN_config := 8192
FUZZ_MAXLEN_proxy := 512
FUZZ_MAXLEN_http_request := 8192
FUZZ_MAXLEN_http_response := 8192
FUZZ_MAXLEN_tls_hello := 4096
FUZZ_MAXLEN_admin := 8192
FUZZ_MAXLEN_dns := 4096
FUZZ_MAXLEN_etcd := 8192

fuzz-build: $(FUZZ_BINS)

# Instrumented for libFuzzer (coverage) but without its main: only the
# target's own file is linked with -fsanitize=fuzzer.
$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_BUILD)/obj/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(filter-out -Werror,$(FUZZ_CFLAGS)) -Wno-unused-parameter \
	    -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

# fuzz_rule(TARGET): build-fuzz/fuzz_TARGET from its file and its FUZZ_SRCS_.
define fuzz_rule
$(FUZZ_BUILD)/fuzz_$(1): $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_$(1).o \
                         $(FUZZ_SRCS_$(1):%.c=$(FUZZ_BUILD)/obj/%.o) \
                         $(if $(findstring http,$(1)),$(FUZZ_LLHTTP))
	$(FUZZ_CC) $$(FUZZ_CFLAGS) -fsanitize=fuzzer -o $$@ $$^ $$(FUZZ_LIBS_$(1))
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_rule,$(t))))

# One run per target, FUZZ_SECONDS each, on a copy of the corpus (the
# committed seeds plus what earlier runs found); any failure fails the run
# after every target has had its turn. A crash leaves its input in
# build-fuzz/artifacts/ (docs/reliability.md: adding it to the corpus).
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@scripts/run-fuzz $(FUZZ_BUILD) $(FUZZ_SECONDS) $(foreach t,$(FUZZ_TARGETS),$(t):$(FUZZ_MAXLEN_$(t)))

fuzz-smoke: deps
	@$(MAKE) --no-print-directory fuzz-build
	@scripts/run-fuzz $(FUZZ_BUILD) $(FUZZ_SMOKE_SECONDS) $(foreach t,$(FUZZ_TARGETS),$(t):$(FUZZ_MAXLEN_$(t)))

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD)/obj $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
