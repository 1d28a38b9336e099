#!/usr/bin/env python3
"""test/mes_api.py - a stand-in MES REST API for tests and demos (python3 stdlib).

Serves production orders and bookings on 127.0.0.1 with every pagination
style, several auth modes and fault modes, and logs every request.

  python3 test/mes_api.py --port 0 --port-file /tmp/port --orders 500 \
      --auth api_key_header --log /tmp/requests.log

Resources (GET), <res> is "orders" or "bookings":
  /<res>            {"data": [...], "total": N}; pages with page=&page_size=
                    or offset=&limit= (no paging parameters: every row)
  /plain/<res>      the same rows as a bare JSON array
  /cursor/<res>     {"items": [...], "meta": {"next_cursor": "..."|null}};
                    cursor=&limit=
  /next/<res>       {"results": [...], "next": "<absolute URL>"|null}; limit=
  /link/<res>       bare array, RFC 8288 Link: <url>; rel="next"; page=&per_page=
Filters (any style): status=a[,b] (IN), order_code=, updated_since= (>=),
  updated_after= (>), updated_before= (<), updated_until= (<=),
  quantity_min= (>=).
Auth (--auth): none | api_key_header (X-API-Key: k-secret) | api_key_param
  (?api_key=k-secret) | bearer (b-secret) | basic (mes / p-secret) | oauth2
  (POST /oauth/token: client_credentials with cid / c-secret, Basic or form,
  or password grant with username mes / p-secret, as Infor ION's .ionapi
  does; tokens live --token-ttl seconds).  401 when missing or wrong.
Faults, as query parameters (so a foreign table selects one through its
  "params" option): fault=429|503 (fault_times=N requests answered so, with
  Retry-After: retry_after seconds, default 1), fault=500, fault=slow
  (delay_ms before the answer), fault=truncated (the answer stops halfway),
  fault=malformed (a broken third row), fault=wrong_types (quantity "ten" in
  the second row), fault=foreign_next (next link to another host),
  fault=cursor_loop (the same cursor forever), fault=huge (every row in one
  page, whatever the page size).
Admin (never authenticated, logged like every request):
  POST /_admin/revoke       every OAuth2 token becomes invalid
  GET /_admin/stats         requests and tokens issued
  POST /_admin/orders       upsert orders while the API runs: body one JSON
                            object or an array of them, each with
                            "order_code"; the fields given replace those of
                            the current row (a new code is a new order,
                            served after the generated ones); "updated_at"
                            defaults to the current time.  -> {"upserted": n}
  DELETE /_admin/orders/<code>  the order is no longer served (404 when it
                            is not served now).  -> {"deleted": code}
  POST /_admin/fault        {"path": "/orders", "status": 500, "after": 1,
                            "times": 1}: after "after" more GETs of that
                            path answered normally, the next "times" GETs
                            answer "status" (a JSON error body; no
                            Retry-After).  Lets a test fail a scan mid-way
                            (e.g. its second page) without changing the
                            client's URLs.  -> {"armed": path}
  Changes apply to the orders of every style (/orders, /plain/orders, ...),
  not to the bookings; they are kept in memory under a lock, so concurrent
  requests see a row either before or after a change, never half of it.
Request log (--log): one JSON line per request: time, method, path, params,
  auth ("ok", "missing", "bad" or "none"), status, and for a page of rows
  "rows": how many rows the answer held.
"""

import argparse
import base64
import datetime
import json
import os
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOCK = threading.Lock()
TOKENS = {}          # token -> expiry (epoch seconds)
STATS = {"requests": 0, "tokens": 0}
FAULT_COUNTS = {}    # (path, fault) -> times answered with the fault
CHANGES = {}         # order_code -> row set by /_admin/orders (None: deleted)
FAULT_PLANS = {}     # path -> {"after": n, "times": n, "status": code}
BASE = datetime.datetime(2024, 5, 1, 6, 0, 0, tzinfo=datetime.timezone.utc)
STATUSES = ["released", "started", "completed", "planned"]


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def order(i):
    start = BASE + datetime.timedelta(minutes=i)
    return {
        "order_code": "PO-%06d" % i,
        "product_code": "P-%03d" % (i % 100),
        "status": STATUSES[i % 4],
        "quantity": i % 50 + 1,
        "start": iso(start),
        "end": iso(start + datetime.timedelta(minutes=90)),
        "machine_code": "M-%02d" % (i % 12),
        "updated_at": iso(BASE + datetime.timedelta(seconds=i)),
        "urgent": i % 7 == 0,
        "ops": [{"step": 10, "machine": "M-%02d" % (i % 12)}],
    }


