# Makefile for mfgsync (PGXS)

EXTENSION = mfgsync
EXTVERSION = $(shell sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" $(EXTENSION).control)

MODULE_big = mfgsync
OBJS = \
	src/capture.o \
	src/guc.o \
	src/http.o \
	src/json.o \
	src/launcher.o \
	src/mfgsync.o \
	src/outbox.o \
	src/sender.o \
	src/webhook.o

DATA = $(wildcard sql/mfgsync--*.sql)

PKG_LIBS = libcurl json-c libxml-2.0
PG_CPPFLAGS = -Isrc -DMFGSYNC_VERSION=\"$(EXTVERSION)\" $(shell pkg-config --cflags $(PKG_LIBS))
PG_CFLAGS = -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare
SHLIB_LINK = $(shell pkg-config --libs $(PKG_LIBS))

# pg_regress: sql/<test>.sql against expected/<test>.out, on its own server
REGRESS = install guc capture capture_types capture_errors capture_privileges \
	reader endpoints drop_extension
REGRESS_OPTS = --temp-instance=tmp_check_regress --temp-config=test/mfgsync.conf

# isolation: test/specs/<spec>.spec against test/expected/<spec>.out
ISOLATION = $(basename $(notdir $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --temp-instance=tmp_check_iso \
	--temp-config=test/mfgsync.conf

# TAP: test/t/*.pl with PostgreSQL::Test::Cluster
TAP_TESTS = 1
PROVE_TESTS = $(wildcard test/t/*.pl)

EXTRA_CLEAN = tmp_check_regress tmp_check_iso output_iso results \
	test/results typedefs.list

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

.PHONY: indent bench

# pgindent's layout with Debian's pg_bsd_indent (see ../shared/STYLE.md, 8)
indent: all
	objdump -W $(OBJS) | awk '/DW_TAG_typedef/{f=1;next} f&&/DW_AT_name/{print $$NF;f=0}' | sort -u > typedefs.list
	for f in src/*.c src/*.h; do \
		pg_bsd_indent -bad -bap -bbb -bc -bl -cli1 -cp33 -cdb -nce -d0 -di12 -nfc1 \
			-i4 -l79 -lp -lpl -nip -npro -sac -tpg -ts4 -Utypedefs.list "$$f" || exit 1; \
	done
	rm -f src/*.BAK

bench:
	test/bench/run.sh
