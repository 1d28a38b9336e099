#!/bin/bash
# test/bench/instructions.sh - what each capture costs the server per
# transaction, in instructions counted by valgrind (callgrind): a figure
# that does not move with this machine's speed, unlike run.sh's tps.
#
#   test/bench/instructions.sh                 # 200 and 600 updates per run
#   SMALL=100 LARGE=300 test/bench/instructions.sh
#
# Installs what is missing, builds and installs mfgsync (test/common.sh's
# prepare), creates the tables of run.sh (setup.sql) in a throwaway cluster
# as the unprivileged user $MFGSYNC_USER when started as root, stops it, and
# then runs the server in single-user mode under callgrind, once per
# protocol, variant and count: SMALL, then LARGE single-row UPDATEs by
# primary key, each its own transaction, synchronous_commit = off:
#
#   simple    UPDATE ... WHERE aid = <constant>: parsed and planned every
#             time, as with pgbench's default protocol;
#   prepared  EXECUTE of a prepared UPDATE: planned once, as with
#             pgbench -M prepared (the EXECUTE statement itself is parsed).
#
# The instructions of one transaction are (LARGE run - SMALL run) /
# (LARGE - SMALL): start-up, shutdown and the first use of each trigger
# function cancel out.  Every variant updates the same rows in the same
# order; before its measured runs, one unmeasured run updates them all, and
# every run starts with the outboxes emptied and the tables vacuumed.  After
# each run the script checks that the variant's capture wrote one event per
# update.  The client's side (pgbench, the protocol) is not counted, so
# "untracked / tracked" is lower than run.sh's tps ratio for the same cost.
set -Eeuo pipefail

SMALL=${SMALL:-200}
LARGE=${LARGE:-600}
PORT=55441

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common.sh
. "$HERE/../common.sh"
# shellcheck source=variants.sh
. "$HERE/variants.sh"

msg() { echo "instructions.sh: $*"; }
die() { echo "instructions.sh: $*" >&2; exit 1; }

case "$SMALL" in '' | *[!0-9]* | 0*) die "SMALL must be a positive integer" ;; esac
case "$LARGE" in '' | *[!0-9]* | 0*) die "LARGE must be a positive integer" ;; esac
[ "$LARGE" -gt "$SMALL" ] || die "LARGE must be larger than SMALL"

trap 'stop_cluster' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# single sql-file [command...]: run the statements of sql-file (one per line,
# each its own transaction) in a single-user server, under command if given
# (valgrind); the server's output in $CLUSTER_DIR/single.out
single()
{
    local f=$1
    shift
    if ! run_unprivileged "$@" postgres --single -D "$CLUSTER_DIR/data" -c synchronous_commit=off \
        bench <"$f" >"$CLUSTER_DIR/single.out" 2>&1 ||
        grep -q 'ERROR:' "$CLUSTER_DIR/single.out"; then
        cat "$CLUSTER_DIR/single.out" >&2
        die "single-user run of $f failed"
    fi
}

# events variant: the statement that counts the variant's captured events
events_sql()
{
    case "$1" in
        plain)   echo "SELECT 0 AS n;" ;;
        mfgsync) echo "SELECT count(*) AS n FROM mfgsync.outbox;" ;;
        plpgsql) echo "SELECT count(*) AS n FROM bench_plpgsql_outbox;" ;;
        pgq)     echo "SELECT count(*) AS n FROM pgq.event_template;" ;;
        rowonly) echo "SELECT count(*) AS n FROM bench_event_rows;" ;;
    esac
}

# statements protocol variant n: n updates of accounts_<variant>, the same
# rows in the same order for every variant, then the event count
statements()
{
    local protocol=$1 v=$2 n=$3 update
    # shellcheck disable=SC2016  # $1 and $2 are the statement's parameters
    update=$(variant_update "$v" '$1' '$2')
    [ "$protocol" = prepared ] && echo "PREPARE u(int, int) AS $update;"
    awk -v n="$n" -v protocol="$protocol" -v update="$update" 'BEGIN {
        for (i = 1; i <= n; i++) {
            delta = i % 9 + 1; aid = (i * 7919) % 100000 + 1
            if (protocol == "prepared")
                printf "EXECUTE u(%d, %d);\n", delta, aid
            else {
                s = update; sub(/\$1/, delta, s); sub(/\$2/, aid, s); print s ";"
            }
        }
    }'
    events_sql "$v"
}

# reset: empty the outboxes and vacuum the tables, so that every run starts
# from the same state
reset()
{
    cat >"$CLUSTER_DIR/reset.sql" <<'EOF'
TRUNCATE mfgsync.outbox;
TRUNCATE bench_plpgsql_outbox;
TRUNCATE bench_event_rows;
SELECT pgq.drop_queue('bench');
SELECT pgq.create_queue('bench');
VACUUM accounts_plain, accounts_mfgsync, accounts_plpgsql, accounts_pgq, accounts_rowonly;
CHECKPOINT;
EOF
    chmod a+r "$CLUSTER_DIR/reset.sql"
    single "$CLUSTER_DIR/reset.sql"
}

