# shellcheck shell=bash
# test/bench/variants.sh - the variants that run.sh and instructions.sh
# compare, one table each in setup.sql, and the UPDATE they run on it
# (sourced by both).

# shellcheck disable=SC2034  # used by the scripts that source this file
VARIANTS=(plain mfgsync plpgsql pgq rowonly)
# shellcheck disable=SC2034
declare -A LABEL=([plain]=untracked [mfgsync]=mfgsync [plpgsql]=plpgsql [pgq]=pgq
                  [rowonly]="event row")

# variant_update variant delta aid: the statement, on one line (pgbench reads
# a statement from one line), updating accounts_<variant> by primary key;
# delta and aid are expressions: pgbench variables or statement parameters.
# For "rowonly" the statement also inserts the event mfgsync writes for such
# an update, as constants of the same size, into bench_event_rows.
variant_update()
{
    local v=$1 delta=$2 aid=$3 update filler
    update="UPDATE accounts_$v SET abalance = abalance + $delta WHERE aid = $aid"
    if [ "$v" = rowonly ]; then
        filler=$(printf '%84s' '')
        update="WITH u AS ($update RETURNING aid) \
INSERT INTO bench_event_rows SELECT nextval('bench_event_rows_seq'), 1234567, \
'Account', 'Change', '{\"aid\":12345}', \
'{\"aid\":12345,\"bid\":1,\"abalance\":-1234,\"filler\":\"$filler\"}', \
'{\"aid\":12345,\"bid\":1,\"abalance\":-4321,\"filler\":\"$filler\"}', \
'2026-11-22 01:53:27.574437+00', true FROM u"
    fi
    echo "$update"
}
