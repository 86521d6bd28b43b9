#!/usr/bin/env python3
"""A stand-in for a team's own scoring service, on an API of its own (the kind cutover
fronts with `[stacks.*] kind = "http"`): POST /api/predict takes
{"request": {txn, cust, ts, amt, ccy, mcc, ctry, chan, os, age, cp, dist}, "trace": "id-<txn>"}
and answers {"result": {"p", "verdict"}, "model": {"version"}, "debug": {"row"}}.
It scores by forwarding to a cutover stack (`cutover serve`'s legacy or new port), so the
example needs nothing but Python's standard library. Loopback only; stops after --max-s.

    python3 examples/own-services/team_service.py --port 9001 --backend http://127.0.0.1:9101 --version team-v1
"""

import argparse
import http.client
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

NAMES = {"txn": "transaction_id", "cust": "customer_id", "ts": "event_time_ms", "amt": "amount",
         "ccy": "currency", "mcc": "merchant_category", "ctry": "country", "chan": "channel",
         "os": "device_os", "age": "account_age_days", "cp": "card_present", "dist": "distance_from_home_km"}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--backend", required=True, help="a cutover stack's base URL")
    p.add_argument("--version", default="team-v1")
    p.add_argument("--max-s", type=float, default=900.0)
    a = p.parse_args()
    backend = urlparse(a.backend)
    local = threading.local()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes: with Nagle's algorithm on, the second waits
        # for the client's delayed ACK, 40 ms a request.
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            if self.path != "/api/predict":
                return self.answer(404, {"error": "no such path"})
            try:
                n = int(self.headers.get("content-length", "0"))
                if n > 16384:
                    return self.answer(413, {"error": "too large"})
                v = json.loads(self.rfile.read(n))
                theirs = v["request"]
                if v.get("trace") != f"id-{theirs['txn']}":
                    return self.answer(400, {"error": "trace must be id-<txn>"})
                ours = {NAMES[k]: x for k, x in theirs.items() if k in NAMES and x is not None}
            except (ValueError, KeyError, TypeError) as e:
                return self.answer(400, {"error": f"bad request: {e}"})
            if not hasattr(local, "conn"):
                local.conn = http.client.HTTPConnection(backend.hostname, backend.port, timeout=5)
                local.conn.connect()
                local.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                local.conn.request("POST", "/v1/score", json.dumps(ours).encode(),
                                   {"content-type": "application/json", "x-cutover-features": "1"})
                r = local.conn.getresponse()
                got = json.loads(r.read())
            except Exception as e:
                del local.conn
                return self.answer(502, {"error": f"backend: {e}"})
            if r.status != 200:
                return self.answer(502, {"error": "backend", "detail": got})
            self.answer(200, {"result": {"p": got["score"], "verdict": (got.get("decision") or "").upper()},
                              "model": {"version": a.version}, "debug": {"row": got.get("features")}})

    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"team service on http://127.0.0.1:{a.port} -> {a.backend}", flush=True)
    time.sleep(a.max_s)
    server.shutdown()


if __name__ == "__main__":
    main()
