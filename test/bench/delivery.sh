#!/bin/bash
# test/bench/delivery.sh - mfgsync delivery benchmark, from a fresh machine.
#
#   test/bench/delivery.sh                 # defaults
#   EVENTS=20000 BACKLOG=100000 test/bench/delivery.sh   # quick run
#
# Installs what is missing (test/common.sh's prepare), then, as the
# unprivileged user when started as root, starts a throwaway cluster, nginx
# answering 204 on 127.0.0.1, and measures:
#
#   0. the receiver's ceiling: wrk, one POST per request with a body of the
#      size of an event's, as many connections as an endpoint's
#      concurrency (the plain-HTTP-client baseline);
#   1. one event per request: $EVENTS events committed at once, time from
#      the commit until the endpoint's delivered counter reaches them;
#      0 and 1 alternate $ROUNDS times and their medians are compared;
#      then once through libcurl (mfgsync.http_client = libcurl);
#   2. CloudEvents batches of 100: the same with $BATCH_EVENTS events;
#   3. latency commit -> received at a steady 1,000 events/s (pgbench -R):
#      a second nginx server logs each request's arrival time and webhook-id
#      (= event id), compared with the event's created_at: p50, p99;
#   4. a backlog of $BACKLOG events committed while the endpoint is paused,
#      then resumed: drain rate of the first and the last tenth (claim cost
#      must not grow with the backlog), the sender's peak private memory,
#      and the outbox size before and after retirement.
#
# Endpoints get WORKERS senders (option "workers", default 2; the latency
# endpoint LATENCY_WORKERS, default 1); an endpoint's CONCURRENCY (16) is
# shared by its senders, so it keeps wrk's connection count.
#
# Prints the figures and which targets are met; exits non-zero only when
# something broke.
set -Eeuo pipefail

EVENTS=${EVENTS:-100000}
# rounds of the ceiling and of one event per request (medians compared)
ROUNDS=${ROUNDS:-3}
BATCH_EVENTS=${BATCH_EVENTS:-500000}
BACKLOG=${BACKLOG:-1000000}
LATENCY_SECONDS=${LATENCY_SECONDS:-20}
CONCURRENCY=${CONCURRENCY:-16}
# senders per endpoint (option "workers"): its shards share its CONCURRENCY
# connections, so wrk's connection count stays the same
WORKERS=${WORKERS:-2}
LATENCY_WORKERS=${LATENCY_WORKERS:-1}
PORT=55441
NGINX_PORT=55442
LATENCY_PORT=55443

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common.sh
. "$HERE/../common.sh"

msg() { echo "delivery.sh: $*"; }
die() { echo "delivery.sh: $*" >&2; exit 1; }

NGINX_DIR=""
cleanup()
{
    if [ -n "$NGINX_DIR" ] && [ -f "$NGINX_DIR/nginx.pid" ]; then
        kill "$(cat "$NGINX_DIR/nginx.pid")" 2>/dev/null || true
    fi
    [ -n "$NGINX_DIR" ] && rm -rf "$NGINX_DIR"
    stop_cluster
}
trap cleanup EXIT

prepare >/dev/null || die "could not install the prerequisites"

start_cluster delivery "$PORT" \
    "mfgsync.database = 'postgres'" \
    "mfgsync.max_workers = 2" \
    "shared_buffers = '256MB'" \
    "max_wal_size = '4GB'" \
    "synchronous_commit = on" ||
    die "could not start the cluster"
PSQL=(run_unprivileged psql -X -q -At -v ON_ERROR_STOP=1 -h "$CLUSTER_DIR" -p "$PORT" -d postgres)
sql() { "${PSQL[@]}" -c "$1"; }

# nginx: 204 for everything, keep-alive, no logging
NGINX_DIR=$(mktemp -d /tmp/mfgsync-nginx.XXXXXX)
[ "$(id -u)" = 0 ] && chown "$MFGSYNC_USER" "$NGINX_DIR"
cat >"$NGINX_DIR/nginx.conf" <<NGINX
worker_processes 1;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $NGINX_DIR/body;
    proxy_temp_path $NGINX_DIR/proxy;
    fastcgi_temp_path $NGINX_DIR/fastcgi;
    uwsgi_temp_path $NGINX_DIR/uwsgi;
    scgi_temp_path $NGINX_DIR/scgi;
    keepalive_requests 1000000;
    log_format arrival '\$msec \$http_webhook_id';
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { client_max_body_size 10m; return 204; }
    }
    server {
        listen 127.0.0.1:$LATENCY_PORT;
        access_log $NGINX_DIR/arrivals.log arrival;
        location / { client_max_body_size 10m; return 204; }
    }
}
NGINX
run_unprivileged nginx -c "$NGINX_DIR/nginx.conf" -p "$NGINX_DIR" -e "$NGINX_DIR/error.log" ||
    die "could not start nginx"

