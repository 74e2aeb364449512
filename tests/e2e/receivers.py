"""Webhook and callback receivers for the outbox tests (test_outbox.py,
test_webhooks_out.py): small HTTP servers on 127.0.0.1 that record every
request and answer from a script, plus the three signature checks written
exactly as the receivers chela must satisfy compute them:

- seed 002 (`verify_webhook`): 'sha256=' + hmac.new(secret.encode(),
  payload.encode(), hashlib.sha256).hexdigest(), hmac.compare_digest,
  against the X-Signature-256 header;
- seed 004 (Django `verify_webhook_signature`): bare hex
  hmac.new(secret, request.body, hashlib.sha256).hexdigest() against
  X-OpenClaw-Signature, hmac.compare_digest, 401 {"error":"Invalid
  signature"} when it does not match;
- the timestamped V2: 'v1=' + HMAC(secret, "<X-OpenClaw-Timestamp>.<body>")
  against X-OpenClaw-Signature-V2, refused when the timestamp is more than
  five minutes away.

Every wait is bounded.
"""

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"


def verify_webhook(payload, signature, secret):
    """Seed 002, section 4.3, as written."""
    expected = 'sha256=' + hmac.new(
        secret.encode(),
        payload.encode(),
        hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, signature)


def verify_django(body, signature, secret):
    """Seed 004's verify_webhook_signature, as written (secret from settings,
    encoded; the raw request body)."""
    if not signature:
        return False
    secret = secret.encode('utf-8')
    expected_signature = hmac.new(
        secret,
        body,
        hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(signature, expected_signature)


def verify_v2(body, timestamp, signature, secret, max_skew_s=300):
    """The replay-safe scheme: v1=HMAC(secret, "<ts>.<body>"), fresh ts."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs(time.time() - int(timestamp)) > max_skew_s:
        return False
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest("v1=" + mac, signature)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else b""
        self.server.owner._handle(self, body)

    do_PUT = do_GET = do_DELETE = do_POST


class Receiver:
    """Records requests; answers from `script`, a list of entries consumed in
    order (then `default`).  An entry is a status int, or a dict {status,
    headers, body, delay}.  With `secret`, it checks all three signatures
    first and answers 401 like the Django receiver when one fails (recorded
    in req["sig_ok"]).  port=0 picks a free port; a fixed port lets a test
    start the receiver late (a receiver that is down)."""

    def __init__(self, script=(), default=200, secret=None, port=0):
        self.script = list(script)
        self.default = default
        self.secret = secret
        self.received = []
        self.cv = threading.Condition()
        self._want_port = port
        self._srv = None
        self._t = None

    # -- server

    def start(self):
        self._srv = ThreadingHTTPServer((HOST, self._want_port), _Handler)
        self._srv.daemon_threads = True
        self._srv.owner = self
        self._t = threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._t.start()
        return self

    def stop(self):
        if self._srv:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    @property
    def port(self):
        return self._srv.server_address[1] if self._srv else self._want_port

    def url(self, path="/hook"):
        return f"http://{HOST}:{self.port}{path}"

    # -- requests

    def _next_answer(self):
        with self.cv:
            entry = self.script.pop(0) if self.script else self.default
        if isinstance(entry, int):
            entry = {"status": entry}
        return entry

    def _handle(self, h, body):
        headers = {k.lower(): v for k, v in h.headers.items()}
        # Every header line in arrival order, repeats kept: the dict above
        # keeps one value per name, so a header sent twice needs these.
        lines = [f"{k}: {v}" for k, v in h.headers.items()]
        rec = {"method": h.command, "path": h.path, "headers": headers, "header_lines": lines, "body": body,
               "time": time.time()}
        answer = None
        if self.secret is not None:
            rec["sig_002"] = verify_webhook(body.decode("utf-8"), headers.get("x-signature-256", ""), self.secret)
            rec["sig_004"] = verify_django(body, headers.get("x-openclaw-signature"), self.secret)
            rec["sig_v2"] = verify_v2(body, headers.get("x-openclaw-timestamp"),
                                      headers.get("x-openclaw-signature-v2"), self.secret)
            rec["sig_ok"] = rec["sig_002"] and rec["sig_004"] and rec["sig_v2"]
            if not rec["sig_ok"]:
                answer = {"status": 401, "body": {"error": "Invalid signature"}}
        if answer is None:
            answer = self._next_answer()
        rec["status"] = answer["status"]
        with self.cv:
            self.received.append(rec)
            self.cv.notify_all()
        if answer.get("delay"):
            time.sleep(answer["delay"])
        out = answer.get("body", {"status": "ok"} if answer["status"] < 300 else {"error": "scripted"})
        out = out if isinstance(out, bytes) else (out.encode() if isinstance(out, str) else json.dumps(out).encode())
        try:
            h.send_response(answer["status"])
            for k, v in (answer.get("headers") or {}).items():
                h.send_header(k, v)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(out)))
            h.end_headers()
            h.wfile.write(out)
        except OSError:
            pass  # the gateway gave up on this attempt (a test of exactly that)

    def wait(self, n, timeout=15.0):
        """The first n requests, waiting (bounded) for them to arrive."""
        end = time.monotonic() + timeout
        with self.cv:
            while len(self.received) < n:
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"receiver got {len(self.received)} of {n} requests within {timeout}s: "
                                         f"{[r['headers'].get('x-openclaw-event') for r in self.received]}")
                self.cv.wait(left)
            return list(self.received)

    def events(self, name):
        with self.cv:
            return [r for r in self.received if r["headers"].get("x-openclaw-event") == name]

    def wait_event(self, name, n=1, timeout=15.0):
        end = time.monotonic() + timeout
        while True:
            got = self.events(name)
            if len(got) >= n:
                return got
            if time.monotonic() >= end:
                raise AssertionError(f"no {n}x {name} within {timeout}s; got "
                                     f"{[r['headers'].get('x-openclaw-event') for r in self.received]}")
            time.sleep(0.02)
