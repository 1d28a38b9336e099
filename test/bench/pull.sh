#!/bin/bash
# test/bench/pull.sh - mfgsync pull job benchmark, from a fresh machine.
#
#   test/bench/pull.sh                    # 1,000,000 rows, 1% changed
#   ROWS=100000 test/bench/pull.sh        # quick run
#
# Installs what is missing (test/common.sh's prepare), then, as the
# unprivileged user when started as root, starts a throwaway MariaDB
# holding an MES order table of $ROWS rows and a throwaway PostgreSQL
# cluster with mfgsync, reading it through mysql_fdw, and measures:
#
#   0. baseline: INSERT INTO <untracked table> SELECT * FROM <foreign
#      table>, i.e. what mysql_fdw and a plain insert cost without mfgsync;
#   1. the initial load: run_pull into an empty tracked staging table (one
#      Add event per row in the outbox), rows/s;
#   2. $PERCENT% of the remote rows changed (watermark column moved), then
#      an incremental run: its time relative to the initial load
#      (target: <= 5%);
#   3. an incremental run with nothing changed.
#
# Prints the figures; exits non-zero only when something broke.
set -Eeuo pipefail

ROWS=${ROWS:-1000000}
PERCENT=${PERCENT:-1}
PORT=55484
MARIA_PORT=55485

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common.sh
. "$HERE/../common.sh"

prepare >/dev/null
start_cluster pullbench "$PORT" "mfgsync.database = 'postgres'" \
    "shared_buffers = 512MB" "work_mem = 64MB" "temp_buffers = 256MB" \
    "max_wal_size = 4GB" "checkpoint_timeout = 30min" "synchronous_commit = off"

MARIA_DIR="$CLUSTER_DIR/maria"
run_unprivileged mkdir -p "$MARIA_DIR"
cleanup()
{
    if [ -f "$MARIA_DIR/mariadbd.pid" ]; then
        run_unprivileged mariadb-admin --no-defaults -S "$MARIA_DIR/sock" -u root shutdown \
            >/dev/null 2>&1 || kill "$(cat "$MARIA_DIR/mariadbd.pid")" 2>/dev/null || true
    fi
    stop_cluster
}
trap cleanup EXIT

run_unprivileged mariadb-install-db --no-defaults --datadir="$MARIA_DIR/data" \
    --auth-root-authentication-method=normal --skip-test-db >"$MARIA_DIR/install.log" 2>&1
(
    for fd in /proc/$BASHPID/fd/*; do
        fd=${fd##*/}
        [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
    done
    run_unprivileged /usr/sbin/mariadbd --no-defaults --datadir="$MARIA_DIR/data" \
        --socket="$MARIA_DIR/sock" --port="$MARIA_PORT" --bind-address=127.0.0.1 \
        --pid-file="$MARIA_DIR/mariadbd.pid" --log-error="$MARIA_DIR/error.log" \
        --skip-log-bin --skip-name-resolve --innodb-buffer-pool-size=512M \
        --innodb-flush-log-at-trx-commit=2 >/dev/null 2>&1 &
)
for _ in $(seq 1 600); do
    run_unprivileged mariadb-admin --no-defaults -S "$MARIA_DIR/sock" -u root ping \
        >/dev/null 2>&1 && break
    sleep 0.1   # polling for the server to come up, with a bound
done

maria() { run_unprivileged mariadb --no-defaults -S "$MARIA_DIR/sock" -u root -N -B -e "$1"; }
psql_() { run_unprivileged psql -X -q -At -h "$CLUSTER_DIR" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 -c "$1"; }
# seconds a statement takes, measured by the server (clock_timestamp)
timed()
{
    psql_ "DO \$\$ DECLARE t timestamptz := clock_timestamp(); BEGIN $1; RAISE NOTICE 'elapsed %', extract(epoch FROM clock_timestamp() - t); END \$\$" 2>&1 |
        sed -n 's/.*elapsed \([0-9.]*\).*/\1/p'
}

echo "pull benchmark: $ROWS rows in MariaDB, $PERCENT% changed; $(nproc) cores, shared with other work (figures are noisy)"
maria "CREATE DATABASE mes; USE mes;
  CREATE TABLE orders (order_code varchar(20) PRIMARY KEY, product_code varchar(20),
                       machine_code varchar(20), qty int, due date,
                       changed_at datetime(6) NOT NULL, KEY (changed_at));
  INSERT INTO orders SELECT concat('PO-', seq), concat('P', seq % 500), concat('M', seq % 40),
         seq % 1000, '2024-01-01' + INTERVAL (seq % 365) DAY,
         '2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_$ROWS;
  CREATE USER 'reader'@'127.0.0.1' IDENTIFIED BY 'bench';
  GRANT SELECT ON mes.* TO 'reader'@'127.0.0.1';"

psql_ "CREATE EXTENSION mfgsync; CREATE EXTENSION mysql_fdw;
  CREATE SERVER maria FOREIGN DATA WRAPPER mysql_fdw OPTIONS (host '127.0.0.1', port '$MARIA_PORT');
  CREATE USER MAPPING FOR CURRENT_USER SERVER maria OPTIONS (username 'reader', password 'bench');
  CREATE FOREIGN TABLE mes_orders (order_code text, product_code text, machine_code text,
                                   qty int, due date, changed_at timestamp)
    SERVER maria OPTIONS (dbname 'mes', table_name 'orders');
  CREATE TABLE baseline (order_code text PRIMARY KEY, product_code text, machine_code text,
                         qty int, due date, changed_at timestamp);
  CREATE TABLE stg_order (LIKE baseline INCLUDING ALL);
  SELECT mfgsync.track('stg_order', 'ProductionOrder');
  SELECT mfgsync.create_pull('orders', 'mes_orders', 'stg_order', watermark => 'changed_at');" >/dev/null

base=$(timed "INSERT INTO baseline SELECT * FROM mes_orders")
echo "0. baseline (mysql_fdw -> INSERT, no mfgsync): ${base} s, $(echo "$ROWS / $base" | bc) rows/s"

full=$(timed "PERFORM mfgsync.run_pull('orders')")
echo "1. initial load (run_pull, tracked target): ${full} s, $(echo "$ROWS / $full" | bc) rows/s," \
     "$(psql_ "SELECT count(*) FROM mfgsync.outbox") events; $(echo "scale=2; $full / $base" | bc)x the baseline"

changed=$((ROWS * PERCENT / 100))
maria "USE mes; UPDATE orders SET qty = qty + 1, changed_at = NOW(6)
       WHERE CAST(SUBSTRING(order_code, 4) AS UNSIGNED) % (100 DIV $PERCENT) = 0"
events_before=$(psql_ "SELECT count(*) FROM mfgsync.outbox")
incr=$(timed "PERFORM mfgsync.run_pull('orders')")
read_rows=$(psql_ "SELECT rows_read || ' read, ' || rows_updated || ' updated' FROM mfgsync.pull_runs ORDER BY id DESC LIMIT 1")
events=$(( $(psql_ "SELECT count(*) FROM mfgsync.outbox") - events_before ))
echo "2. incremental run, $changed rows changed remotely: ${incr} s ($read_rows, $events events)," \
     "$(echo "scale=2; 100 * $incr / $full" | bc)% of the initial load (target <= 5%)"

noop=$(timed "PERFORM mfgsync.run_pull('orders')")
echo "3. incremental run, nothing changed: ${noop} s" \
     "($(psql_ "SELECT rows_read || ' read, ' || rows_updated || ' updated' FROM mfgsync.pull_runs ORDER BY id DESC LIMIT 1"))"