sql "CREATE EXTENSION mfgsync;
     CREATE TABLE production_order (order_code text PRIMARY KEY, product_code text,
        machine_code text, start timestamptz, \"end\" timestamptz, quantity numeric);
     SELECT mfgsync.track('production_order', 'ProductionOrder');" >/dev/null

# a representative body, for wrk
BODY=$(sql "INSERT INTO production_order VALUES ('PO-0', 'P-1', 'M-1', now(), now() + interval '8 hours', 100);
            SELECT json_build_object('id', id::text, 'type', 'ProductionOrder.Created',
                     'time', created_at, 'message_type', message_type, 'action', action,
                     'key', key, 'data', data, 'old_data', old_data)::text
              FROM mfgsync.events ORDER BY id DESC LIMIT 1")
BODY_FILE="$NGINX_DIR/body.json"
printf '%s' "$BODY" >"$BODY_FILE"
cat >"$NGINX_DIR/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$BODY_FILE", "r")
wrk.body = f:read("*a")
f:close()
LUA
msg "event body: ${#BODY} bytes"

# the receiver's ceiling, measured again before each round of step 1
ceiling()
{
    wrk -t 1 -c "$CONCURRENCY" -d 10s -s "$NGINX_DIR/post.lua" \
        "http://127.0.0.1:$NGINX_PORT/hook" | awk '/Requests\/sec/ {print int($2)}'
}

# the median of the arguments
median()
{
    printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}


# Waiting is done by the server, in the session that committed the events:
# bench_wait polls the endpoint's delivered counter every 5 ms (a volatile
# function sees a new snapshot per statement).  Polling from the shell would
# start a psql and a backend per poll and take CPU from the sender.
sql "CREATE FUNCTION bench_delivered(ep text) RETURNS bigint LANGUAGE sql AS \$\$
         SELECT sum(s.delivered)::bigint FROM mfgsync.endpoint_state s
           JOIN mfgsync.endpoint e ON e.id = s.endpoint_id WHERE e.name = ep \$\$;
     -- milliseconds until endpoint ep has delivered target events in all
     CREATE FUNCTION bench_wait(ep text, target bigint) RETURNS bigint
     LANGUAGE plpgsql AS \$\$
     DECLARE
         t0 timestamptz := clock_timestamp();
     BEGIN
         WHILE coalesce(bench_delivered(ep), 0) < target LOOP
             IF clock_timestamp() - t0 > interval '30 minutes' THEN
                 RAISE EXCEPTION 'endpoint %: only % of % delivered after 30 minutes',
                     ep, bench_delivered(ep), target;
             END IF;
             PERFORM pg_sleep(0.005);
         END LOOP;
         RETURN round(extract(epoch FROM clock_timestamp() - t0) * 1000);
     END \$\$" >/dev/null

# deliver EP N [PREFIX]: commit N events at once to endpoint EP (new
# orders PREFIX1 ... PREFIXN), wait until delivered; prints the milliseconds
# from the commit to the last 2xx recorded
deliver()
{
    "${PSQL[@]}" <<SQL
SELECT bench_delivered('$1') AS base \\gset
INSERT INTO production_order
SELECT '${3:-PO-}' || g, 'P-' || g % 100, 'M-' || g % 10, now(), now() + interval '8 hours', g
  FROM generate_series(1, $2) g
ON CONFLICT (order_code) DO UPDATE SET quantity = production_order.quantity + 1;
SELECT bench_wait('$1', :base + $2);
SQL
}

# endpoint NAME PORT OPTIONS: an endpoint on 127.0.0.1:PORT subscribed to the orders
endpoint()
{
    sql "SELECT mfgsync.create_endpoint('$1', 'http://127.0.0.1:$2/hook', 'webhook', '$3');
         SELECT mfgsync.subscribe('$1', ARRAY['ProductionOrder'])" >/dev/null
}

# 0. and 1., interleaved: ROUNDS times the ceiling (wrk, 10 s), then one
# event per request for EVENTS new orders; the medians are compared
endpoint single "$NGINX_PORT" "{\"concurrency\": $CONCURRENCY, \"workers\": $WORKERS}"
wrk_rates=()
single_rates=()
for round in $(seq 1 "$ROUNDS"); do
    w=$(ceiling)
    ms=$(deliver single "$EVENTS" "R$round-")
    r=$((EVENTS * 1000 / ms))
    msg "round $round: receiver ceiling (wrk, $CONCURRENCY connections) $w requests/s; one event per request (workers $WORKERS): $EVENTS events in $ms ms = $r events/s ($((r * 100 / w))%)"
    wrk_rates+=("$w")
    single_rates+=("$r")
done
WRK_RPS=$(median "${wrk_rates[@]}")
SINGLE_RATE=$(median "${single_rates[@]}")
msg "receiver ceiling (wrk, $CONCURRENCY connections), median of $ROUNDS: $WRK_RPS requests/s"
msg "one event per request (workers $WORKERS, $CONCURRENCY connections in all), median of $ROUNDS: $SINGLE_RATE events/s ($((SINGLE_RATE * 100 / WRK_RPS))% of wrk)"

# 1b. the same once through libcurl (mfgsync.http_client = libcurl), the
# client https:// endpoints use; a session started after the reload sees
# the new value, so the postmaster has signalled the senders by then
sql "ALTER SYSTEM SET mfgsync.http_client = 'libcurl'" >/dev/null
sql "SELECT pg_reload_conf()" >/dev/null
[ "$(sql "SELECT current_setting('mfgsync.http_client')")" = libcurl ] ||
    die "mfgsync.http_client was not reloaded"
ms=$(deliver single "$EVENTS" "C-")
CURL_RATE=$((EVENTS * 1000 / ms))
msg "one event per request through libcurl (mfgsync.http_client = libcurl), once: $EVENTS events in $ms ms = $CURL_RATE events/s ($((CURL_RATE * 100 / WRK_RPS))% of the median wrk)"
sql "ALTER SYSTEM RESET mfgsync.http_client" >/dev/null
sql "SELECT pg_reload_conf()" >/dev/null
sql "SELECT mfgsync.drop_endpoint('single')" >/dev/null

# 2. CloudEvents batches of 100
endpoint batched "$NGINX_PORT" "{\"concurrency\": 4, \"workers\": $WORKERS, \"envelope\": \"cloudevents-batch\", \"batch_size\": 100}"
ms=$(deliver batched "$BATCH_EVENTS")
BATCH_RATE=$((BATCH_EVENTS * 1000 / ms))
msg "batched (100 per request): $BATCH_EVENTS events in $ms ms = $BATCH_RATE events/s"
sql "SELECT mfgsync.drop_endpoint('batched')" >/dev/null

# 3. latency at a steady 1,000 events/s: nginx logs arrival time and event id
# one sender: a second one only adds a window opening per commit at this rate
endpoint latency "$LATENCY_PORT" "{\"concurrency\": $CONCURRENCY, \"workers\": $LATENCY_WORKERS}"
cat >"$NGINX_DIR/latency.sql" <<'SQL'
\set k random(1, 100000)
UPDATE production_order SET quantity = quantity + 1 WHERE order_code = 'PO-' || :k;
SQL
[ "$(id -u)" = 0 ] && chown -R "$MFGSYNC_USER" "$NGINX_DIR"
LAT_FIRST=$(sql "SELECT last_value FROM mfgsync.event_id_seq")
run_unprivileged pgbench -n -h "$CLUSTER_DIR" -p "$PORT" -c 2 -j 2 -R 1000 \
    -T "$LATENCY_SECONDS" -f "$NGINX_DIR/latency.sql" postgres >"$NGINX_DIR/pgbench.log" 2>&1 ||
    { cat "$NGINX_DIR/pgbench.log"; die "pgbench failed"; }
sql "SELECT id, extract(epoch FROM created_at) FROM mfgsync.events WHERE id > $LAT_FIRST" \
    >"$NGINX_DIR/created.txt"
LAT_N=$(wc -l <"$NGINX_DIR/created.txt")
for _ in $(seq 600); do
    [ "$(wc -l <"$NGINX_DIR/arrivals.log")" -ge "$LAT_N" ] && break
    sleep 0.1
done
read -r LAT_P50 LAT_P99 LAT_COUNT < <(python3 - "$NGINX_DIR/created.txt" "$NGINX_DIR/arrivals.log" <<'PY'
import sys
created = {}
for line in open(sys.argv[1]):
    i, t = line.strip().split("|")
    created[i] = float(t)
lat = []
for line in open(sys.argv[2]):
    t, i = line.split()
    if i in created:
        lat.append((float(t) - created.pop(i)) * 1000)
lat.sort()
print("%.2f %.2f %d" % (lat[len(lat) // 2], lat[int(len(lat) * 0.99)], len(lat)))
PY
)
msg "latency at 1,000 events/s (workers $LATENCY_WORKERS): p50 $LAT_P50 ms, p99 $LAT_P99 ms over $LAT_COUNT of $LAT_N events"
sql "SELECT mfgsync.drop_endpoint('latency')" >/dev/null

# 4. backlog
endpoint backlog "$NGINX_PORT" "{\"concurrency\": $CONCURRENCY, \"workers\": $WORKERS}"
sql "SELECT mfgsync.pause_endpoint('backlog')" >/dev/null
sql "INSERT INTO production_order
     SELECT 'BL-' || g, 'P-1', 'M-1', now(), now(), g FROM generate_series(1, $BACKLOG) g" >/dev/null
OUTBOX_BEFORE=$(sql "SELECT pg_total_relation_size('mfgsync.outbox')")
tenth=$((BACKLOG / 10))
# the senders' private memory, sampled every 50 ms from /proc until told to stop
SENDERS=$(sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mfgsync sender'")
(
    peak=0
    while [ ! -e "$NGINX_DIR/backlog.done" ]; do
        for pid in $SENDERS; do
            kb=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null)
            [ "${kb:-0}" -gt "$peak" ] && peak=$kb
        done
        echo "$peak" >"$NGINX_DIR/backlog.peak"
        sleep 0.05
    done
) &
SAMPLER=$!
# resumed and waited on in one session: the first tenth, up to the last
# tenth, and the last tenth
# shellcheck disable=SC2207
waits=($("${PSQL[@]}" <<SQL
SELECT 'resumed' FROM mfgsync.resume_endpoint('backlog');
SELECT bench_wait('backlog', $tenth);
SELECT bench_wait('backlog', $((BACKLOG - tenth)));
SELECT bench_wait('backlog', $BACKLOG);
SQL
))
t_first=${waits[1]}
t_last=${waits[3]}
touch "$NGINX_DIR/backlog.done"
wait "$SAMPLER"
peak_kb=$(cat "$NGINX_DIR/backlog.peak")
FIRST_RATE=$((tenth * 1000 / t_first))
LAST_RATE=$((tenth * 1000 / t_last))
msg "backlog of $BACKLOG: first tenth $FIRST_RATE events/s, last tenth $LAST_RATE events/s; sender peak private memory $((peak_kb / 1024)) MB"
ROWS_BEFORE=$(sql "SELECT count(*) FROM mfgsync.outbox")
# retention 0: the launcher retires them on reload; retire() does the rest
sql "ALTER SYSTEM SET mfgsync.retention = 0" >/dev/null
sql "SELECT pg_reload_conf()" >/dev/null
sql "SELECT mfgsync.retire()" >/dev/null
for _ in $(seq 600); do
    [ "$(sql "SELECT count(*) FROM mfgsync.outbox")" = 0 ] && break
    sleep 0.1
done
RETIRED=$((ROWS_BEFORE - $(sql "SELECT count(*) FROM mfgsync.outbox")))
sql "VACUUM mfgsync.outbox" >/dev/null
HEAP_AFTER=$(sql "SELECT pg_relation_size('mfgsync.outbox')")
OUTBOX_AFTER=$(sql "SELECT pg_total_relation_size('mfgsync.outbox')")
msg "outbox: $((OUTBOX_BEFORE / 1048576)) MB with the backlog, $RETIRED of $ROWS_BEFORE events retired, $((OUTBOX_AFTER / 1024)) kB after VACUUM (table $((HEAP_AFTER / 1024)) kB, the rest is index pages kept for reuse)"

echo
echo "| figure | value | target |"
echo "| --- | --- | --- |"
echo "| receiver ceiling (wrk, $CONCURRENCY connections) | $WRK_RPS req/s | |"
echo "| one event per request, workers $WORKERS, $CONCURRENCY connections | $SINGLE_RATE events/s ($((SINGLE_RATE * 100 / WRK_RPS))% of wrk) | >= 10,000/s and >= 50% |"
echo "| the same through libcurl, once | $CURL_RATE events/s ($((CURL_RATE * 100 / WRK_RPS))% of wrk) | (comparison) |"
echo "| CloudEvents batches of 100 | $BATCH_RATE events/s | >= 50,000/s |"
echo "| latency at 1,000 events/s, workers $LATENCY_WORKERS | p50 $LAT_P50 ms, p99 $LAT_P99 ms | p50 <= 5, p99 <= 50 |"
echo "| backlog $BACKLOG: drain rate first / last tenth | $FIRST_RATE / $LAST_RATE events/s | flat |"
echo "| sender peak private memory | $((peak_kb / 1024)) MB | < 100 MB |"
echo "| outbox before / after retirement + VACUUM | $((OUTBOX_BEFORE / 1048576)) MB / $((OUTBOX_AFTER / 1024)) kB (table $((HEAP_AFTER / 1024)) kB) | near zero |"
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {print int($2/1024) " MB"}' /proc/meminfo), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
