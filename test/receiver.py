#!/usr/bin/env python3
"""test/receiver.py - a small, real HTTP/1.1 webhook receiver for mfgsync.

Used by the TAP tests, the demo and the benchmarks.  Python 3 standard
library only.

Serve:
    python3 test/receiver.py --port 0 --port-file PORTFILE --log LOG [options]

  --port N                port on 127.0.0.1 to listen on (0 = any free port)
  --port-file F           once listening, write the actual port to F
                          (written to F.tmp.PID then renamed: never partial)
  --log F                 append one JSON line per request to F
  --print                 also print one readable line per request on stdout
  --secret whsec_XXX      verify Standard Webhooks signatures (repeatable:
                          a request verifies if any secret matches)
  --reject-bad-signature  answer 401 when the signature does not verify
  --status N              answer N to every request (default 204, or 200
                          when --reply-body is given)
  --fail-rate P           answer --fail-status with probability P ...
  --fail-status N         ... (default 500) ...
  --seed S                ... using random.Random(S)
  --first-n-status N      answer N to the first --first-n requests
  --first-n K             (default 1), then behave normally
  --retry-after S         add "Retry-After: S" to 429 and 503 answers
  --delay-ms D            sleep D milliseconds before answering
  --hang                  read each request and never answer (the socket
                          stays open until the receiver exits)
  --reply-body TEXT       body to answer with (status then defaults to 200)
  --reply-content-type T  its Content-Type (default text/plain)
  --location URL          add "Location: URL" to 3xx answers (with --status)
  --tls-cert F --tls-key F  serve https with this certificate and key
  --b2mml MODE            answer as a B2MML receiver, status 200 with:
                          accept: a ConfirmBOD Accepted; reject: a ConfirmBOD
                          Rejected (BOD/Description and Note below); garbage:
                          a body that is no ConfirmBOD; empty: no body; path:
                          the request path's last segment picks one of these.
                          The ConfirmBOD copies the request's ApplicationArea
                          into OriginalApplicationArea and is JSON (MESA
                          dialect) when the request was JSON.  The log
                          line has it under "reply".
  --b2mml-description T   the Rejected ConfirmBOD's BOD/Description
  --b2mml-note T          ... and BOD/Note

Summarise a log:
    python3 test/receiver.py --summary LOG
  prints {"requests": n, "bad_signatures": n, "statuses": {"204": n, ...}}
  (requests left unanswered by --hang count under "hang").

Log line (one JSON object per request, written in one write() before the
answer is sent, so it is in the log by the time the client sees the answer):
  {"t": 1700000000.123, "method": "POST", "path": "/hook",
   "headers": {"content-type": "application/json", ...},
   "body": "...", "status": 204, "sig_ok": true}
  body is decoded as UTF-8 (invalid bytes become U+FFFD); status is null for
  --hang; sig_ok is null when no --secret was given.

Precedence when answering: --hang, then 401 for a bad signature (with
--reject-bad-signature), then --first-n-status for the first K requests
that got this far, then --fail-rate, then --status / the default.

SIGTERM or SIGINT: stop at once and exit 0.
"""

import argparse
import base64
import collections
import hashlib
import hmac
import json
import os
import random
import signal
import ssl
import sys
import threading
import time
import xml.etree.ElementTree as ET
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def parse_args():
    p = argparse.ArgumentParser(description="HTTP/1.1 webhook receiver")
    p.add_argument("--summary", metavar="LOG")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--log")
    p.add_argument("--print", action="store_true", dest="print_")
    p.add_argument("--secret", action="append", default=[])
    p.add_argument("--reject-bad-signature", action="store_true")
    p.add_argument("--status", type=int)
    p.add_argument("--fail-rate", type=float, default=0.0)
    p.add_argument("--fail-status", type=int, default=500)
    p.add_argument("--seed", type=int)
    p.add_argument("--first-n-status", type=int)
    p.add_argument("--first-n", type=int, default=1)
    p.add_argument("--retry-after")
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--hang", action="store_true")
    p.add_argument("--reply-body")
    p.add_argument("--reply-content-type", default="text/plain")
    p.add_argument("--location", default=None)
    p.add_argument("--tls-cert", default=None)
    p.add_argument("--tls-key", default=None)
    p.add_argument("--b2mml", choices=["accept", "reject", "garbage", "empty",
                                       "path"])
    p.add_argument("--b2mml-description", default="rejected by the test receiver")
    p.add_argument("--b2mml-note", default="see the receiver's log")
    return p.parse_args()


def summary(path):
    """Print counts of requests, bad signatures and statuses in a log."""
    n, bad, statuses = 0, 0, collections.Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            n += 1
            if rec.get("sig_ok") is False:
                bad += 1
            st = rec.get("status")
            statuses["hang" if st is None else str(st)] += 1
    print(json.dumps({"requests": n, "bad_signatures": bad,
                      "statuses": dict(sorted(statuses.items()))}))