declare -A IR               # "protocol/variant" -> instructions per transaction

# measure protocol variant: callgrind runs of SMALL and LARGE updates,
# after an unmeasured run of LARGE: each measured run then updates rows
# that were updated once and vacuumed since, on pages with room for the new
# version, as in the steady state of run.sh
measure()
{
    local protocol=$1 v=$2 n f ir ev want
    local -A total
    for n in "$SMALL" "$LARGE"; do
        f="$CLUSTER_DIR/$protocol-$v-$n.sql"
        statements "$protocol" "$v" "$n" >"$f"
        chmod a+r "$f"
    done
    reset
    single "$CLUSTER_DIR/$protocol-$v-$LARGE.sql"
    for n in "$SMALL" "$LARGE"; do
        reset
        f="$CLUSTER_DIR/$protocol-$v-$n.sql"
        single "$f" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
            --log-file="$CLUSTER_DIR/valgrind.log"
        total[$n]=$(sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' "$CLUSTER_DIR/valgrind.log")
        [ -n "${total[$n]}" ] || { cat "$CLUSTER_DIR/valgrind.log" >&2; die "no instruction count"; }
        ev=$(sed -n 's/^[[:space:]]*1: n = "\([0-9]*\)".*/\1/p' "$CLUSTER_DIR/single.out" | tail -n 1)
        want=$n
        [ "$v" = plain ] && want=0
        [ "$ev" = "$want" ] || die "$protocol/$v: $n updates but ${ev:-no} events captured"
    done
    ir=$(( (total[$LARGE] - total[$SMALL]) / (LARGE - SMALL) ))
    IR[$protocol/$v]=$ir
    printf 'instructions.sh:   %-8s %-9s %9d instructions per transaction\n' "$protocol" "${LABEL[$v]}" "$ir"
}

report()
{
    local protocol v base ir
    echo
    echo "=== server instructions per single-row UPDATE transaction (callgrind, $SMALL vs $LARGE updates)"
    for protocol in simple prepared; do
        base=${IR[$protocol/plain]}
        printf '%-8s untracked %d' "$protocol" "$base"
        for v in "${VARIANTS[@]:1}"; do
            ir=${IR[$protocol/$v]}
            printf ' | %s +%d (%.0f%%; untracked/tracked %.1f%%)' "${LABEL[$v]}" "$((ir - base))" \
                "$(awk "BEGIN { print 100 * ($ir - $base) / $base }")" \
                "$(awk "BEGIN { print 100 * $base / $ir }")"
        done
        echo
        printf '%-8s mfgsync costs %.2fx what PL/pgSQL costs, %.2fx what PgQ costs, %.2fx what the event row costs\n' \
            "$protocol" \
            "$(awk "BEGIN { print (${IR[$protocol/mfgsync]} - $base) / (${IR[$protocol/plpgsql]} - $base) }")" \
            "$(awk "BEGIN { print (${IR[$protocol/mfgsync]} - $base) / (${IR[$protocol/pgq]} - $base) }")" \
            "$(awk "BEGIN { print (${IR[$protocol/mfgsync]} - $base) / (${IR[$protocol/rowonly]} - $base) }")"
    done
    echo "(the event row of simple includes parsing its 360-byte literal every time)"
    echo "valgrind: $(valgrind --version); PostgreSQL: $(pg_config --version)"
}

main()
{
    local protocol v
    prepare || die "installing packages or building mfgsync failed"
    start_cluster instructions "$PORT" "mfgsync.database = 'bench'" \
        "shared_buffers = 256MB" "max_wal_size = 4GB" "autovacuum = off" ||
        die "starting the cluster failed"
    run_unprivileged createdb -h "$CLUSTER_DIR" -p "$PORT" bench
    run_unprivileged pgbench -i -s 1 -n -q -h "$CLUSTER_DIR" -p "$PORT" bench \
        >"$CLUSTER_DIR/pgbench-init.log" 2>&1 ||
        { cat "$CLUSTER_DIR/pgbench-init.log" >&2; die "pgbench -i failed"; }
    run_unprivileged psql -X -q -v ON_ERROR_STOP=1 -h "$CLUSTER_DIR" -p "$PORT" -d bench \
        <"$HERE/setup.sql" >/dev/null
    run_unprivileged pg_ctl -D "$CLUSTER_DIR/data" -m fast -w stop >/dev/null

    msg "single-user server under callgrind: $SMALL and $LARGE updates per variant and protocol"
    for protocol in simple prepared; do
        for v in "${VARIANTS[@]}"; do
            measure "$protocol" "$v"
        done
    done
    report
}

main "$@"
