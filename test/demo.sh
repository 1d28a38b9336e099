#!/bin/bash
# test/demo.sh - mfgsync in one command, from a fresh Debian 12 machine.
#
# Installs what is missing, builds and installs mfgsync, starts a throwaway
# PostgreSQL 15 cluster (as $MFGSYNC_USER when run as root), tracks two
# MES/ERP staging tables, plays a plant shift against them and shows the
# events captured in the outbox.  The cluster is stopped and removed on exit
# unless MFGSYNC_DEMO_KEEP=1.  Exits non-zero if any step fails unexpectedly.
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
        return
    fi
    stop_cluster
    [ -n "${RECEIVER_PID:-}" ] && kill "$RECEIVER_PID" 2>/dev/null && wait "$RECEIVER_PID" 2>/dev/null
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
    "end"        timestamptz
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

# --- a plant shift ---------------------------------------------------------
step 3 "ERP releases three orders" <<'SQL'
INSERT INTO production_order VALUES
    ('PO-1001', 'P-100', 'M-1', 500, 'pcs', '2026-11-23 06:00+01', '2026-11-23 14:00+01'),
    ('PO-1002', 'P-200', 'M-1', 120, 'kg',  '2026-11-23 10:00+01', '2026-11-23 18:00+01'),
    ('PO-1003', 'P-300', 'M-3', 40,  'pcs', '2026-11-24 06:00+01', NULL);
SQL

step 1 "planner moves PO-1002 to machine M-2" <<'SQL'
UPDATE production_order SET machine_code = 'M-2' WHERE order_code = 'PO-1002';
SQL

step 0 "a no-op update (same values) emits nothing" <<'SQL'
UPDATE production_order SET machine_code = 'M-2', quantity = 120.000
 WHERE order_code = 'PO-1002';
SQL

step 2 "MES books START/END for PO-1001" <<'SQL'
INSERT INTO booking (order_code, event, machine_code, booked_at)
VALUES ('PO-1001', 'START', 'M-1', '2026-11-23 06:04+01');
INSERT INTO booking (order_code, event, machine_code, booked_at)
VALUES ('PO-1001', 'END', 'M-1', '2026-11-23 13:41+01');
SQL

step 2 "an order is renumbered (key change: Delete + Add)" <<'SQL'
UPDATE production_order SET order_code = 'PO-1003A' WHERE order_code = 'PO-1003';
SQL

step 1 "a cancelled order is deleted" <<'SQL'
DELETE FROM production_order WHERE order_code = 'PO-1002';
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
step 1 "ERP releases PO-2001; the MES gets it as SyncProductionSchedule" <<'SQL'
INSERT INTO production_order VALUES
    ('PO-2001', 'P-100', 'M-1', 250, 'pcs', '2026-11-24 06:00+01', '2026-11-24 10:00+01');
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
echo "-- mfgsync.tracked_tables"
sql -x -c 'SELECT relation, message_type, key_columns, columns, truncate_event
             FROM mfgsync.tracked_tables ORDER BY relation::text'

echo
echo "test/demo.sh: done"