def booking(j):
    i = (j + 1) // 2
    ev = "START" if j % 2 == 1 else "END"
    return {
        "booking_id": j,
        "order_code": "PO-%06d" % i,
        "event": ev,
        "at": iso(BASE + datetime.timedelta(minutes=i + (90 if ev == "END" else 0))),
        "quantity": i % 50 + 1 if ev == "END" else None,
        "updated_at": iso(BASE + datetime.timedelta(seconds=j)),
    }


def generated(code):
    """The generated order of that code, or None."""
    if len(code) == 9 and code.startswith("PO-") and code[3:].isdigit():
        i = int(code[3:])
        if 1 <= i <= ARGS.orders:
            return order(i)
    return None


def current_order(code):
    """The order served now under that code, or None (caller holds LOCK)."""
    if code in CHANGES:
        return CHANGES[code]
    return generated(code)


def rows_of(resource):
    if resource != "orders":
        return [booking(j) for j in range(1, 2 * ARGS.orders + 1)]
    with LOCK:
        changes = dict(CHANGES)
    rows = []
    for i in range(1, ARGS.orders + 1):
        row = order(i)
        code = row["order_code"]
        if code in changes:
            row = changes.pop(code)
            if row is None:
                continue
        rows.append(row)
    rows.extend(r for r in changes.values() if r is not None)
    return rows


