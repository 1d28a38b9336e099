#!/bin/bash
# test/demo.sh - mfgsync in one command, from a fresh Debian 12 machine.
#
# Installs what is missing, builds and installs mfgsync, starts a throwaway
# PostgreSQL 15 cluster (as $MFGSYNC_USER when run as root), a stand-in MES
# REST API (test/mes_api.py) and webhook receivers (test/receiver.py) on
# 127.0.0.1, tracks two MES/ERP staging tables and plays a plant shift: the
# orders are pulled from the MES API through an mfgsync_http foreign table
# by a pull job (a full load, incremental runs by watermark, a delete found
# by a full read), bookings are written by hand; it shows the events
# captured in the outbox, their signed webhook deliveries and a B2MML
# production order answered by ConfirmBOD.  The cluster and the servers are
# stopped and removed on exit unless MFGSYNC_DEMO_KEEP=1.  Exits non-zero if
# any step fails unexpectedly.
set -eu
. "$(dirname "$0")/common.sh"

PORT=55450

prepare || { echo "test/demo.sh: build or installation failed" >&2; exit 1; }

# --- a throwaway cluster: Unix socket in its own directory, no TCP --------
cleanup()
{
    if [ "${MFGSYNC_DEMO_KEEP:-}" = 1 ] && [ -f "${CLUSTER_DIR:-}/data/postmaster.pid" ]; then
        local as=""
        [ "$(id -u)" = 0 ] && as="runuser -u $MFGSYNC_USER -- "
        echo
        echo "Cluster kept (MFGSYNC_DEMO_KEEP=1)."
        echo "  connect: ${as}$PGBIN/psql -h $CLUSTER_DIR -p $PORT -d plant"
        echo "  stop:    ${as}$PGBIN/pg_ctl -D $CLUSTER_DIR/data -m fast stop && rm -rf $CLUSTER_DIR"
        echo "  MES API: ${MES_URL:-} (pid ${MES_PID:-}), webhook receiver pid ${RECEIVER_PID:-}"
        return
    fi
    stop_cluster
    local pid
    for pid in "${RECEIVER_PID:-}" "${B2MML_PID:-}" "${MES_PID:-}"; do
        # (a server ended by SIGTERM makes wait return 143: not a failure)
        [ -n "$pid" ] && { kill "$pid" && wait "$pid"; } 2>/dev/null || true
    done
    [ -n "${RECEIVER_DIR:-}" ] && rm -rf "$RECEIVER_DIR"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_cluster demo "$PORT" "mfgsync.database = 'plant'" "timezone = 'Europe/Berlin'" || exit 1
DEMO_DIR=$CLUSTER_DIR
run_unprivileged createdb -h "$DEMO_DIR" -p "$PORT" plant

# sql [psql options]: psql on database plant; any error fails the demo
sql()
{
    run_unprivileged psql -X -q -v ON_ERROR_STOP=1 -h "$DEMO_DIR" -p "$PORT" -d plant "$@"
}

# step N "what happens": echo it, run the SQL on stdin (echoed), and check
# that it wrote exactly N events to the outbox
step()
{
    local before after
    echo
    echo "-- $2"
    before=$(sql -At -c 'SELECT count(*) FROM mfgsync.outbox' </dev/null)
    sql -e
    after=$(sql -At -c 'SELECT count(*) FROM mfgsync.outbox' </dev/null)
    echo "   => $((after - before)) event(s)"
    if [ "$((after - before))" != "$1" ]; then
        echo "test/demo.sh: expected $1 event(s)" >&2
        exit 1
    fi
}

# --- the staging tables of an MES/ERP staging database, and what to track --
echo "-- setup: CREATE EXTENSION mfgsync, staging tables, track them, consumer 'demo'"
sql >/dev/null <<'SQL'
CREATE EXTENSION mfgsync;

CREATE TABLE production_order (
    order_code   text PRIMARY KEY,
    product_code text NOT NULL,
    machine_code text,
    quantity     numeric(12,3),
    unit         text,
    "start"      timestamptz,
    "end"        timestamptz,
    updated_at   timestamptz      -- the MES's change time: the pull's watermark
);
CREATE TABLE booking (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_code   text NOT NULL,
    event        text NOT NULL CHECK (event IN ('START', 'END')),
    machine_code text NOT NULL,
    booked_at    timestamptz NOT NULL
);

-- orders under ISA-95-ish domain names; bookings with all their columns
SELECT mfgsync.track('production_order', 'ProductionOrder', columns => '{
    "order_code": "ProductionRequestID", "product_code": "MaterialDefinitionID",
    "machine_code": "EquipmentID", "quantity": "Quantity",
    "unit": "UnitOfMeasure", "start": "EarliestStartTime", "end": "LatestEndTime"}');
SELECT mfgsync.track('booking', 'ProductionPerformance');

-- a reader of the outbox, starting now
SELECT mfgsync.register_consumer('demo');
SQL

# --- the MES's webhook receiver: verifies signatures, prints what it gets --
SECRET="whsec_$(head -c 32 /dev/urandom | base64)"
RECEIVER_DIR=$(mktemp -d /tmp/mfgsync-receiver.XXXXXX)
[ "$(id -u)" = 0 ] && chown "$MFGSYNC_USER" "$RECEIVER_DIR"
# setpriv execs (runuser would stay as a parent): $! is the receiver itself
as_user=()
[ "$(id -u)" = 0 ] && as_user=(setpriv --reuid="$MFGSYNC_USER" --regid="$(id -g "$MFGSYNC_USER")" --init-groups)
"${as_user[@]}" /usr/bin/python3 "$MFGSYNC_SRC/test/receiver.py" --port 0 \
    --port-file "$RECEIVER_DIR/port" --log "$RECEIVER_DIR/requests.log" \
    --secret "$SECRET" --reject-bad-signature --print \
    >"$RECEIVER_DIR/printed" 2>&1 </dev/null &
RECEIVER_PID=$!
for _ in $(seq 100); do [ -s "$RECEIVER_DIR/port" ] && break; sleep 0.1; done
[ -s "$RECEIVER_DIR/port" ] || { echo "test/demo.sh: the receiver did not start" >&2; exit 1; }
RECEIVER_URL="http://127.0.0.1:$(cat "$RECEIVER_DIR/port")/mes/events"
echo "-- setup: endpoint 'mes' -> $RECEIVER_URL (signed), subscribed to both message types"
sql >/dev/null <<SQL
SELECT mfgsync.create_endpoint('mes', '$RECEIVER_URL', 'webhook',
       jsonb_build_object('secret', '$SECRET', 'headers', '{"X-Plant": "Lyon"}'::jsonb));
SELECT mfgsync.subscribe('mes', ARRAY['ProductionOrder', 'ProductionPerformance']);
SQL

# --- the MES's REST API (stand-in, no orders yet) and a pull job from it ----
"${as_user[@]}" /usr/bin/python3 "$MFGSYNC_SRC/test/mes_api.py" --port 0 --orders 0 \
    --port-file "$RECEIVER_DIR/mes.port" --log "$RECEIVER_DIR/mes.log" \
    >"$RECEIVER_DIR/mes.out" 2>&1 </dev/null &
MES_PID=$!
for _ in $(seq 100); do [ -s "$RECEIVER_DIR/mes.port" ] && break; sleep 0.1; done
[ -s "$RECEIVER_DIR/mes.port" ] || { echo "test/demo.sh: the MES API did not start" >&2; exit 1; }
MES_URL="http://127.0.0.1:$(cat "$RECEIVER_DIR/mes.port")"
echo "-- setup: the MES's REST API at $MES_URL/orders, read through mfgsync_http;"
echo "   pull job 'mes_orders' into production_order (watermark updated_at, delete_missing)"
sql >/dev/null <<SQL
CREATE SERVER mes FOREIGN DATA WRAPPER mfgsync_http OPTIONS (base_url '$MES_URL');
CREATE FOREIGN TABLE mes_orders (
    order_code   text,
    product_code text,
    machine_code text,
    quantity     numeric,
    unit         text,
    "start"      timestamptz,
    "end"        timestamptz,
    updated_at   timestamptz OPTIONS (param_ge 'updated_since')
) SERVER mes OPTIONS (path '/orders', rows 'data', pagination 'page', page_size '100');
SELECT mfgsync.create_pull('mes_orders', 'mes_orders', 'production_order',
                           watermark => 'updated_at', delete_missing => true);
SQL

# mes METHOD PATH [JSON]: change the MES's data through its admin interface
mes()
{
    echo "   [MES API] $1 $2${3:+ $3}"
    curl -sS -f -X "$1" -H 'Content-Type: application/json' ${3:+--data-binary "$3"} \
        "$MES_URL$2" >/dev/null || { echo "test/demo.sh: MES API: $1 $2 failed" >&2; exit 1; }
}

# mes_reads: what the last pull asked the MES API for, from its request log
mes_reads()
{
    /usr/bin/python3 - "$RECEIVER_DIR/mes.log" "$1" <<'PY'
import json, sys, urllib.parse
lines = [json.loads(l) for l in open(sys.argv[1])]
gets = [l for l in lines if l["method"] == "GET"][-int(sys.argv[2]):]
for l in gets:
    print("   [MES API] got GET %s?%s -> %s row(s)"
          % (l["path"], urllib.parse.urlencode(l["params"]), l.get("rows", "no")))
PY
}

# --- a plant shift ---------------------------------------------------------
echo
echo "-- the MES releases three orders"
mes POST /_admin/orders '[
 {"order_code": "PO-1001", "product_code": "P-100", "machine_code": "M-1", "quantity": 500, "unit": "pcs",
  "start": "2026-11-23T05:00:00Z", "end": "2026-11-23T13:00:00Z", "updated_at": "2026-11-22T17:00:00Z"},
 {"order_code": "PO-1002", "product_code": "P-200", "machine_code": "M-1", "quantity": 120, "unit": "kg",
  "start": "2026-11-23T09:00:00Z", "end": "2026-11-23T17:00:00Z", "updated_at": "2026-11-22T17:01:00Z"},
 {"order_code": "PO-1003", "product_code": "P-300", "machine_code": "M-3", "quantity": 40, "unit": "pcs",
  "start": "2026-11-24T05:00:00Z", "end": null, "updated_at": "2026-11-22T17:02:00Z"}]'
