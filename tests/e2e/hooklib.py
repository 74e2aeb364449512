"""Helpers for the /hooks end-to-end tests (test_hooks*.py, test_send.py,
test_seed004.py).

- `auto_trader_message()` / `auto_trader_payload()`: the request
  mgh3326/auto_trader sends, built exactly as its `_build_openclaw_message`
  does (seed-integrations.md 1.2-1.3);
- `CallbackReceiver`: auto_trader's callback endpoint contract
  (seed-integrations.md 1.5): 500 without a configured token, the token
  from `Authorization: Bearer` (split on white space into exactly two
  parts) else `X-OpenClaw-Token`, compared with hmac.compare_digest, 401
  with `WWW-Authenticate: Bearer`, and a strict body schema (confidence an
  integer 0..100) answered 422 otherwise;
- `hooks_config()`: llm_config plus a hooks section.

Everything is 127.0.0.1 and every wait is bounded.
"""

import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agentlib import llm_config
from e2elib import HOST, deep_merge, http

HOOK_TOKEN = "hook-secret-token"
CALLBACK_TOKEN = "callback-secret"


def hooks_config(providers, hooks=None, **kw):
    cfg = llm_config(providers, **kw)
    cfg["hooks"] = deep_merge({"enabled": True, "token": HOOK_TOKEN}, hooks or {})
    return cfg


def hook(gw, path="/hooks/agent", body=None, token=HOOK_TOKEN, headers=None, timeout=10, **kw):
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    if body is not None:
        kw["json"] = body
    return http(gw, "POST", path, headers=h, timeout=timeout, **kw)


# ---------------------------------------------------------------- auto_trader


def analysis_schema(rid, symbol, name, itype):
    rng = {"min": 0, "max": 0}
    return {
        "request_id": rid, "symbol": symbol, "name": name, "instrument_type": itype,
        "decision": "buy|hold|sell", "confidence": 0, "reasons": ["..."],
        "price_analysis": {"appropriate_buy_range": dict(rng), "appropriate_sell_range": dict(rng),
                           "buy_hope_range": dict(rng), "sell_target_range": dict(rng)},
        "detailed_text": "...", "model_name": "...",
    }


def auto_trader_message(rid, prompt, symbol, name, itype, callback_url, callback_token):
    """_build_openclaw_message, layout of seed-integrations.md 1.3."""
    cb_headers = "Content-Type: application/json\n"
    if callback_token:
        cb_headers += f"Authorization: Bearer {callback_token.strip()}\n"
    schema = json.dumps(analysis_schema(rid, symbol, name, itype), ensure_ascii=True)
    return ("Analyze the following trading instrument and return a JSON result via HTTP callback.\n\n"
            f"request_id: {rid}\nsymbol: {symbol}\nname: {name}\ninstrument_type: {itype}\n\n"
            f"USER_PROMPT:\n{prompt}\n\n"
            f"CALLBACK:\nPOST {callback_url}\n{cb_headers}\n"
            f"RESPONSE_JSON_SCHEMA (example):\n{schema}\n")


DEFAULT_PROMPT = ('삼성전자 일봉을 분석해 줘.\n"RSI" 가 70 이상이면 "과매수" 로 표시하고,\n'
                  'JSON 안의 {"key": "value"} 와 따옴표 \' " 는 그대로 둬.\n\ttab and trailing space ')


def auto_trader_payload(callback_url, callback_token=CALLBACK_TOKEN, prompt=DEFAULT_PROMPT, rid=None):
    """(request_id, payload) exactly as OpenClawClient.request_analysis sends them."""
    rid = rid or str(uuid.uuid4())
    msg = auto_trader_message(rid, prompt, "005930", "삼성전자", "equity_kr", callback_url, callback_token)
    return rid, {"message": msg, "name": "auto-trader:analysis", "sessionKey": f"auto-trader:openclaw:{rid}",
                 "wakeMode": "now"}


def analysis_result(rid, confidence=62):
    rng = {"min": 70000, "max": 72000}
    return {"request_id": rid, "symbol": "005930", "name": "삼성전자", "instrument_type": "equity_kr",
            "decision": "buy", "confidence": confidence, "reasons": ["거래량 증가", "RSI 45"],
            "price_analysis": {"appropriate_buy_range": rng, "appropriate_sell_range": {"min": 80000, "max": 82000},
                               "buy_hope_range": {"min": 68000, "max": 69000},
                               "sell_target_range": {"min": 85000, "max": 86000}},
            "detailed_text": "분석 결과", "model_name": "fake-model"}


# ---------------------------------------------------------------- callback receiver


