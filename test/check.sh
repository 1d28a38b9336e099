#!/bin/bash
# test/check.sh - the whole mfgsync test suite, from a fresh machine.
#
# Installs the packages it needs, builds and installs mfgsync, then runs all
# three layers in a copy of the tree owned by an unprivileged user:
# pg_regress (sql/, expected/), isolation (test/specs/) and TAP (test/t/).
# Every layer runs even if an earlier one failed.  Exits non-zero when
# anything failed and ends with the line "N passed, N failed".
#
# While developing, a subset: MFGSYNC_LAYERS="regress tap" (default: all
# three), MFGSYNC_REGRESS="install pull" (pg_regress tests), MFGSYNC_TAP=
# "test/t/060_pull.pl" (TAP scripts).  CI sets none of them.
set -u
. "$(dirname "$0")/common.sh"

layers=${MFGSYNC_LAYERS:-regress isolation tap}
regress_args=()
[ -n "${MFGSYNC_REGRESS:-}" ] && regress_args=("REGRESS=$MFGSYNC_REGRESS")
tap_args=()
[ -n "${MFGSYNC_TAP:-}" ] && tap_args=("PROVE_TESTS=$MFGSYNC_TAP")

passed=0
failed=0
status=0

summary()
{
    echo "$passed passed, $failed failed"
}

if ! prepare; then
    echo "test/check.sh: build or installation failed" >&2
    failed=$((failed + 1))
    summary
    exit 1
fi

work=$(make_workdir check)
echo "test/check.sh: running in $work as $( [ "$(id -u)" = 0 ] && echo "$MFGSYNC_USER" || id -un)"

# count_regress log: add pg_regress's summary of log to the totals
count_regress()
{
    local total nfail
    if grep -qE '^ *All [0-9]+ tests passed' "$1"; then
        total=$(grep -oE 'All [0-9]+ tests passed' "$1" | grep -oE '[0-9]+')
        passed=$((passed + total))
    elif grep -qE '[0-9]+ of [0-9]+ tests failed' "$1"; then
        nfail=$(grep -oE '[0-9]+ of [0-9]+ tests failed' "$1" | awk '{print $1}')
        total=$(grep -oE '[0-9]+ of [0-9]+ tests failed' "$1" | awk '{print $3}')
        passed=$((passed + total - nfail))
        failed=$((failed + nfail))
    else
        failed=$((failed + 1))      # pg_regress did not get to run the tests
    fi
}

# layer name make-arguments...: run one layer, keep its log
layer()
{
    local name=$1 rc
    shift
    echo "=== $name"
    run_unprivileged make -C "$work" installcheck "$@" 2>&1 | tee "$work/$name.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || status=1
    return "$rc"
}

if [[ " $layers " == *" regress "* ]]; then
    layer regress ISOLATION= TAP_TESTS= "${regress_args[@]}"
    count_regress "$work/regress.log"
    [ -f "$work/regression.diffs" ] && cat "$work/regression.diffs"
fi

if [[ " $layers " == *" isolation "* ]]; then
    layer isolation REGRESS= TAP_TESTS=
    count_regress "$work/isolation.log"
    [ -f "$work/output_iso/regression.diffs" ] && cat "$work/output_iso/regression.diffs"
fi

if [[ " $layers " == *" tap "* ]]; then
    layer tap REGRESS= ISOLATION= PROVE_FLAGS=--verbose "${tap_args[@]}"
    tap_rc=$?
    tap_ok=0
    tap_fail=1          # no log at all: the layer did not run
    if [ -f "$work/tap.log" ]; then
        tap_ok=$(grep -cE '^ok [0-9]+' "$work/tap.log")
        tap_fail=$(grep -cE '^not ok [0-9]+' "$work/tap.log")
    fi
    # a script that died or missed its plan fails without a "not ok" line
    [ "$tap_rc" != 0 ] && [ "$tap_fail" = 0 ] && tap_fail=1
    passed=$((passed + tap_ok))
    failed=$((failed + tap_fail))
    if [ "$tap_rc" != 0 ]; then
        for f in "$work"/tmp_check/log/regress_log_*; do
            [ -f "$f" ] && { echo "--- $f (last 40 lines)"; tail -n 40 "$f"; }
        done
    fi
fi

[ "$failed" = 0 ] || status=1
# keep the work copy (logs, diffs, TAP cluster logs) only when something failed
if [ "$status" = 0 ]; then
    rm -rf "$work"
else
    echo "test/check.sh: logs and diffs kept in $work"
fi
summary
exit "$status"