step 3 "the first pull reads them all (rows read, inserted, updated, deleted)" <<'SQL'
SELECT * FROM mfgsync.run_pull('mes_orders');
SQL
mes_reads 1

echo
echo "-- the planner moves PO-1002 to machine M-2 in the MES"
mes POST /_admin/orders '{"order_code": "PO-1002", "machine_code": "M-2", "updated_at": "2026-11-22T17:05:00Z"}'
echo "-- the next pull sends the watermark to the MES API as a query parameter:"
sql -At -c "SELECT * FROM mfgsync.pull_explain('mes_orders')" </dev/null | grep -E 'Remote Request|Pushed Down' |
    sed 's/^ */   /'
step 1 "the incremental pull reads only rows at or past the watermark (the last row read, again, and the change)" <<'SQL'
SELECT * FROM mfgsync.run_pull('mes_orders');
SQL
mes_reads 1

step 0 "nothing changed in the MES: the pull re-reads the boundary row and emits nothing" <<'SQL'
SELECT * FROM mfgsync.run_pull('mes_orders');
SQL

step 2 "MES books START/END for PO-1001" <<'SQL'
INSERT INTO booking (order_code, event, machine_code, booked_at)
VALUES ('PO-1001', 'START', 'M-1', '2026-11-23 06:04+01');
INSERT INTO booking (order_code, event, machine_code, booked_at)
VALUES ('PO-1001', 'END', 'M-1', '2026-11-23 13:41+01');
SQL

