#!/bin/bash
# test/bench/run.sh - mfgsync capture overhead benchmark, from a fresh machine.
#
#   test/bench/run.sh                      # defaults: 10 s per run, 5 rounds
#   BENCH_SECONDS=3 ROUNDS=1 test/bench/run.sh   # quick smoke test
#   PROTOCOL=simple test/bench/run.sh      # pgbench's default protocol
#
# Installs what is missing, builds and installs mfgsync (test/common.sh's
# prepare), then, as the unprivileged user $MFGSYNC_USER when started as
# root, starts a throwaway cluster and measures:
#
#   1. single-row UPDATE by primary key, pgbench -c $CLIENTS -j $CLIENTS
#      -M $PROTOCOL (CLIENTS = 2), on five 100,000-row pgbench_accounts
#      copies (test/bench/variants.sh): untracked, tracked by mfgsync, with
#      a PL/pgSQL outbox trigger, with PgQ's logutriga, and
#      "event row": no trigger, the UPDATE statement itself inserts a
#      constant row the size of mfgsync's event into a table like the
#      outbox with one index (what writing such an event through SQL costs,
#      with nothing rendered); once with synchronous_commit = off and once
#      with it on.  ROUNDS rounds; in each, every variant runs right next to
#      an untracked run (untracked first in odd rounds, second in even
#      ones), and the pair's tps ratio is recorded.  This machine's speed
#      drifts by tens of percent within minutes, so a variant is judged by
#      the median of its paired ratios; the median tps of each variant, the
#      ratio of those medians (as reported up to run 13) and the median WAL
#      bytes per transaction are reported too, and so is each variant's cost:
#      the time it added to each client's transaction, CLIENTS / tps minus
#      CLIENTS / tps of its paired untracked run.  With synchronous_commit =
#      on a transaction waits for its commit too; adding the "off" cost to
#      the untracked "on" time gives the "on" ratio that cost implies;
#   2. one INSERT ... SELECT of 1,000,000 rows into a production-order
#      shaped table, untracked vs tracked by mfgsync, BULK_RUNS (5) runs each,
#      alternating; medians and the ratio tracked/untracked.
#
# Ends with a figures table, which targets are met, and the machine.  Exits
# 0 when the benchmark ran (missed targets are reported, not a failure) and
# non-zero when something broke.  The cluster lives in a mktemp directory
# that is stopped and removed on exit, whatever happens.
set -Eeuo pipefail

BENCH_SECONDS=${BENCH_SECONDS:-10}
ROUNDS=${ROUNDS:-5}
PORT=55440
CLIENTS=2                   # pgbench -c and -j
ACCOUNTS=100000             # rows per pgbench table (pgbench -i -s 1)
BULK_ROWS=1000000
BULK_RUNS=${BULK_RUNS:-5}
# pgbench's query protocol: prepared (every run up to run 15) or simple
# (pgbench's default: every statement parsed and planned again)
PROTOCOL=${PROTOCOL:-prepared}

# targets (see README / doc/benchmarks.md)
TARGET_OFF=75               # % of untracked tps, synchronous_commit = off
TARGET_ON=97                # % of untracked tps, synchronous_commit = on
TARGET_BULK=2.0             # tracked / untracked time, bulk insert

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common.sh
. "$HERE/../common.sh"
# shellcheck source=variants.sh
. "$HERE/variants.sh"

WORK=""                     # cluster directory, set by start_bench_cluster

# The original stderr, for cleanup: a signal's trap runs when the current
# command ends, inside that command's redirections (pgbench's output goes to
# a log file in $WORK, which cleanup removes).
exec {STDERR}>&2

msg() { echo "run.sh: $*"; }
die() { echo "run.sh: $*" >&2; exit 1; }

case "$BENCH_SECONDS" in '' | *[!0-9]* | 0) die "BENCH_SECONDS must be a positive integer" ;; esac
case "$ROUNDS" in '' | *[!0-9]* | 0) die "ROUNDS must be a positive integer" ;; esac
case "$PROTOCOL" in simple | prepared) ;; *) die "PROTOCOL must be simple or prepared" ;; esac

# ---------------------------------------------------------------------------
# cluster

