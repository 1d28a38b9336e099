#!/bin/bash
# test/bench/b2mml.sh - B2MML rendering throughput, from a fresh machine.
#
#   test/bench/b2mml.sh              # 100,000 events
#   EVENTS=20000 test/bench/b2mml.sh # quick run
#
# Installs what is missing (test/common.sh's prepare), starts a throwaway
# cluster, captures $EVENTS production orders (the canonical order table)
# and renders every event, best of $ROUNDS rounds each, in one session:
#
#   baseline  mfgsync.webhook_render(id): the webhook JSON envelope
#   xml       mfgsync.b2mml_render(id, endpoint): SyncProductionSchedule XML
#   json-mesa / json-edinn  the same document in the two JSON dialects
#
# Both functions read the event from the outbox the same way (one SPI query
# per call), so the ratio is what B2MML costs over the envelope.  Prints
# documents/s and the ratio to the baseline; target: xml <= 3x the envelope.
# Exits non-zero only when something broke.
set -Eeuo pipefail

EVENTS=${EVENTS:-100000}
ROUNDS=${ROUNDS:-3}
PORT=55462

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common.sh
. "$HERE/../common.sh"

prepare >/dev/null || { echo "b2mml.sh: build or installation failed" >&2; exit 1; }
trap stop_cluster EXIT
start_cluster b2bench "$PORT" "mfgsync.database = 'bench'" "mfgsync.max_workers = 1" >/dev/null
run_unprivileged createdb -h "$CLUSTER_DIR" -p "$PORT" bench
sql() { run_unprivileged psql -X -q -At -v ON_ERROR_STOP=1 -h "$CLUSTER_DIR" -p "$PORT" -d bench "$@"; }

sql >/dev/null <<SQL
CREATE EXTENSION mfgsync;
CREATE TABLE production_order (order_code text PRIMARY KEY, product_code text NOT NULL,
    machine_code text, quantity numeric(12,3), unit text, "start" timestamptz, "end" timestamptz);
SELECT mfgsync.track('production_order', 'ProductionOrder');
SELECT mfgsync.create_endpoint(d, 'http://127.0.0.1:9/', 'b2mml', jsonb_build_object('dialect', d))
  FROM unnest(ARRAY['xml', 'json-mesa', 'json-edinn']) d;
SELECT mfgsync.pause_endpoint(d) FROM unnest(ARRAY['xml', 'json-mesa', 'json-edinn']) d;
SELECT mfgsync.subscribe(d, ARRAY['ProductionOrder']) FROM unnest(ARRAY['xml', 'json-mesa', 'json-edinn']) d;
INSERT INTO production_order
SELECT 'PO-' || n, 'P-' || (n % 500), 'M-' || (n % 20), n % 1000 + 0.5, 'pcs',
       timestamptz '2026-11-23 06:00+01' + n * interval '1 minute',
       timestamptz '2026-11-23 14:00+01' + n * interval '1 minute'
  FROM generate_series(1, $EVENTS) n;
VACUUM ANALYZE mfgsync.outbox;
CREATE FUNCTION seconds(q text) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN EXECUTE q; RETURN extract(epoch FROM clock_timestamp() - t0); END \$\$;
SQL

echo "b2mml.sh: $EVENTS events, best of $ROUNDS rounds (machine shared: figures are noisy)"
declare -A best
for what in baseline xml json-mesa json-edinn; do
    if [ "$what" = baseline ]; then
        q="SELECT sum(length(mfgsync.webhook_render(id))) FROM mfgsync.outbox"
    else
        q="SELECT sum(length(mfgsync.b2mml_render(id, '$what'))) FROM mfgsync.outbox"
    fi
    best[$what]=$(sql -c "SELECT min(seconds(\$q\$$q\$q\$)) FROM generate_series(1, $ROUNDS)")
    bytes=$(sql -c "$q")
    printf '  %-10s %9.0f documents/s  (%.2f s, %d bytes per document)\n' "$what" \
        "$(awk -v n="$EVENTS" -v s="${best[$what]}" 'BEGIN { print n / s }')" \
        "${best[$what]}" "$((bytes / EVENTS))"
done
for what in xml json-mesa json-edinn; do
    ratio=$(awk -v a="${best[$what]}" -v b="${best[baseline]}" 'BEGIN { print a / b }')
    printf '  %-10s costs %.2fx the webhook envelope' "$what" "$ratio"
    if [ "$what" = xml ]; then
        if awk -v r="$ratio" 'BEGIN { exit !(r <= 3) }'; then echo "  (target <= 3x: met)"; else echo "  (target <= 3x: NOT met)"; fi
    else
        echo
    fi
done
