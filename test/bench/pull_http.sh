#!/bin/bash
# test/bench/pull_http.sh - a pull job through mfgsync_http, full load
# against incremental run, from a fresh machine.
#
#   test/bench/pull_http.sh               # 20,000 orders, 1% changed
#   ROWS=5000 test/bench/pull_http.sh     # quick run
#
# Starts (as the unprivileged user when root) a throwaway cluster with
# mfgsync and the stand-in MES API (test/mes_api.py, python3 stdlib, one
# thread per request: the API, not the FDW, bounds the rates) on 127.0.0.1
# serving $ROWS orders in pages of 1,000, and measures:
#   0. baseline: INSERT INTO <untracked table> SELECT * FROM the foreign
#      table (what the API and the FDW cost without a pull job);
#   1. the initial load: run_pull into an empty tracked staging table;
#   2. $PERCENT% of the orders changed through the API's admin interface,
#      then an incremental run (the watermark sent as updated_since):
#      its time relative to the initial load.
# Prints the figures; exits non-zero only when something broke.
set -Eeuo pipefail

ROWS=${ROWS:-20000}
PERCENT=${PERCENT:-1}
PORT=55486
API_PORT=55487

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common.sh
. "$HERE/../common.sh"

prepare >/dev/null
start_cluster pullhttpbench "$PORT" "mfgsync.database = 'postgres'" "synchronous_commit = off"
cleanup()
{
    [ -n "${API_PID:-}" ] && { kill "$API_PID" && wait "$API_PID"; } 2>/dev/null || true
    stop_cluster
}
trap cleanup EXIT

as_user=()
[ "$(id -u)" = 0 ] && as_user=(setpriv --reuid="$MFGSYNC_USER" --regid="$(id -g "$MFGSYNC_USER")" --init-groups)
"${as_user[@]}" /usr/bin/python3 "$MFGSYNC_SRC/test/mes_api.py" --port "$API_PORT" --orders "$ROWS" \
    --port-file "$CLUSTER_DIR/api.port" >/dev/null 2>&1 </dev/null &
API_PID=$!
for _ in $(seq 100); do [ -s "$CLUSTER_DIR/api.port" ] && break; sleep 0.1; done   # bounded wait for the port file
[ -s "$CLUSTER_DIR/api.port" ] || { echo "pull_http.sh: the MES API did not start" >&2; exit 1; }
API="http://127.0.0.1:$API_PORT"

psql_() { run_unprivileged psql -X -q -At -h "$CLUSTER_DIR" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 -c "$1"; }
# seconds a statement takes, measured by the server (clock_timestamp)
timed()
{
    psql_ "DO \$\$ DECLARE t timestamptz := clock_timestamp(); BEGIN $1; RAISE NOTICE 'elapsed %', extract(epoch FROM clock_timestamp() - t); END \$\$" 2>&1 |
        sed -n 's/.*elapsed \([0-9.]*\).*/\1/p'
}

echo "pull through mfgsync_http: $ROWS orders from test/mes_api.py, $PERCENT% changed; $(nproc) cores, shared with other work (figures are noisy)"
psql_ "CREATE EXTENSION mfgsync;
CREATE SERVER mes FOREIGN DATA WRAPPER mfgsync_http OPTIONS (base_url '$API');
CREATE FOREIGN TABLE mes_orders (order_code text, product_code text, status text, quantity integer,
  start timestamptz, \"end\" timestamptz, machine_code text,
  updated_at timestamptz OPTIONS (param_ge 'updated_since'))
  SERVER mes OPTIONS (path '/orders', rows 'data', pagination 'page', page_size '1000');
CREATE TABLE plain_copy (LIKE mes_orders);
CREATE TABLE stg_order (LIKE mes_orders, PRIMARY KEY (order_code));
SELECT mfgsync.track('stg_order', 'Order');
SELECT mfgsync.create_pull('mes', 'mes_orders', 'stg_order', watermark => 'updated_at');" >/dev/null

base=$(timed "INSERT INTO plain_copy SELECT * FROM mes_orders")
load=$(timed "PERFORM mfgsync.run_pull('mes')")
[ "$(psql_ 'SELECT count(*) FROM stg_order')" = "$ROWS" ] || { echo "pull_http.sh: initial load incomplete" >&2; exit 1; }

changed=$((ROWS * PERCENT / 100))
/usr/bin/python3 - "$API" "$ROWS" "$changed" <<'PY'
import json, sys, urllib.request
api, rows, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
step = max(rows // max(n, 1), 1)
body = [{"order_code": "PO-%06d" % i, "quantity": 999, "updated_at": "2030-01-01T00:00:00Z"}
        for i in range(1, rows + 1, step)][:n]
req = urllib.request.Request(api + "/_admin/orders", json.dumps(body).encode(),
                             {"Content-Type": "application/json"})
urllib.request.urlopen(req).read()
PY
incr=$(timed "PERFORM mfgsync.run_pull('mes')")
read -r r_read r_upd <<<"$(psql_ "SELECT rows_read, rows_updated FROM mfgsync.pull_runs ORDER BY id DESC LIMIT 1" | tr '|' ' ')"
[ "$r_upd" = "$changed" ] || { echo "pull_http.sh: expected $changed rows updated, got $r_upd" >&2; exit 1; }

awk -v rows="$ROWS" -v base="$base" -v tload="$load" -v incr="$incr" -v rr="$r_read" -v ru="$r_upd" 'BEGIN {
  printf "baseline: INSERT ... SELECT * FROM the foreign table: %.2f s, %d rows/s\n", base, rows / base
  printf "initial load: run_pull into a tracked table:          %.2f s, %d rows/s (%.2fx baseline)\n", tload, rows / tload, tload / base
  printf "incremental run (%d read, %d updated):                %.3f s = %.1f %% of the initial load\n", rr, ru, incr, 100 * incr / tload
}'