# cleanup: stop and remove the cluster; on failure show the server log first
cleanup()
{
    local rc=$?
    trap - EXIT ERR
    set +e
    if [ "$rc" != 0 ] && [ -f "${CLUSTER_DIR:-}/server.log" ]; then
        echo "run.sh: --- server log (last 60 lines) ---" >&"$STDERR"
        tail -n 60 "$CLUSTER_DIR/server.log" >&"$STDERR"
    fi
    stop_cluster
    [ "$rc" != 0 ] && echo "run.sh: FAILED (exit status $rc)" >&"$STDERR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'echo "run.sh: line $LINENO: command failed: $BASH_COMMAND" >&2' ERR

# psql_run args...: psql on the bench database, stopping at the first error
psql_run()
{
    run_unprivileged psql -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -d bench "$@"
}

# psql_val sql: the single value sql returns
psql_val()
{
    psql_run -At -c "$1"
}

# start_bench_cluster: the throwaway cluster (test/common.sh), database bench;
# fsync and synchronous_commit stay at their defaults (on)
start_bench_cluster()
{
    start_cluster bench "$PORT" "mfgsync.database = 'bench'" \
        "shared_buffers = 256MB" "max_wal_size = 4GB" "autovacuum = on" || return 1
    WORK=$CLUSTER_DIR
    run_unprivileged createdb -h "$WORK" -p "$PORT" bench
}

# ---------------------------------------------------------------------------
# small helpers

# median values...: the median (mean of the middle two for an even count)
median()
{
    printf '%s\n' "$@" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
                                  else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# calc expression: awk arithmetic, printed as awk prints it
calc()
{
    awk "BEGIN { print $1 }"
}

# met condition: "met" or "MISSED"
met()
{
    if awk "BEGIN { exit !($1) }"; then echo met; else echo MISSED; fi
}

# ---------------------------------------------------------------------------
# 1. single-row UPDATE by primary key

setup_accounts()
{
    msg "loading ${#VARIANTS[@]} x $ACCOUNTS accounts rows"
    run_unprivileged pgbench -i -s 1 -n -q -h "$WORK" -p "$PORT" bench \
        >"$WORK/pgbench-init.log" 2>&1 || { cat "$WORK/pgbench-init.log" >&2; return 1; }
    psql_run >/dev/null <"$HERE/setup.sql"

    local v
    for v in "${VARIANTS[@]}"; do
        cat >"$WORK/update_$v.sql" <<EOF
\\set aid random(1, $ACCOUNTS)
\\set delta random(-5000, 5000)
$(variant_update "$v" :delta :aid);
EOF
    done
}

# reset_between_runs: empty the four outboxes, VACUUM ANALYZE, CHECKPOINT,
# so every run starts from the same state whatever ran before it
reset_between_runs()
{
    psql_run >/dev/null <<'EOF'
TRUNCATE mfgsync.outbox;
TRUNCATE bench_plpgsql_outbox;
TRUNCATE bench_event_rows;
SELECT pgq.drop_queue('bench');
SELECT pgq.create_queue('bench');
VACUUM ANALYZE accounts_plain, accounts_mfgsync, accounts_plpgsql, accounts_pgq,
               accounts_rowonly, mfgsync.outbox, bench_plpgsql_outbox, bench_event_rows;
CHECKPOINT;
EOF
}

# events variant: how many events the variant's capture wrote
events()
{
    case "$1" in
        plain)   echo 0 ;;
        mfgsync) psql_val "SELECT count(*) FROM mfgsync.outbox" ;;
        plpgsql) psql_val "SELECT count(*) FROM bench_plpgsql_outbox" ;;
        pgq)     psql_val "SELECT count(*) FROM pgq.event_template" ;;
        rowonly) psql_val "SELECT count(*) FROM bench_event_rows" ;;
    esac
}

declare -A TPS              # "mode/variant" -> tps of every run
declare -A WAL              # "mode/variant" -> WAL bytes per transaction of every run
declare -A PAIR             # "mode/variant" -> % of the paired untracked run's tps
declare -A COST             # "mode/variant" -> microseconds the variant added to
                            # each transaction, against its paired untracked run
declare -A CYCLE            # "mode" -> microseconds per transaction and client of
                            # every untracked run
LAST_TPS=""                 # tps of the latest run_pgbench