echo
echo "-- the MES cancels PO-1002"
mes DELETE /_admin/orders/PO-1002
step 1 "an incremental pull cannot see deletions; a full read (delete_missing) deletes it" <<'SQL'
SELECT * FROM mfgsync.run_pull('mes_orders', full_read => true);
SQL

echo
echo "-- the MES renumbers PO-1003 to PO-1003A"
mes DELETE /_admin/orders/PO-1003
mes POST /_admin/orders '{"order_code": "PO-1003A", "product_code": "P-300", "machine_code": "M-3",
  "quantity": 40, "unit": "pcs", "start": "2026-11-24T05:00:00Z", "end": null, "updated_at": "2026-11-22T17:10:00Z"}'
step 2 "the next full read: Delete of the old key, Add of the new one" <<'SQL'
SELECT * FROM mfgsync.run_pull('mes_orders', full_read => true);
SQL

step 0 "a rolled-back transaction leaves no event" <<'SQL'
BEGIN;
INSERT INTO production_order (order_code, product_code) VALUES ('PO-1004', 'P-400');
UPDATE production_order SET quantity = 450 WHERE order_code = 'PO-1001';
ROLLBACK;
SQL

echo
echo "-- TRUNCATE is refused (never silent); this error is expected:"
if out=$(sql -e -c 'TRUNCATE production_order' 2>&1); then
    echo "$out"
    echo "test/demo.sh: TRUNCATE was not refused" >&2
    exit 1
fi
echo "$out"
grep -q 'because mfgsync tracks it' <<<"$out" ||
    { echo "test/demo.sh: TRUNCATE failed for another reason" >&2; exit 1; }
sql -c 'SELECT count(*) AS orders_left FROM production_order'

# --- what was captured -----------------------------------------------------
echo
echo "-- the outbox: mfgsync.events"
sql -x -c 'SELECT id, message_type, action, key, data, old_data
             FROM mfgsync.events ORDER BY id'

echo
echo "-- consumer 'demo' reads them in commit order, then finds nothing new"
sql <<'SQL'
SELECT id, txid, message_type, action, key FROM mfgsync.read_events('demo');
SELECT count(*) AS unread FROM mfgsync.read_events('demo');
SQL