def decode_secret(secret):
    """whsec_<base64> -> key bytes (the prefix is optional)."""
    if secret.startswith("whsec_"):
        secret = secret[len("whsec_"):]
    return base64.b64decode(secret)


def verify_signature(keys, headers, body):
    """Standard Webhooks: base64(HMAC-SHA256(key, id.timestamp.body))
    against each space-separated "v1,<base64>" in webhook-signature."""
    msg_id = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sigs = headers.get("webhook-signature")
    if msg_id is None or ts is None or sigs is None:
        return False
    signed = msg_id.encode() + b"." + ts.encode() + b"." + body
    for key in keys:
        expected = base64.b64encode(
            hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for entry in sigs.split():
            version, _, sig = entry.partition(",")
            if version == "v1" and hmac.compare_digest(sig, expected):
                return True
    return False


class State:
    """Shared, lock-protected state of the receiver."""

    def __init__(self, args):
        self.args = args
        self.keys = [decode_secret(s) for s in args.secret]
        self.rng = random.Random(args.seed)
        self.count = 0                     # requests that reached behaviour
        self.lock = threading.Lock()       # guards rng, count, log, stdout
        self.log_fd = None
        if args.log:
            self.log_fd = os.open(args.log,
                                  os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.forever = threading.Event()   # never set: --hang waits on it

    def choose_status(self):
        """Status for a request that passed signature checks."""
        a = self.args
        with self.lock:
            self.count += 1
            if a.first_n_status is not None and self.count <= a.first_n:
                return a.first_n_status
            if a.fail_rate > 0 and self.rng.random() < a.fail_rate:
                return a.fail_status
        if a.status is not None:
            return a.status
        return 200 if a.reply_body is not None else 204

    def record(self, rec, sig_ok):
        """Append the log line (one write) and maybe print a summary line."""
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with self.lock:
            if self.log_fd is not None:
                os.write(self.log_fd, line.encode("utf-8"))
            if self.args.print_:
                sig = {None: "-", True: "ok", False: "BAD"}[sig_ok]
                print("%s %s %s id=%s sig=%s %s" % (
                    rec["method"], rec["path"], rec["status"] or "hang",
                    rec["headers"].get("webhook-id", "-"), sig,
                    rec["body"][:200]), flush=True)


B2MML_NS = "http://www.mesa.org/xml/B2MML-V0600"


def original_area(body):
    """The request's ApplicationArea as (sender logical id, bodid, created,
    json?); empty strings when the request is neither XML nor JSON."""
    text = body.decode("utf-8", errors="replace").lstrip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
            area = list(doc.values())[0]["ApplicationArea"]
            sender = area.get("Sender", {})
            return (sender.get("LogicalID", ""), area.get("BODID", ""),
                    area.get("CreationDateTime", ""), True)
        except (ValueError, KeyError, AttributeError, IndexError, TypeError):
            return ("", "", "", True)
    try:
        root = ET.fromstring(body)
        ns = {"b": B2MML_NS}
        return (root.findtext("b:ApplicationArea/b:Sender/b:LogicalID", "", ns),
                root.findtext("b:ApplicationArea/b:BODID", "", ns),
                root.findtext("b:ApplicationArea/b:CreationDateTime", "", ns),
                False)
    except ET.ParseError:
        return ("", "", "", False)


def confirm_bod(body, accepted, description, note):
    """A ConfirmBOD answering the request body (XML, or JSON like it)."""
    lid, bodid, created, as_json = original_area(body)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    code = "Accepted" if accepted else "Rejected"
    if as_json:
        bod = {"OriginalApplicationArea": {"Sender": {"LogicalID": lid},
                                           "CreationDateTime": created,
                                           "BODID": bodid}}
        if not accepted:
            bod["Description"] = [description]
            bod["Note"] = [note]
        return json.dumps({"ConfirmBOD": {
            "ApplicationArea": {"Sender": {"LogicalID": "MES-TEST"},
                                "CreationDateTime": now},
            "DataArea": {
                "Confirm": {"OriginalApplicationArea": {
                    "Sender": {"LogicalID": lid}, "CreationDateTime": created,
                    "BODID": bodid},
                    "ResponseCriteria": [
                        {"ResponseExpression": {"@actionCode": code}}]},
                "BOD": [bod]}}}).encode("utf-8"), "application/json"
    e = ET.Element("ConfirmBOD", xmlns=B2MML_NS)
    app = ET.SubElement(e, "ApplicationArea")
    ET.SubElement(ET.SubElement(app, "Sender"), "LogicalID").text = "MES-TEST"
    ET.SubElement(app, "CreationDateTime").text = now
    data = ET.SubElement(e, "DataArea")
    confirm = ET.SubElement(data, "Confirm")
    orig = ET.SubElement(confirm, "OriginalApplicationArea")
    ET.SubElement(ET.SubElement(orig, "Sender"), "LogicalID").text = lid
    ET.SubElement(orig, "CreationDateTime").text = created
    ET.SubElement(orig, "BODID").text = bodid
    ET.SubElement(ET.SubElement(confirm, "ResponseCriteria"),
                  "ResponseExpression", actionCode=code)
    bod = ET.SubElement(data, "BOD")
    if not accepted:
        ET.SubElement(bod, "Description").text = description
        ET.SubElement(bod, "Note").text = note
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n' +
            ET.tostring(e, encoding="utf-8", short_empty_elements=True)
            .split(b"?>", 1)[-1].lstrip(), "application/xml")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"    # keep-alive unless "Connection: close"
    wbufsize = 65536                 # headers + body leave in one send()
    disable_nagle_algorithm = True
    server_version = "mfgsync-test-receiver/1"
    state = None                     # set in main()

    def log_message(self, format, *args):
        pass                         # no per-request noise on stderr

    def read_body(self):
        """Read exactly Content-Length bytes (or a chunked body)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass         # skip trailers up to the empty line
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()   # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if len(body) != length:
            raise ConnectionError("short body")
        return body

    def handle_any(self):
        st = self.state
        a = st.args
        t = time.time()
        try:
            body = self.read_body()
        except ValueError:
            self.send_error(400, "bad body framing")
            self.close_connection = True
            return
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers \
                else value
        sig_ok = verify_signature(st.keys, headers, body) if st.keys else None

        if a.hang:
            status = None
        elif sig_ok is False and a.reject_bad_signature:
            status = 401
        else:
            status = st.choose_status()

        rec = {"t": t, "path": self.path, "method": self.command,
               "headers": headers,
               "body": body.decode("utf-8", errors="replace"),
               "status": status, "sig_ok": sig_ok}
        if status is None:
            st.record(rec, sig_ok)
            st.forever.wait()         # never answer; daemon thread dies at exit
        if a.delay_ms > 0:
            time.sleep(a.delay_ms / 1000.0)
        if a.b2mml and status in (200, 204):
            status = rec["status"] = 200
            mode = a.b2mml
            if mode == "path":
                mode = self.path.rstrip("/").rsplit("/", 1)[-1]
            rec["b2mml"] = mode
            if mode in ("accept", "reject"):
                self.b2mml_reply = confirm_bod(body, mode == "accept",
                                               a.b2mml_description,
                                               a.b2mml_note)
            elif mode == "garbage":
                self.b2mml_reply = (b"<html>thanks!</html", "text/html")
            else:
                self.b2mml_reply = (b"", None)
            rec["reply"] = self.b2mml_reply[0].decode("utf-8")
        st.record(rec, sig_ok)
        self.answer(status)

    b2mml_reply = None

    def answer(self, status):
        a = self.state.args
        if self.b2mml_reply is not None:
            payload, ctype = self.b2mml_reply
            self.b2mml_reply = None
        elif a.reply_body is not None:
            payload, ctype = a.reply_body.encode("utf-8"), a.reply_content_type
        elif status >= 300:
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Status"
            payload, ctype = ("%d %s\n" % (status, phrase)).encode(), \
                "text/plain"
        else:
            payload, ctype = b"", None
        no_body = status in (204, 304) or status < 200
        self.send_response(status)
        if status in (429, 503) and a.retry_after is not None:
            self.send_header("Retry-After", a.retry_after)
        if 300 <= status < 400 and a.location is not None:
            self.send_header("Location", a.location)
        if not no_body:
            # RFC 9110 forbids Content-Length on 1xx/204; send it otherwise.
            if payload and ctype:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if not no_body and self.command != "HEAD":
            self.wfile.write(payload)

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = \
        do_OPTIONS = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True            # hung/idle connections don't block exit
    block_on_close = False
    request_queue_size = 1024        # listen() backlog for benchmarks

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def main():
    args = parse_args()
    if args.summary:
        summary(args.summary)
        return
    Handler.state = State(args)
    server = Server(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        # the handshake happens in accept(); a client that rejects the
        # certificate only costs that connection
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    if args.port_file:
        tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    print("receiver: listening on 127.0.0.1:%d" % port, file=sys.stderr,
          flush=True)

    # serve_forever() runs in the main thread; shutdown() must be called
    # from another one, so the signal handler starts a thread for it.
    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.05)
    server.server_close()
    sys.stdout.flush()
    os._exit(0)    # don't wait for daemon threads (hung or idle connections)


if __name__ == "__main__":
    main()