# run_pgbench mode variant round: one measured run, appended to TPS
run_pgbench()
{
    local mode=$1 v=$2 round=$3
    local out="$WORK/pgbench-$mode-$v-$round.log" tps txns failed ev lsn wal

    reset_between_runs
    lsn=$(psql_val "SELECT pg_current_wal_insert_lsn()")
    if ! run_unprivileged env PGOPTIONS="-c synchronous_commit=$mode" \
        pgbench -n -M "$PROTOCOL" -c "$CLIENTS" -j "$CLIENTS" -T "$BENCH_SECONDS" \
        -f "$WORK/update_$v.sql" -h "$WORK" -p "$PORT" bench >"$out" 2>&1; then
        cat "$out" >&2
        die "pgbench failed on accounts_$v (synchronous_commit=$mode)"
    fi

    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$out")
    txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    if [ -z "$tps" ] || [ "${txns:-0}" = 0 ] || [ "${failed:-0}" != 0 ]; then
        cat "$out" >&2
        die "unexpected pgbench result on accounts_$v"
    fi

    # the capture must have written (about) one event per UPDATE; mfgsync
    # writes none for the ~0.01% whose delta is 0 (nothing changed)
    ev=$(events "$v")
    if [ "$v" != plain ] && [ "$(met "$ev >= 0.99 * $txns")" != met ]; then
        die "accounts_$v: $txns transactions but $ev events captured"
    fi

    # everything the server logged in the run, checkpoints' full pages too
    wal=$(psql_val "SELECT round(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$lsn') / $txns)")

    TPS[$mode/$v]="${TPS[$mode/$v]:-} $tps"
    WAL[$mode/$v]="${WAL[$mode/$v]:-} $wal"
    LAST_TPS=$tps
    printf 'run.sh:   sync_commit=%-3s round %d  %-9s %10.0f tps  %8d txns  %8d events  %5d WAL bytes/txn\n' \
        "$mode" "$round" "${LABEL[$v]}" "$tps" "$txns" "$ev" "$wal"
}

