# lb — build, run and test. See README.md.
#   make          build build/lb and build/demo-backend
#   make run      install what is missing, then run the demo (lb + 3 backends)
#   make test     install what is missing, run make check, then every test on
#                 the normal build and on an ASan/UBSan build (build-asan/)
#   make check    formatting and include rules (scripts/check-format,
#                 scripts/check-includes) and their self-test (scripts/test-checks)
#   make format   format every C file in place with clang-format
#   make valgrind the main integration suites with lb under valgrind's memcheck
#                 (scripts/run-valgrind; not part of make test; installs valgrind)
#   make bench-pick  time picks and updates of every strategy (tests/bench/)

CC := gcc
BUILD ?= build
SAN ?= 0
PKGS := libevent libevent_openssl openssl jansson
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
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
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

.PHONY: all tests run test check deps clean format bench-pick valgrind
all: $(BUILD)/lb $(BUILD)/demo-backend
tests: $(BUILD)/lb-tests $(TEST_SHIM)

$(BUILD)/obj/%.o: %.c
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
	@$(MAKE) --no-print-directory check
	@$(MAKE) --no-print-directory BUILD=build all tests
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 all tests
	@scripts/run-tests build
	@scripts/run-tests build-asan

# Not part of make test: slow (lb runs ~20x slower). VALGRIND_SUITES picks
# the suites; scripts/run-valgrind says which tests skip themselves there.
VALGRIND_SUITES ?= session http reload tls_listen admin
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

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