echo
echo "-- delivery: the MES's receiver gets every event, signed; what it printed:"
total=$(sql -At -c 'SELECT count(*) FROM mfgsync.outbox')
for _ in $(seq 300); do
    got=$(wc -l <"$RECEIVER_DIR/requests.log")
    [ "$got" -ge "$total" ] && break
    sleep 0.1
done
sed 's/^/   [receiver] /' "$RECEIVER_DIR/printed"
summary=$(python3 "$MFGSYNC_SRC/test/receiver.py" --summary "$RECEIVER_DIR/requests.log")
echo "   receiver summary: $summary"
[ "$got" -ge "$total" ] ||
    { echo "test/demo.sh: the receiver got $got of $total events" >&2; exit 1; }
grep -q '"bad_signatures": 0' <<<"$summary" ||
    { echo "test/demo.sh: a signature did not verify" >&2; exit 1; }
sql -x -c 'SELECT name, pending, delivered, failed, dead, last_success_at
             FROM mfgsync.endpoint_status'

# --- B2MML: the same orders as ISA-95 documents, answered by ConfirmBOD -----
"${as_user[@]}" /usr/bin/python3 "$MFGSYNC_SRC/test/receiver.py" --port 0 \
    --port-file "$RECEIVER_DIR/b2mml.port" --log "$RECEIVER_DIR/b2mml.log" \
    --b2mml accept >/dev/null 2>&1 </dev/null &
B2MML_PID=$!
for _ in $(seq 100); do [ -s "$RECEIVER_DIR/b2mml.port" ] && break; sleep 0.1; done
[ -s "$RECEIVER_DIR/b2mml.port" ] || { echo "test/demo.sh: the B2MML receiver did not start" >&2; exit 1; }
B2MML_URL="http://127.0.0.1:$(cat "$RECEIVER_DIR/b2mml.port")/mes/b2mml"
echo
echo "-- B2MML: endpoint 'mes-b2mml' -> $B2MML_URL (an MES that answers ConfirmBOD)"
sql -e >/dev/null <<SQL
SELECT mfgsync.create_endpoint('mes-b2mml', '$B2MML_URL', 'b2mml',
       '{"component_id": "erp-lyon", "receiver_logical_id": "MES-LYON"}');
SELECT mfgsync.subscribe('mes-b2mml', ARRAY['ProductionOrder']);
SQL
mes POST /_admin/orders '{"order_code": "PO-2001", "product_code": "P-100", "machine_code": "M-1",
  "quantity": 250, "unit": "pcs", "start": "2026-11-24T05:00:00Z", "end": "2026-11-24T09:00:00Z",
  "updated_at": "2026-11-22T17:20:00Z"}'
step 1 "PO-2001 is pulled in; the B2MML endpoint sends it as SyncProductionSchedule" <<'SQL'
SELECT * FROM mfgsync.run_pull('mes_orders');
SQL
for _ in $(seq 300); do
    [ "$(sql -At -c "SELECT delivered FROM mfgsync.endpoint_status WHERE name = 'mes-b2mml'" </dev/null)" = 1 ] && break
    sleep 0.1
done
echo "   what the MES received, and the ConfirmBOD it answered:"
/usr/bin/python3 - "$RECEIVER_DIR/b2mml.log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    rec = json.loads(line)
    for what in ("body", "reply"):
        print("\n".join("   [MES %s] %s" % ("got " if what == "body" else "sent", l)
                        for l in rec[what].splitlines()))
PY
sql -x -c "SELECT name, pending, delivered, failed, dead FROM mfgsync.endpoint_status
            WHERE name = 'mes-b2mml'"
[ "$(sql -At -c "SELECT delivered FROM mfgsync.endpoint_status WHERE name = 'mes-b2mml'" </dev/null)" = 1 ] ||
    { echo "test/demo.sh: the B2MML order was not confirmed" >&2; exit 1; }
kill "$B2MML_PID" 2>/dev/null; wait "$B2MML_PID" 2>/dev/null || true

echo
echo "-- the pull job's runs: mfgsync.pull_runs"
sql -c "SELECT job, status, full_read, rows_read AS read, rows_inserted AS inserted,
               rows_updated AS updated, rows_deleted AS deleted, watermark_to
          FROM mfgsync.pull_runs ORDER BY id"

echo
echo "-- mfgsync.tracked_tables"
sql -x -c 'SELECT relation, message_type, key_columns, columns, truncate_event
             FROM mfgsync.tracked_tables ORDER BY relation::text'

echo
echo "test/demo.sh: done"