# bench_updates mode: ROUNDS rounds; in each, every variant once, paired
# with an untracked run right before it (odd rounds) or after it (even)
bench_updates()
{
    local mode=$1 round i n=$((${#VARIANTS[@]} - 1)) actual v base tps
    actual=$(run_unprivileged env PGOPTIONS="-c synchronous_commit=$mode" \
        psql -X -At -h "$WORK" -p "$PORT" -d bench -c 'SHOW synchronous_commit')
    [ "$actual" = "$mode" ] || die "synchronous_commit is $actual, wanted $mode"

    msg "UPDATE by primary key, synchronous_commit=$mode, $ROUNDS round(s) of ${BENCH_SECONDS}s runs, paired with untracked"
    for ((round = 1; round <= ROUNDS; round++)); do
        for ((i = 0; i < n; i++)); do
            v=${VARIANTS[1 + (round - 1 + i) % n]}
            if ((round % 2)); then
                run_pgbench "$mode" plain "$round"; base=$LAST_TPS
                run_pgbench "$mode" "$v" "$round"; tps=$LAST_TPS
            else
                run_pgbench "$mode" "$v" "$round"; tps=$LAST_TPS
                run_pgbench "$mode" plain "$round"; base=$LAST_TPS
            fi
            PAIR[$mode/$v]="${PAIR[$mode/$v]:-} $(calc "100 * $tps / $base")"
            # each client's transaction takes CLIENTS / tps seconds
            COST[$mode/$v]="${COST[$mode/$v]:-} $(calc "1e6 * $CLIENTS * (1 / $tps - 1 / $base)")"
            CYCLE[$mode]="${CYCLE[$mode]:-} $(calc "1e6 * $CLIENTS / $base")"
        done
    done
}

# ---------------------------------------------------------------------------
# 2. bulk INSERT ... SELECT

declare -A BULK             # untracked|tracked -> seconds of every run

# run_bulk untracked|tracked run: one timed 1M-row INSERT into a fresh table
run_bulk()
{
    local kind=$1 run=$2 secs rows ev want_ev=0

    # a fresh table each time; DROP, as TRUNCATE of a tracked table is refused
    psql_run >/dev/null <<'EOF'
SET client_min_messages = warning;
DROP TABLE IF EXISTS production_order;
CREATE TABLE production_order (
    order_code   text PRIMARY KEY,
    product_code text NOT NULL,
    machine_code text NOT NULL,
    start        timestamptz NOT NULL,
    "end"        timestamptz NOT NULL
);
TRUNCATE mfgsync.outbox;
EOF
    if [ "$kind" = tracked ]; then
        psql_run >/dev/null -c "SELECT mfgsync.track('production_order', 'ProductionOrder')"
        want_ev=$BULK_ROWS
    fi
    psql_run -c "VACUUM ANALYZE mfgsync.outbox" -c "CHECKPOINT"

    # timed on the server: the INSERT commits (autocommit) before the second
    # clock_timestamp(), so the time includes the commit's WAL flush
    secs=$(psql_run -At <<EOF
SELECT clock_timestamp() AS t0 \\gset
INSERT INTO production_order
SELECT 'PO-' || g, 'P-' || g % 1000, 'M-' || g % 50, now(), now() + interval '1 hour'
  FROM generate_series(1, $BULK_ROWS) g;
SELECT round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz), 3);
EOF
)
    rows=$(psql_val "SELECT count(*) FROM production_order")
    ev=$(psql_val "SELECT count(*) FROM mfgsync.outbox")
    [ "$rows" = "$BULK_ROWS" ] || die "bulk $kind: $rows rows inserted, wanted $BULK_ROWS"
    [ "$ev" = "$want_ev" ] || die "bulk $kind: $ev events captured, wanted $want_ev"

    BULK[$kind]="${BULK[$kind]:-} $secs"
    printf 'run.sh:   bulk run %d  %-9s %7.3f s  %8d events\n' "$run" "$kind" "$secs" "$ev"
}

bench_bulk()
{
    local run
    msg "bulk INSERT of $BULK_ROWS rows, $BULK_RUNS runs each, alternating"
    for ((run = 1; run <= BULK_RUNS; run++)); do
        if ((run % 2)); then
            run_bulk untracked "$run"; run_bulk tracked "$run"
        else
            run_bulk tracked "$run"; run_bulk untracked "$run"
        fi
    done
}

# ---------------------------------------------------------------------------
# report

# variant_line title piece arg variant...: one report line: title, then for
# each variant what "piece arg variant" prints, separated by " |"
variant_line()
{
    local title=$1 piece=$2 arg=$3 v sep=''
    shift 3
    printf '%s' "$title"
    for v in "$@"; do
        printf '%s %s' "$sep" "$("$piece" "$arg" "$v")"
        sep=' |'
    done
    echo
}

# The pieces, each for one mode (or time) and variant.  The lists of
# figures are split into words on purpose (SC2086).

# median tps, and in % of the untracked median
# shellcheck disable=SC2086
tps_piece()
{
    local base med
    base=$(median ${TPS[$1/plain]})
    med=$(median ${TPS[$1/$2]})
    printf '%s %.0f tps (%.0f%%)' "${LABEL[$2]}" "$med" "$(calc "100 * $med / $base")"
}

# median WAL bytes per transaction
# shellcheck disable=SC2086
wal_piece()
{
    printf '%s %.0f' "${LABEL[$2]}" "$(median ${WAL[$1/$2]})"
}

# median of the paired ratios, and their range
paired_piece()
{
    local range
    read -r -a range <<<"$(pair_range "$1" "$2")"
    printf '%s %.0f%% (%.0f-%.0f)' "${LABEL[$2]}" "$(paired "$1" "$2")" "${range[0]}" "${range[1]}"
}

# median of the microseconds it added to each client's transaction, against
# its paired untracked runs
# shellcheck disable=SC2086
cost_piece()
{
    printf '%s %.1f us' "${LABEL[$2]}" "$(median ${COST[$1/$2]})"
}

# the synchronous_commit = on ratio its "off" cost implies, if it added
# just that time to an untracked "on" transaction taking $1 microseconds
# shellcheck disable=SC2086
implied_piece()
{
    printf '%s %.1f%%' "${LABEL[$2]}" "$(calc "100 * $1 / ($1 + $(median ${COST[off/$2]}))")"
}

# shellcheck disable=SC2086
tps_line()
{
    variant_line "$(printf 'synchronous_commit=%-3s  untracked %.0f tps |' "$1" \
        "$(median ${TPS[$1/plain]})")" tps_piece "$1" "${VARIANTS[@]:1}"
}

wal_line()
{
    variant_line "$(printf 'synchronous_commit=%-3s  WAL bytes/txn:' "$1")" \
        wal_piece "$1" "${VARIANTS[@]}"
}

paired_line()
{
    variant_line "$(printf 'synchronous_commit=%-3s  paired ratios, median (min-max):' "$1")" \
        paired_piece "$1" "${VARIANTS[@]:1}"
}

cost_line()
{
    variant_line "$(printf 'synchronous_commit=%-3s  cost per transaction, median of pairs:' "$1")" \
        cost_piece "$1" "${VARIANTS[@]:1}"
}

# implied_line: each variant's implied "on" ratio at the median time of an
# untracked "on" transaction, and the cost that TARGET_ON allows at that time
# shellcheck disable=SC2086
implied_line()
{
    local cycle
    cycle=$(median ${CYCLE[on]})
    variant_line "$(printf 'synchronous_commit=on   untracked %.0f us per transaction; the off costs imply:' "$cycle")" \
        implied_piece "$cycle" "${VARIANTS[@]:1}"
    printf '                         %d%% allows a cost of %.1f us per transaction at that time\n' \
        "$TARGET_ON" "$(calc "$cycle * (100 / $TARGET_ON - 1)")"
}

# paired mode variant: median of the variant's paired ratios, in %
paired()
{
    # shellcheck disable=SC2086
    median ${PAIR[$1/$2]}
}

# pair_range mode variant: the smallest and the largest of its paired ratios
pair_range()
{
    # shellcheck disable=SC2086
    printf '%s\n' ${PAIR[$1/$2]} | sort -g | sed -n '1p;$p' | paste -s -d ' '
}

# caveat mode target: empty, or why mfgsync's median cannot settle a ratio
# target: its pairs spread over more points than the target leaves below
# 100% (with synchronous_commit = on, the commit time can move more within a
# run than the whole cost being judged)
caveat()
{
    local range
    read -r -a range <<<"$(pair_range "$1" mfgsync)"
    if awk "BEGIN { exit !(${range[1]} - ${range[0]} > 100 - $2) }"; then
        printf ' (not conclusive: the pairs range from %.0f%% to %.0f%%, wider than the %d points below 100%%)' \
            "${range[0]}" "${range[1]}" "$((100 - $2))"
    fi
}

# ratio mode: mfgsync median tps in % of the untracked median
ratio()
{
    # shellcheck disable=SC2086
    calc "100 * $(median ${TPS[$1/mfgsync]}) / $(median ${TPS[$1/plain]})"
}

machine()
{
    echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1)"
    echo "cores (nproc): $(nproc)"
    echo "RAM: $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "PostgreSQL: $(pg_config --version)"
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (now; other jobs on the machine add noise)"
}

