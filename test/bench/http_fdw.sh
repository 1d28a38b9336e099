#!/bin/bash
# test/bench/http_fdw.sh - mfgsync_http scan benchmark, from a fresh machine.
#
#   test/bench/http_fdw.sh                  # 1M rows, plus the 10M memory run
#   BIG_ROWS=0 test/bench/http_fdw.sh       # skip the 10M run
#
# Generates 1,000 static pages of 1,000 rows (order_code, product_code,
# start, end, machine_code) and the same rows as one JSON array, serves them
# with nginx on 127.0.0.1 (page number -> file through try_files), starts a
# throwaway cluster and measures, in the same run:
#
#   1. the FDW: SELECT count(*), max("end") over 1,000,000 rows read in
#      pages of 1,000 (rows/s, backend VmHWM);
#   2. the baseline a DBA without extensions would use: the whole array read
#      with COPY ... FROM PROGRAM 'curl ...' into a text column, then
#      json_to_recordset (rows/s, backend VmHWM);
#   3. the FDW over 10,000,000 rows (the same page files served in a cycle):
#      VmHWM must not grow with the number of rows.
#
# Prints the figures and which targets are met (>= 600,000 rows/s, >= 1.5x
# the baseline, VmHWM < 64 MB and unchanged at 10M); exits non-zero only
# when something broke.  The machine may be shared: figures are noisy.
set -Eeuo pipefail

PAGES=1000
PAGE_ROWS=1000
BIG_ROWS=${BIG_ROWS:-10000000}
PORT=55475
NGINX_PORT=55476

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common.sh
. "$HERE/../common.sh"

prepare
start_cluster httpbench "$PORT" "shared_buffers = '256MB'"
trap 'run_unprivileged nginx -p "$CLUSTER_DIR/nginx" -c nginx.conf -s stop 2>/dev/null || true; stop_cluster' EXIT

psql_() { run_unprivileged psql -X -q -At -v ON_ERROR_STOP=1 -h "$CLUSTER_DIR" -p "$PORT" -d postgres "$@"; }

echo "== generating $PAGES pages of $PAGE_ROWS rows"
mkdir -p "$CLUSTER_DIR/nginx/logs" "$CLUSTER_DIR/www/m1" "$CLUSTER_DIR/www/big"
/usr/bin/python3 - "$CLUSTER_DIR/www" "$PAGES" "$PAGE_ROWS" "$BIG_ROWS" <<'EOF'
import json, os, sys, datetime
www, pages, per, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
base = datetime.datetime(2024, 1, 1)
allf = open(os.path.join(www, "all.json"), "w")
allf.write("[")
for p in range(1, pages + 1):
    rows = []
    for k in range(per):
        i = (p - 1) * per + k + 1
        s = base + datetime.timedelta(minutes=i)
        rows.append('{"order_code":"PO-%08d","product_code":"P-%04d","start":"%s","end":"%s","machine_code":"M-%02d"}'
                    % (i, i % 5000, s.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       (s + datetime.timedelta(minutes=90)).strftime("%Y-%m-%dT%H:%M:%SZ"), i % 40))
    body = ",".join(rows)
    with open(os.path.join(www, "m1", "%d.json" % p), "w") as f:
        f.write("[" + body + "]")
    allf.write(("," if p > 1 else "") + body)
allf.write("]")
allf.close()
with open(os.path.join(www, "m1", "%d.json" % (pages + 1)), "w") as f:
    f.write("[]")