def matches(row, q):
    if "status" in q and row.get("status") not in q["status"].split(","):
        return False
    if "order_code" in q and row.get("order_code") not in q["order_code"].split(","):
        return False
    u = row.get("updated_at")
    for name, test in (("updated_since", lambda a, b: a >= b),
                       ("updated_after", lambda a, b: a > b),
                       ("updated_before", lambda a, b: a < b),
                       ("updated_until", lambda a, b: a <= b)):
        if name in q:
            bound = q[name].replace("+00:00", "Z")
            if not test(u, bound):
                return False
    if "quantity_min" in q and (row.get("quantity") or 0) < int(q["quantity_min"]):
        return False
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def record(self, status, auth, rows=None):
        if not ARGS.log:
            return
        u = urllib.parse.urlsplit(self.path)
        rec = {"time": time.time(), "method": self.command, "path": u.path,
               "params": dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True)),
               "auth": auth, "status": status}
        if rows is not None:
            rec["rows"] = rows
        line = json.dumps(rec)
        with LOCK:
            with open(ARGS.log, "a") as f:
                f.write(line + "\n")

    def send(self, status, body, headers=None, auth="none", rows=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        # logged before answering: a client that has the answer finds the line
        self.record(status, auth, rows)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def check_auth(self, q):
        mode = ARGS.auth
        h = self.headers
        if mode == "none":
            return "none"
        if mode == "api_key_header":
            v = h.get("X-API-Key")
        elif mode == "api_key_param":
            v = q.get("api_key")
            return "missing" if v is None else ("ok" if v == "k-secret" else "bad")
        else:
            v = h.get("Authorization")
        if v is None:
            return "missing"
        if mode == "api_key_header":
            return "ok" if v == "k-secret" else "bad"
        if mode == "bearer":
            return "ok" if v == "Bearer b-secret" else "bad"
        if mode == "basic":
            return "ok" if v == "Basic " + base64.b64encode(b"mes:p-secret").decode() else "bad"
        if mode == "oauth2":
            if not v.startswith("Bearer "):
                return "bad"
            with LOCK:
                exp = TOKENS.get(v[7:])
            return "ok" if exp is not None and exp > time.time() else "bad"
        return "bad"

    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        with LOCK:
            STATS["requests"] += 1
        if u.path == "/_admin/revoke":
            with LOCK:
                TOKENS.clear()
            return self.send(200, {"revoked": True})
        if u.path == "/_admin/orders":
            return self.admin_upsert(body)
        if u.path == "/_admin/fault":
            return self.admin_fault(body)
        if u.path != "/oauth/token":
            return self.send(404, {"error": "not found"})
        form = dict(urllib.parse.parse_qsl(body))
        cid, csec = form.get("client_id"), form.get("client_secret")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            cid, _, csec = base64.b64decode(auth[6:]).decode().partition(":")
        if cid != "cid" or csec != "c-secret":
            return self.send(401, {"error": "invalid_client"}, auth="bad")
        grant = form.get("grant_type")
        if grant == "password":
            if form.get("username") != "mes" or form.get("password") != "p-secret":
                return self.send(400, {"error": "invalid_grant"}, auth="bad")
        elif grant != "client_credentials":
            return self.send(400, {"error": "unsupported_grant_type"}, auth="bad")
        with LOCK:
            STATS["tokens"] += 1
            tok = "tok-%d" % STATS["tokens"]
            TOKENS[tok] = time.time() + ARGS.token_ttl
        return self.send(200, {"access_token": tok, "token_type": "Bearer",
                               "expires_in": ARGS.token_ttl, "scope": form.get("scope", "")},
                         auth="ok")

    def admin_upsert(self, body):
        try:
            doc = json.loads(body)
        except ValueError as e:
            return self.send(400, {"error": "malformed JSON: %s" % e})
        rows = doc if isinstance(doc, list) else [doc]
        if not all(isinstance(r, dict) and isinstance(r.get("order_code"), str) for r in rows):
            return self.send(400, {"error": "each order needs a string \"order_code\""})
        now = iso(datetime.datetime.now(datetime.timezone.utc))
        with LOCK:
            for r in rows:
                row = dict(current_order(r["order_code"]) or {})
                row.update(r)
                if "updated_at" not in r:
                    row["updated_at"] = now
                CHANGES[r["order_code"]] = row
        return self.send(200, {"upserted": len(rows)})

    def admin_fault(self, body):
        try:
            doc = json.loads(body)
            plan = {"after": int(doc.get("after", 0)), "times": int(doc.get("times", 1)),
                    "status": int(doc.get("status", 500))}
            path = doc["path"]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            return self.send(400, {"error": "bad fault plan: %r" % e})
        with LOCK:
            FAULT_PLANS[path] = plan
        return self.send(200, {"armed": path})

    def planned_fault(self, path):
        """The status a fault plan (/_admin/fault) answers this GET with, or None."""
        with LOCK:
            plan = FAULT_PLANS.get(path)
            if plan is None:
                return None
            if plan["after"] > 0:
                plan["after"] -= 1
                return None
            if plan["times"] > 0:
                plan["times"] -= 1
                return plan["status"]
            del FAULT_PLANS[path]
            return None

    def do_DELETE(self):
        u = urllib.parse.urlsplit(self.path)
        with LOCK:
            STATS["requests"] += 1
        prefix = "/_admin/orders/"
        if not u.path.startswith(prefix):
            return self.send(404, {"error": "not found"})
        code = urllib.parse.unquote(u.path[len(prefix):])
        with LOCK:
            found = current_order(code) is not None
            if found:
                CHANGES[code] = None
        if not found:
            return self.send(404, {"error": "no such order", "order_code": code})
        return self.send(200, {"deleted": code})

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        with LOCK:
            STATS["requests"] += 1
        if u.path == "/_admin/stats":
            with LOCK:
                stats = dict(STATS)
            return self.send(200, stats)
        parts = [p for p in u.path.split("/") if p]
        style = "data"
        if len(parts) == 2 and parts[0] in ("plain", "cursor", "next", "link"):
            style = parts[0]
            parts = parts[1:]
        if len(parts) != 1 or parts[0] not in ("orders", "bookings"):
            return self.send(404, {"error": "no such resource", "path": u.path})
        auth = self.check_auth(q)
        if auth in ("missing", "bad"):
            return self.send(401, {"error": "unauthorized"}, auth=auth)

        planned = self.planned_fault(u.path)
        if planned is not None:
            return self.send(planned, {"error": "injected fault", "status": planned}, auth=auth)
        fault = q.get("fault")
        if fault in ("429", "503"):
            key = (u.path, fault)
            with LOCK:
                n = FAULT_COUNTS.get(key, 0)
                FAULT_COUNTS[key] = n + 1
            if n < int(q.get("fault_times", "1")):
                return self.send(int(fault), {"error": "slow down"},
                                 {"Retry-After": q.get("retry_after", "1")}, auth=auth)
        if fault == "500":
            return self.send(500, {"error": "internal error", "detail": "x" * 1000}, auth=auth)
        if fault == "slow":
            time.sleep(int(q.get("delay_ms", "30000")) / 1000.0)

        rows = [r for r in rows_of(parts[0]) if matches(r, q)]
        total = len(rows)
        host = "127.0.0.1:%d" % self.server.server_port
        headers = {}
        if fault == "huge":
            page, nxt = rows, None
        elif style == "cursor":
            cur = q.get("cursor") or "0"
            start = int(cur) if cur.isdigit() else 0
            lim = int(q.get("limit", "100"))
            page = rows[start:start + lim]
            nxt = str(start + lim) if start + lim < total else None
            if fault == "cursor_loop":
                nxt = "same"
        elif style == "next":
            start = int(q.get("after") or 0)
            lim = int(q.get("limit", "100"))
            page = rows[start:start + lim]
            nxt = None
            if start + lim < total:
                nq = dict(q)
                nq["after"] = str(start + lim)
                nhost = "localhost:%d" % self.server.server_port if fault == "foreign_next" else host
                nxt = "http://%s%s?%s" % (nhost, u.path, urllib.parse.urlencode(nq))
        elif style == "link":
            p = int(q.get("page", "1"))
            per = int(q.get("per_page", "100"))
            page = rows[(p - 1) * per:p * per]
            nxt = None
            if p * per < total:
                nq = dict(q)
                nq["page"] = str(p + 1)
                headers["Link"] = '<%s?%s>; rel="next", <%s?page=1>; rel="first"' % (
                    u.path, urllib.parse.urlencode(nq), u.path)
        else:
            if "page" in q:
                size = int(q.get("page_size", "100"))
                p = int(q["page"])
                page = rows[(p - 1) * size:p * size]
            elif "offset" in q:
                off = int(q["offset"])
                page = rows[off:off + int(q.get("limit", "100"))]
            else:
                page = rows
            nxt = None

        if fault == "wrong_types" and len(page) > 1:
            page = [dict(r) for r in page]
            page[1]["quantity"] = "ten"
        if style == "cursor":
            doc = {"items": page, "meta": {"next_cursor": nxt, "count": len(page)}}
        elif style == "next":
            doc = {"results": page, "next": nxt}
        elif style in ("plain", "link"):
            doc = page
        else:
            doc = {"data": page, "total": total}
        data = json.dumps(doc).encode()
        if fault == "malformed" and len(page) > 2:
            third = json.dumps(page[2]).encode()
            bad = third.replace(b'"quantity": ', b'"quantity": 1x', 1)
            data = data.replace(third, bad, 1)
        if fault == "truncated":
            self.record(200, auth, len(page))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.send(200, data, headers, auth=auth, rows=len(page))


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--orders", type=int, default=250, help="orders in the data set (bookings: 2 per order)")
    ap.add_argument("--auth", default="none",
                    choices=["none", "api_key_header", "api_key_param", "bearer", "basic", "oauth2"])
    ap.add_argument("--token-ttl", type=int, default=3600)
    ap.add_argument("--log", help="append one JSON line per request here")
    ARGS = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    srv.daemon_threads = True
    if ARGS.port_file:
        tmp = ARGS.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_port)
        os.rename(tmp, ARGS.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