report()
{
    local off on ut tr bulk a
    off=$(paired off mfgsync)
    on=$(paired on mfgsync)
    # shellcheck disable=SC2086
    ut=$(median ${BULK[untracked]})
    # shellcheck disable=SC2086
    tr=$(median ${BULK[tracked]})
    bulk=$(calc "$tr / $ut")

    echo
    echo "=== mfgsync benchmark: ${BENCH_SECONDS}s runs, $ROUNDS round(s), medians"
    echo "update by pk, pgbench -c $CLIENTS -j $CLIENTS -M $PROTOCOL, 100,000 rows:"
    tps_line off
    tps_line on
    paired_line off
    paired_line on
    cost_line off
    cost_line on
    implied_line
    wal_line off
    wal_line on
    echo '("event row": no trigger; the UPDATE itself inserts a constant row the size of'
    echo " mfgsync's event into a table like the outbox with one index; nothing rendered)"
    printf 'bulk 1M rows: untracked %.2f s | tracked %.2f s (%.2fx)\n' "$ut" "$tr" "$bulk"
    echo
    echo "targets (median of paired ratios, with enough decimals to read the verdict off;"
    echo "ratio of median tps in brackets):"
    printf '  sync_commit=off  mfgsync >= %d%% of untracked: %.1f%% [%.1f%%]  %s%s\n' \
        "$TARGET_OFF" "$off" "$(ratio off)" "$(met "$off >= $TARGET_OFF")" "$(caveat off "$TARGET_OFF")"
    for a in plpgsql pgq; do
        printf '  sync_commit=off  mfgsync >= 1.2x %-8s     %.3fx  %s\n' "${LABEL[$a]}" \
            "$(calc "$off / $(paired off $a)")" "$(met "$off >= 1.2 * $(paired off $a)")"
    done
    printf '  sync_commit=on   mfgsync >= %d%% of untracked: %.1f%% [%.1f%%]  %s%s\n' \
        "$TARGET_ON" "$on" "$(ratio on)" "$(met "$on >= $TARGET_ON")" "$(caveat on "$TARGET_ON")"
    printf '  bulk 1M rows     tracked <= %.1fx untracked:   %.2fx  %s\n' \
        "$TARGET_BULK" "$bulk" "$(met "$bulk <= $TARGET_BULK")"
    echo
    machine
    echo "server: $(psql_val "SELECT version()")"
    echo "settings: $(psql_val "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name)
                                 FROM pg_settings
                                WHERE name IN ('fsync', 'shared_buffers', 'max_wal_size',
                                               'autovacuum', 'wal_level', 'full_page_writes')")"
}

# ---------------------------------------------------------------------------

main()
{
    prepare || die "installing packages or building mfgsync failed"
    start_bench_cluster
    msg "cluster in $WORK, port $PORT, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    setup_accounts
    bench_updates off
    bench_updates on
    bench_bulk
    report
}

main "$@"