# the big run: page n is page ((n - 1) % pages) + 1
for n in range(1, big // per + 1):
    os.symlink(os.path.join(www, "m1", "%d.json" % ((n - 1) % pages + 1)),
               os.path.join(www, "big", "%d.json" % n))
with open(os.path.join(www, "big", "%d.json" % (big // per + 1)), "w") as f:
    f.write("[]")
EOF
cat >"$CLUSTER_DIR/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $CLUSTER_DIR/nginx/nginx.pid;
error_log $CLUSTER_DIR/nginx/logs/error.log;
events { worker_connections 256; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 100000;
    default_type application/json;
    client_body_temp_path $CLUSTER_DIR/nginx/tmp;
    proxy_temp_path $CLUSTER_DIR/nginx/tmp;
    fastcgi_temp_path $CLUSTER_DIR/nginx/tmp;
    uwsgi_temp_path $CLUSTER_DIR/nginx/tmp;
    scgi_temp_path $CLUSTER_DIR/nginx/tmp;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $CLUSTER_DIR/www;
        location ~ ^/(m1|big)/orders\$ { try_files /\$1/\$arg_page.json =404; }
    }
}
EOF
mkdir -p "$CLUSTER_DIR/nginx/tmp"
[ "$(id -u)" = 0 ] && chown -R "$MFGSYNC_USER" "$CLUSTER_DIR/nginx" "$CLUSTER_DIR/www"
run_unprivileged nginx -p "$CLUSTER_DIR/nginx" -c nginx.conf
size=$(stat -c %s "$CLUSTER_DIR/www/all.json")
echo "   one page: $(stat -c %s "$CLUSTER_DIR/www/m1/1.json") bytes; whole array: $size bytes"

psql_ <<EOF
CREATE EXTENSION mfgsync;
CREATE SERVER bench FOREIGN DATA WRAPPER mfgsync_http
  OPTIONS (base_url 'http://127.0.0.1:$NGINX_PORT');
CREATE FOREIGN TABLE orders_1m (order_code text, product_code text, start timestamptz,
  "end" timestamptz, machine_code text) SERVER bench
  OPTIONS (path '/m1/orders', pagination 'page', page_size '$PAGE_ROWS', max_pages '100000');
CREATE FOREIGN TABLE orders_big (order_code text, product_code text, start timestamptz,
  "end" timestamptz, machine_code text) SERVER bench
  OPTIONS (path '/big/orders', pagination 'page', page_size '$PAGE_ROWS', max_pages '100000');
CREATE FUNCTION vmhwm_kb() RETURNS bigint LANGUAGE sql AS
\$\$ SELECT substring(pg_read_file('/proc/self/status') FROM 'VmHWM:\s+(\d+) kB')::bigint \$\$;
EOF

# run sql in a fresh session; prints "seconds result vmhwm_kb"
timed()
{
    psql_ -c "SELECT vmhwm_kb()" >/dev/null
    psql_ <<EOF
\set QUIET on
SELECT clock_timestamp() AS t0 \gset
SELECT ($1) AS r \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 3) || ' ' || :'r' || ' ' || vmhwm_kb();
EOF
}

echo "== 1. mfgsync_http: $((PAGES * PAGE_ROWS)) rows in pages of $PAGE_ROWS (best of 3)"
best_fdw=""
for i in 1 2 3; do
    read -r secs result hwm <<<"$(timed "SELECT count(*) || '/' || replace(max(\"end\")::text, ' ', 'T') FROM orders_1m")"
    echo "   run $i: ${secs}s ($result), VmHWM ${hwm} kB"
    if [ -z "$best_fdw" ] || awk "BEGIN{exit !($secs < $best_fdw)}"; then best_fdw=$secs; fdw_hwm=$hwm; fi
done

echo "== 2. baseline: COPY FROM PROGRAM 'curl' + json_to_recordset (best of 3)"
best_base=""
psql_ <<EOF
CREATE FUNCTION bench_baseline() RETURNS text LANGUAGE plpgsql AS \$\$
DECLARE r text;
BEGIN
    CREATE TEMP TABLE raw (doc text);
    COPY raw FROM PROGRAM 'curl -s http://127.0.0.1:$NGINX_PORT/all.json';
    SELECT count(*) || '/' || replace(max(o."end")::text, ' ', 'T') INTO r
      FROM raw, json_to_recordset(raw.doc::json)
           AS o(order_code text, product_code text, start timestamptz, "end" timestamptz, machine_code text);
    DROP TABLE raw;
    RETURN r;
END \$\$;
EOF
for i in 1 2 3; do
    read -r secs result hwm <<<"$(timed "SELECT bench_baseline()")"
    echo "   run $i: ${secs}s ($result), VmHWM ${hwm} kB"
    if [ -z "$best_base" ] || awk "BEGIN{exit !($secs < $best_base)}"; then best_base=$secs; base_hwm=$hwm; fi
done

big_hwm=""
if [ "$BIG_ROWS" -gt 0 ]; then
    echo "== 3. mfgsync_http: $BIG_ROWS rows (memory must not grow)"
    read -r secs result hwm <<<"$(timed "SELECT count(*) || '/' || replace(max(\"end\")::text, ' ', 'T') FROM orders_big")"
    echo "   ${secs}s ($result), VmHWM ${hwm} kB"
    big_hwm=$hwm
    big_rate=$(awk "BEGIN{printf \"%d\", $BIG_ROWS / $secs}")
fi

rows=$((PAGES * PAGE_ROWS))
fdw_rate=$(awk "BEGIN{printf \"%d\", $rows / $best_fdw}")
base_rate=$(awk "BEGIN{printf \"%d\", $rows / $best_base}")
ratio=$(awk "BEGIN{printf \"%.2f\", $best_base / $best_fdw}")
echo
echo "== figures (machine shared with other jobs: noisy)"
echo "   mfgsync_http, 1M rows:  ${best_fdw}s = $fdw_rate rows/s, VmHWM $((fdw_hwm / 1024)) MB"
echo "   baseline, 1M rows:      ${best_base}s = $base_rate rows/s, VmHWM $((base_hwm / 1024)) MB"
[ -n "$big_hwm" ] && echo "   mfgsync_http, $BIG_ROWS rows: $big_rate rows/s, VmHWM $((big_hwm / 1024)) MB"
echo "   speed-up over the baseline: ${ratio}x"
ok() { if [ "$1" = 1 ]; then echo "   [met]     $2"; else echo "   [not met] $2"; fi; }
ok "$(awk "BEGIN{print ($fdw_rate >= 600000)}")" ">= 600,000 rows/s"
ok "$(awk "BEGIN{print ($ratio >= 1.5)}")" ">= 1.5x the baseline"
ok "$(awk "BEGIN{print ($fdw_hwm < 65536)}")" "VmHWM < 64 MB for 1M rows"
[ -n "$big_hwm" ] && ok "$(awk "BEGIN{print ($big_hwm <= $fdw_hwm * 1.05 + 1024)}")" "VmHWM unchanged for $BIG_ROWS rows"
exit 0