def _is_str(v):
    return isinstance(v, str)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate_analysis(b):
    """pydantic's verdict on OpenClawCallbackRequest: [] or the problems."""
    if not isinstance(b, dict):
        return ["body is not an object"]
    errs = []
    for k in ("request_id", "symbol", "name", "instrument_type"):
        if not _is_str(b.get(k)):
            errs.append(f"{k}: str required")
    if b.get("decision") not in ("buy", "hold", "sell"):
        errs.append("decision: buy|hold|sell")
    c = b.get("confidence")
    # int, ge=0, le=100 (lax mode takes 62.0 but never 0.62, nor a bool)
    if isinstance(c, bool) or not (isinstance(c, int) or (isinstance(c, float) and c.is_integer())):
        errs.append("confidence: int required")
    elif not 0 <= c <= 100:
        errs.append("confidence: 0..100")
    r = b.get("reasons")
    if r is not None and not (isinstance(r, list) and all(_is_str(x) for x in r)):
        errs.append("reasons: list[str] | None")
    pa = b.get("price_analysis")
    if not isinstance(pa, dict):
        errs.append("price_analysis required")
    else:
        for k in ("appropriate_buy_range", "appropriate_sell_range", "buy_hope_range", "sell_target_range"):
            v = pa.get(k)
            if not (isinstance(v, dict) and _is_num(v.get("min")) and _is_num(v.get("max"))):
                errs.append(f"price_analysis.{k}: {{min: float, max: float}}")
    for k in ("detailed_text", "model_name", "prompt"):
        if b.get(k) is not None and not _is_str(b.get(k)):
            errs.append(f"{k}: str | None")
    return errs


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _reply(self, status, obj, extra=None):
        out = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
        return status

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        rec = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": raw,
               "json": None, "status": None}
        status = self.server.owner.handle(self, raw, rec)
        with self.server.owner.cv:
            rec["status"] = status      # this request's record: deliveries may arrive concurrently
            self.server.owner.cv.notify_all()


class CallbackReceiver:
    """POST <path>: auto_trader's /api/v1/openclaw/callback (token check,
    strict schema) or, with kind="django", seed 004's signed webhook
    receiver (X-OpenClaw-Signature: bare hex HMAC-SHA256 of the raw body).
    received: [{path, headers (lower-case), body (bytes), json, status}]."""

    def __init__(self, token=CALLBACK_TOKEN, path="/api/v1/openclaw/callback", kind="auto_trader", secret=None):
        self.token, self.path, self.kind, self.secret = token, path, kind, secret
        self.received = []
        self.stored = []
        self.cv = threading.Condition()
        self.fail_first = 0          # answer 500 to the first N requests
        self._srv = ThreadingHTTPServer((HOST, 0), _Handler)
        self._srv.daemon_threads = True
        self._srv.owner = self
        self._t = threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self):
        return f"http://{HOST}:{self._srv.server_address[1]}{self.path}"

    @property
    def hostport(self):
        return f"{HOST}:{self._srv.server_address[1]}"

    def handle(self, h, raw, rec):
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        rec["json"] = body
        with self.cv:
            self.received.append(rec)
            if self.fail_first > 0:
                self.fail_first -= 1
                return h._reply(500, {"error": "try again"})
        if h.path.split("?")[0] != self.path:
            return h._reply(404, {"detail": "Not Found"})
        if self.kind == "django":
            sig = h.headers.get("X-OpenClaw-Signature") or ""
            want = hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
            if not sig or not hmac.compare_digest(sig, want):
                return h._reply(401, {"error": "Invalid signature"})
            with self.cv:
                self.stored.append(body)
            return h._reply(200, {"status": "ok"})
        # auto_trader: _require_openclaw_callback_token
        expected = (self.token or "").strip()
        if not expected:
            return h._reply(500, {"detail": "OPENCLAW_CALLBACK_TOKEN is not configured"})
        provided = None
        auth = h.headers.get("authorization")
        if auth:
            parts = auth.split()
            if len(parts) == 2 and parts[0].lower() == "bearer":
                provided = parts[1].strip()
        if provided is None:
            x = h.headers.get("x-openclaw-token")
            provided = x.strip() if x else None
        if not provided or not hmac.compare_digest(provided.encode(), expected.encode()):
            return h._reply(401, {"detail": "Invalid OpenClaw callback token"}, {"WWW-Authenticate": "Bearer"})
        errs = validate_analysis(body)
        if errs:
            return h._reply(422, {"detail": errs})
        with self.cv:
            self.stored.append(body)
            n = len(self.stored)
        return h._reply(200, {"status": "ok", "request_id": body["request_id"], "analysis_result_id": n})

    def wait(self, n, timeout=10.0, stored=False):
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                seq = self.stored if stored else [r for r in self.received if r["status"] is not None]
                if len(seq) >= n:
                    return list(seq)
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"receiver: {len(seq)} of {n} {'stored' if stored else 'requests'}")
                self.cv.wait(left)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._srv.shutdown()
        self._srv.server_close()


def metric(text, name, **labels):
    """The value of one Prometheus sample (0 if absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    key = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return 0.0
