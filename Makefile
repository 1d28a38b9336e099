# Makefile for mfgsync (PGXS)

EXTENSION = mfgsync
EXTVERSION = $(shell sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" $(EXTENSION).control)

MODULE_big = mfgsync
# one object per subsystem: every src/*.c
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# the install script is put together from sql/install/*.sql, in name order
# (00_core.sql first), one file per subsystem
DATA_built = $(EXTENSION)--$(EXTVERSION).sql

PKG_LIBS = libcurl json-c libxml-2.0
# -MMD: each object records the headers it read, so a header change rebuilds it
PG_CPPFLAGS = -MMD -MP -Isrc -DMFGSYNC_VERSION=\"$(EXTVERSION)\" $(shell pkg-config --cflags $(PKG_LIBS))
PG_CFLAGS = -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare
SHLIB_LINK = $(shell pkg-config --libs $(PKG_LIBS))

# pg_regress: sql/<test>.sql against expected/<test>.out, on its own server
# (the suites of later subsystems are picked up by their names' prefixes)
REGRESS = install guc capture capture_nested capture_types capture_errors capture_privileges \
	reader endpoints \
	$(sort $(basename $(notdir $(wildcard sql/b2mml*.sql sql/http_fdw*.sql sql/pull*.sql)))) \
	drop_extension
REGRESS_OPTS = --temp-instance=tmp_check_regress --temp-config=test/mfgsync.conf

# isolation: test/specs/<spec>.spec against test/expected/<spec>.out
ISOLATION = $(basename $(notdir $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --temp-instance=tmp_check_iso \
	--temp-config=test/mfgsync.conf

# TAP: test/t/*.pl with PostgreSQL::Test::Cluster
TAP_TESTS = 1
PROVE_TESTS = $(wildcard test/t/*.pl)

EXTRA_CLEAN = $(OBJS:.o=.d) tmp_check_regress tmp_check_iso output_iso results \
	test/results typedefs.list

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

-include $(OBJS:.o=.d)

$(EXTENSION)--$(EXTVERSION).sql: $(sort $(wildcard sql/install/*.sql))
	cat $^ > $@

# MESA's B2MML V0600 schemas (used by the tests too), for inbound validation:
# mfgsync.b2mml_schema = '$sharedir/extension/mfgsync/b2mml/mfgsync-b2mml-V0600.xsd'
B2MML_DIR = $(datadir)/extension/$(EXTENSION)/b2mml
install: install-b2mml
uninstall: uninstall-b2mml
.PHONY: install-b2mml uninstall-b2mml
install-b2mml:
	$(MKDIR_P) '$(DESTDIR)$(B2MML_DIR)/V0600'
	$(INSTALL_DATA) test/b2mml/xsd/mfgsync-b2mml-V0600.xsd '$(DESTDIR)$(B2MML_DIR)/'
	$(INSTALL_DATA) test/b2mml/xsd/V0600/*.xsd test/b2mml/xsd/V0600/LICENSE '$(DESTDIR)$(B2MML_DIR)/V0600/'
uninstall-b2mml:
	rm -rf '$(DESTDIR)$(B2MML_DIR)'

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
