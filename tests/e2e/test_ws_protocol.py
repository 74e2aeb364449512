"""OpenClaw gateway WebSocket protocol (issue #5 items 2-4, spec sections
1 and 2): the handshake and every connect error path, scopes, the methods
and their shapes, events, idempotency and malformed frames.

Also home of the helpers test_ws_seed001.py and test_ws_limits.py import:
`ws_gateway()` (a gateway with a fake Anthropic behind it), `WS` (a small
synchronous client over `websockets`' asyncio API with bounded waits).
"""

import asyncio
import base64
import hashlib
import json
import re
import time
import uuid

import pytest

from e2elib import http
from fakes.llm import FakeLLM

websockets = pytest.importorskip("websockets")

TOKEN = "ws-test-token-0123456789abcdef"


def ws_config(fake, extra=None):
    cfg = {
        "gateway": {"auth": {"token": TOKEN}},
        "models": {"providers": {"anthropic": {"api": "anthropic-messages", "baseUrl": fake.base_url,
                                               "apiKey": "sk-test"}},
                   "retry": {"count": 0, "baseDelayMs": 1}},
        "agents": {"defaults": {"model": {"primary": "anthropic/claude-opus-4-5"}}},
    }
    for k, v in (extra or {}).items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    return cfg


def connect_params(min_p=4, max_p=4, token=TOKEN, scopes=("operator.admin",), client_id="cli", mode="cli",
                   **extra):
    p = {"minProtocol": min_p, "maxProtocol": max_p,
         "client": {"id": client_id, "version": "1.0.0", "platform": "linux", "mode": mode},
         "role": "operator", "scopes": list(scopes)}
    if token is not None:
        p["auth"] = {"token": token}
    p.update(extra)
    return p


class WS:
    """One WebSocket client run on a private event loop, with timeouts."""

    def __init__(self, port, timeout=10, **kw):
        self.loop = asyncio.new_event_loop()
        self.timeout = timeout
        asyncio.set_event_loop(self.loop)
        self.ws = self.run(websockets.connect(f"ws://127.0.0.1:{port}", max_size=None, **kw))
        self.events = []
        self.stash = {}

    def run(self, coro, timeout=None):
        asyncio.set_event_loop(self.loop)  # websockets 10 binds to the current loop
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout or self.timeout))

    def recv(self, timeout=None):
        m = self.run(self.ws.recv(), timeout)
        return json.loads(m) if isinstance(m, str) else m

    def send(self, obj):
        self.run(self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj)))

    def req(self, method, params=None, rid=None):
        rid = rid or str(uuid.uuid4())
        f = {"type": "req", "id": rid, "method": method}
        if params is not None:
            f["params"] = params
        self.send(f)
        return rid

    def res(self, rid, timeout=None, skip_accepted=False):
        """The next res for rid; events seen meanwhile go to self.events."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            stash = self.stash.get(rid)
            m = stash.pop(0) if stash else self.recv(max(0.05, deadline - time.monotonic()))
            if m.get("type") == "event":
                self.events.append(m)
                continue
            if m.get("id") != rid:
                self.stash.setdefault(m.get("id"), []).append(m)  # another request's answer
                continue
            if skip_accepted and m.get("ok") and (m.get("payload") or {}).get("status") == "accepted":
                continue
            return m

    def call(self, method, params=None, **kw):
        return self.res(self.req(method, params), **kw)

    def handshake(self, params=None):
        ch = self.recv()
        assert ch["event"] == "connect.challenge", ch
        self.challenge = ch
        return self.call("connect", params or connect_params())

    def closed(self, timeout=5):
        """(code, reason) once the server closes; frames before it are kept."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                m = self.run(self.ws.recv(), max(0.05, deadline - time.monotonic()))
                self.events.append(m)
        except websockets.ConnectionClosed:
            pass
        except asyncio.TimeoutError:
            return None
        return self.ws.close_code, self.ws.close_reason

    def close(self):
        try:
            self.run(self.ws.close(), 5)
        except Exception:
            pass
        self.loop.close()


@pytest.fixture
def fake():
    with FakeLLM("anthropic") as f:
        yield f


@pytest.fixture
def gwws(gateway_factory, fake):
    return gateway_factory(ws_config(fake))


def connected(gw, params=None):
    c = WS(gw.port)
    r = c.handshake(params)
    assert r["ok"], r
    return c


# ---------------------------------------------------------------- handshake


def test_challenge_first_and_hello_ok_v4(gwws):
    c = WS(gwws.port)
    ch = c.recv()
    assert ch["type"] == "event" and ch["event"] == "connect.challenge"
    assert str(uuid.UUID(ch["payload"]["nonce"], version=4)) == ch["payload"]["nonce"]
    assert abs(ch["payload"]["ts"] - time.time() * 1000) < 60000
    r = c.call("connect", connect_params())
    assert r["ok"], r
    h = r["payload"]
    assert h["type"] == "hello-ok" and h["protocol"] == 4
    assert h["server"]["connId"] and h["server"]["version"]
    assert "health" in h["features"]["methods"] and "tick" in h["features"]["events"]
    assert set(h["snapshot"]) >= {"presence", "health", "stateVersion", "uptimeMs", "sessionDefaults"}
    assert h["auth"] == {"role": "operator", "scopes": ["operator.admin"]}
    assert h["policy"]["tickIntervalMs"] == 30000 and h["policy"]["maxPayload"] == 26214400
    assert h["policy"]["maxBufferedBytes"] > 0
    c.close()


def test_negotiation_picks_highest(gwws):
    for lo, hi, want in ((3, 4, 4), (3, 3, 3), (1, 3, 3), (4, 9, 4)):
        c = connected(gwws, connect_params(lo, hi))
        c.close()
        c = WS(gwws.port)
        assert c.handshake(connect_params(lo, hi))["payload"]["protocol"] == want
        c.close()


def test_protocol_mismatch_closes_1002(gwws):
    c = WS(gwws.port)
    r = c.handshake(connect_params(5, 6))
    assert not r["ok"] and r["error"]["message"] == "protocol mismatch"
    assert r["error"]["details"] == {"code": "PROTOCOL_MISMATCH", "clientMinProtocol": 5, "clientMaxProtocol": 6,
                                     "expectedProtocol": 4, "minimumProbeProtocol": 3}
    assert c.closed() == (1002, "protocol mismatch")


def test_first_request_must_be_connect(gwws):
    c = WS(gwws.port)
    c.recv()
    r = c.call("health", {})
    assert r["error"] == {"code": "INVALID_REQUEST", "message": "invalid handshake: first request must be connect"}
    assert c.closed() == (1008, "invalid handshake: first request must be connect")


@pytest.mark.parametrize("frame", ['{"type":"event","event":"x"}', "[1,2]", "not json",
                                   '{"type":"req","id":"","method":"connect"}',
                                   '{"type":"req","id":"1","method":"connect","extra":1}'])
def test_invalid_request_frame_before_connect(gwws, frame):
    c = WS(gwws.port)
    c.recv()
    c.send(frame)
    assert c.closed() == (1008, "invalid request frame")
    assert not [e for e in c.events if isinstance(e, str) and '"res"' in e]


@pytest.mark.parametrize("max_p,client_id,want", [
    (3, "CLI", "at /client/id: must be equal to constant; at /client/id: must match a schema in anyOf"),
    (4, "CLI", "at /client/id: must be equal to one of the allowed values"),
])
def test_connect_param_enum_wording(gwws, max_p, client_id, want):
    c = WS(gwws.port)
    r = c.handshake(connect_params(max_p, max_p, client_id=client_id))
    assert r["error"]["code"] == "INVALID_REQUEST"
    assert r["error"]["message"] == "invalid connect params: " + want
    code, reason = c.closed()
    assert code == 1008 and reason == ("invalid connect params: " + want)[:123]


def test_connect_params_closed_and_required(gwws):
    c = WS(gwws.port)
    p = connect_params()
    p["bogus"] = 1
    assert c.handshake(p)["error"]["message"] == "invalid connect params: at root: unexpected property 'bogus'"
    c = WS(gwws.port)
    p = connect_params(3, 3)
    del p["client"]["version"]
    assert c.handshake(p)["error"]["message"] == \
        "invalid connect params: at /client: must have required property 'version'"
    c = WS(gwws.port)
    p = connect_params()
    p["client"]["mode"] = "nope"
    assert c.handshake(p)["error"]["message"] == \
        "invalid connect params: at /client/mode: must be equal to one of the allowed values"


def test_invalid_role(gwws):
    c = WS(gwws.port)
    r = c.handshake(connect_params(role="king"))
    assert r["error"]["message"] == "invalid role"
    assert c.closed() == (1008, "invalid role")


@pytest.mark.parametrize("auth,code,msg", [
    (None, "AUTH_TOKEN_MISSING", "unauthorized: gateway token missing (use this gateway's gateway.auth.token or "
                                 "pair the device)"),
    ({"token": "wrong"}, "AUTH_TOKEN_MISMATCH", "unauthorized: gateway token mismatch (use this gateway's "
                                                "gateway.auth.token or pair the device)"),
])
def test_auth_failures(gwws, auth, code, msg):
    c = WS(gwws.port)
    p = connect_params(token=None)
    if auth:
        p["auth"] = auth
    r = c.handshake(p)
    assert r["error"]["code"] == "INVALID_REQUEST" and r["error"]["details"]["code"] == code
    assert r["error"]["message"] == msg
    assert c.closed()[0] == 1008


def test_password_field_and_rate_limit(gateway_factory, fake):
    gw = gateway_factory(ws_config(fake, {"gateway": {"auth": {"token": TOKEN, "rateLimit": {"maxAttempts": 2}}}}))
    c = WS(gw.port)
    assert c.handshake(connect_params(token=None, auth={"password": TOKEN}))["ok"]  # either field carries it
    c.close()
    for _ in range(2):
        c = WS(gw.port)
        assert c.handshake(connect_params(token="bad"))["error"]["details"]["code"] == "AUTH_TOKEN_MISMATCH"
    c = WS(gw.port)
    r = c.handshake(connect_params())  # even the right token: locked out (loopback too)
    assert r["error"]["details"]["code"] == "AUTH_RATE_LIMITED"
    assert r["error"]["message"] == "unauthorized: too many failed authentication attempts (retry later)"
    assert c.closed()[0] == 1008


def test_api_token_scopes_map_to_operator_scopes(gwws):
    r = http(gwws, "POST", "/api/v1/tokens", token=TOKEN, json={"name": "reader", "scopes": ["read"]})
    assert r.status_code in (200, 201), r.text
    secret = r.json()["token"]
    c = WS(gwws.port)
    h = c.handshake(connect_params(3, 3, token=secret, scopes=["operator.admin", "operator.read"]))
    assert h["ok"], h
    c.close()
    c = WS(gwws.port)
    h = c.handshake(connect_params(token=secret, scopes=["operator.admin", "operator.read"]))
    assert h["payload"]["auth"]["scopes"] == ["operator.read"]
    assert c.call("sessions.list", {})["ok"]
    r = c.call("sessions.patch", {"key": "x"})
    assert r["error"]["code"] == "FORBIDDEN" and r["error"]["message"] == "missing scope: operator.admin"
    assert r["error"]["details"] == {"code": "MISSING_SCOPE", "missingScope": "operator.admin",
                                     "requiredScopes": ["operator.admin"]}
    c.close()
    c = WS(gwws.port)
    c.handshake(connect_params(3, 3, token=secret, scopes=["operator.read"]))
    r = c.call("chat.send", {"sessionKey": "s", "message": "m", "idempotencyKey": "k"})
    assert r["error"] == {"code": "INVALID_REQUEST", "message": "missing scope: operator.write"}
    c.close()


# ---------------------------------------------------------------- device proof


def _device(nonce, token, scopes, signed_at=None, version=3, tamper=None):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    dev_id = hashlib.sha256(raw).hexdigest()
    signed_at = int(time.time() * 1000) if signed_at is None else signed_at
    parts = [f"v{version}", dev_id, "cli", "cli", "operator", ",".join(scopes), str(signed_at), token or "", nonce]
    if version == 3:
        parts += ["linux", ""]
    sig = key.sign("|".join(parts).encode())
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    d = {"id": dev_id, "publicKey": b64(raw), "signature": b64(sig), "signedAt": signed_at, "nonce": nonce}
    if tamper:
        tamper(d)
    return d


@pytest.mark.parametrize("case,code", [
    ("ok_v3", None), ("ok_v2", None),
    ("id", "DEVICE_AUTH_DEVICE_ID_MISMATCH"), ("stale", "DEVICE_AUTH_SIGNATURE_EXPIRED"),
    ("nonce", "DEVICE_AUTH_NONCE_MISMATCH"), ("sig", "DEVICE_AUTH_SIGNATURE_INVALID"),
])
def test_device_proof(gwws, case, code):
    pytest.importorskip("cryptography")
    c = WS(gwws.port)
    nonce = c.recv()["payload"]["nonce"]
    scopes = ["operator.read"]
    kw = {}
    if case == "ok_v2":
        kw["version"] = 2
    if case == "stale":
        kw["signed_at"] = int(time.time() * 1000) - 300000
    if case == "id":
        kw["tamper"] = lambda d: d.update(id="0" * 64)
    if case == "sig":
        kw["tamper"] = lambda d: d.update(signature=d["signature"][:-4] + ("AAAA" if not d["signature"].endswith("AAAA") else "BBBB"))
    dev = _device("other-nonce" if case == "nonce" else nonce, TOKEN, scopes, **kw)
    r = c.call("connect", connect_params(scopes=scopes, device=dev))
    if code is None:
        assert r["ok"], r
    else:
        assert r["error"]["details"]["code"] == code, r
        assert c.closed()[0] == 1008
    c.close()


# ---------------------------------------------------------------- methods


def test_unknown_method_and_closed_params(gwws):
    c = connected(gwws)
    assert c.call("no.such.method", {})["error"] == {"code": "INVALID_REQUEST", "message": "unknown method: no.such.method"}
    r = c.call("sessions.list", {"x": 1})
    assert r["error"]["message"] == "invalid sessions.list params: at root: unexpected property 'x'"
    r = c.call("sessions.list", {"limit": "10"})
    assert r["error"]["message"] == "invalid sessions.list params: at /limit: must be integer"
    r = c.call("sessions.delete", {"key": "agent:main:main"})
    assert r["error"] == {"code": "INVALID_REQUEST", "message": "Cannot delete the main session (agent:main:main)."}
    c.close()


def test_read_methods_shapes(gwws):
    c = connected(gwws)
    h = c.call("health", {})["payload"]
    assert h["ok"] is True and h["defaultAgentId"] == "main" and "sessions" in h
    s = c.call("status", {})["payload"]
    assert s["sessions"]["defaults"]["contextTokens"] > 0 and isinstance(s["queuedSystemEvents"], list)
    assert c.call("models.list", {})["payload"]["models"][0]["provider"] == "anthropic"
    a = c.call("agents.list", {})["payload"]
    assert a["defaultId"] == "main" and a["agents"][0]["id"] == "main"
    cfg = c.call("config.get", {})["payload"]
    assert cfg["config"]["gateway"]["auth"]["token"] == "__OPENCLAW_REDACTED__"
    assert TOKEN not in json.dumps(cfg)
    lt = c.call("logs.tail", {})["payload"]
    assert set(lt) >= {"file", "cursor", "size", "lines"}
    # the gateway's own startup line is in the tail, and secrets are masked
    assert any("listening on" in line for line in lt["lines"]), lt
    assert not any(TOKEN in line for line in lt["lines"])
    # polling with the cursor returns only newer lines
    again = c.call("logs.tail", {"cursor": lt["cursor"]})["payload"]
    assert again["cursor"] >= lt["cursor"] and not any("listening on" in line for line in again["lines"])
    assert c.call("cron.list", {})["payload"]["jobs"] == []
    assert c.call("cron.status", {})["payload"]["jobs"] == 0
    ch = c.call("channels.status", {})["payload"]
    assert ch["channels"] == {} and ch["channelOrder"] == []
    pres = c.call("system-presence", {})["payload"]
    assert isinstance(pres, list) and pres and pres[0]["mode"] == "cli"
    assert c.call("usage.status", {})["payload"]["providers"] == []
    assert "totals" in c.call("usage.cost", {})["payload"]
    r = c.call("send", {"to": "x", "message": "m", "idempotencyKey": "k", "channel": "telegram"})
    assert r["error"]["code"] == "UNAVAILABLE" and "telegram" in r["error"]["message"]
    assert c.call("wake", {"mode": "now", "text": "wake up"})["payload"]["ok"] is True
    assert c.call("system-event", {"text": "hello"})["payload"]["ok"] is True
    assert "wake up" in c.call("status", {})["payload"]["queuedSystemEvents"]
    c.close()


def test_sessions_lifecycle_and_tokens(gwws, fake):
    fake.push({"text": "answer one", "usage": {"input": 120, "output": 30}})
    c = connected(gwws)
    r = c.call("sessions.patch", {"key": "s1", "model": "anthropic/claude-sonnet-4-5", "label": "L"})
    assert r["ok"], r
    assert r["payload"]["resolved"] == {"modelProvider": "anthropic", "model": "claude-sonnet-4-5"}
    fin = c.call("agent", {"message": "q", "sessionKey": "s1", "idempotencyKey": "k-s1"}, skip_accepted=True)
    assert fin["payload"]["status"] == "ok"
    rows = c.call("sessions.list", {"limit": 10})["payload"]["sessions"]
    row = [x for x in rows if x["key"] == "agent:main:s1"][0]  # stored canonical
    assert row["inputTokens"] == 120 and row["outputTokens"] == 30 and row["model"] == "claude-sonnet-4-5"
    assert row["contextTokens"] > row["totalTokens"] > 0 and "estimatedCostUsd" in row
    assert c.call("sessions.patch", {"key": "s1", "model": None})["payload"]["entry"].get("modelOverride") is None
    pv = c.call("sessions.preview", {"keys": ["s1", "nope"]})["payload"]["previews"]
    assert pv[0]["status"] == "ok" and pv[1]["status"] == "missing"
    assert [p["key"] for p in pv] == ["s1", "nope"]  # echoed as sent
    hist = c.call("chat.history", {"sessionKey": "s1"})["payload"]
    assert [m["role"] for m in hist["messages"]] == ["user", "assistant"]
    assert hist["messages"][1]["content"][0]["text"] == "answer one"
    meta = [m["__openclaw"] for m in hist["messages"]]  # OpenClaw's message metadata: entry id and seq
    assert [x["seq"] for x in meta] == [m["seq"] for m in hist["messages"]] and meta[0]["seq"] < meta[1]["seq"]
    assert all(isinstance(x["id"], int) and x["id"] > 0 for x in meta) and meta[0]["id"] != meta[1]["id"]
    assert len(c.call("sessions.get", {"key": "s1"})["payload"]["messages"]) == 2
    assert c.call("chat.inject", {"sessionKey": "s1", "message": "note"})["payload"]["ok"] is True
    assert c.call("sessions.compact", {"key": "s1", "maxLines": 1})["payload"]["compacted"] is True
    u = c.call("sessions.usage", {"key": "s1"})["payload"]
    assert u["sessions"][0]["usage"]["input"] == 120
    old = c.call("sessions.reset", {"key": "s1"})["payload"]
    assert old["ok"] and old["entry"]["inputTokens"] == 0
    d = c.call("sessions.delete", {"key": "s1"})["payload"]
    assert d == {"ok": True, "key": "agent:main:s1", "deleted": True, "archived": []}
    c.close()


def test_agent_two_responses_idempotency_and_wait(gwws, fake):
    fake.push({"text": "Hello!", "chunks": 3, "first_byte_delay": 0.3})
    c = connected(gwws)
    rid = c.req("agent", {"message": "hi", "idempotencyKey": "idem-1"})
    acc = c.res(rid)
    assert acc["payload"]["status"] == "accepted" and acc["payload"]["runId"] == "idem-1"
    assert acc["payload"]["acceptedAt"] > 0
    dup = c.call("agent", {"message": "hi", "idempotencyKey": "idem-1"})
    assert dup["payload"] == {"runId": "idem-1", "status": "in_flight"}
    w = c.req("agent.wait", {"runId": "idem-1", "timeoutMs": 10000})
    fin = c.res(rid)
    p = fin["payload"]
    assert p["status"] == "ok" and p["summary"] == "completed" and p["runId"] == "idem-1"
    assert p["result"]["payloads"] == [{"text": "Hello!"}]
    meta = p["result"]["meta"]
    assert meta["aborted"] is False and meta["agentMeta"]["provider"] == "anthropic"
    assert meta["agentMeta"]["usage"]["total"] == meta["agentMeta"]["usage"]["input"] + meta["agentMeta"]["usage"]["output"]
    assert c.res(w)["payload"]["status"] == "ok"
    again = c.call("agent", {"message": "hi", "idempotencyKey": "idem-1"})
    assert again["payload"] == p  # the cached final
    lifecycle = [e["payload"]["data"]["phase"] for e in c.events if e["event"] == "agent"
                 and e["payload"]["stream"] == "lifecycle"]
    assert lifecycle == ["start", "end"]
    deltas = "".join(e["payload"]["data"]["delta"] for e in c.events if e["event"] == "agent"
                     and e["payload"]["stream"] == "assistant")
    assert deltas == "Hello!"
    seqs = [e["seq"] for e in c.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # v4: per connection, increasing
    c.close()


def test_agent_without_idempotency_key_gets_a_time_ordered_run_id(gwws, fake):
    # The gateway's own run id is a UUID version 7 (the runs index grows at its right edge).
    fake.push({"text": "ok"})
    c = connected(gwws)
    rid = c.req("agent", {"message": "hi"})
    acc = c.res(rid)
    run_id = acc["payload"]["runId"]
    assert acc["payload"]["status"] == "accepted"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", run_id), run_id
    fin = c.res(rid)
    assert fin["payload"]["status"] == "ok" and fin["payload"]["runId"] == run_id
    c.close()


def test_agent_failure_v3_shape(gwws, fake):
    fake.push({"error_kind": "server"})
    c = connected(gwws, connect_params(3, 3))
    fin = c.call("agent", {"message": "hi", "idempotencyKey": "fail-1"}, skip_accepted=True)
    assert fin["ok"] is False and fin["error"]["code"] == "UNAVAILABLE"
    assert fin["payload"]["runId"] == "fail-1" and fin["payload"]["status"] == "error"
    c.close()


def test_chat_send_events_v3_and_v4(gwws, fake):
    fake.push({"text": "abcdefghij", "chunks": 5, "chunk_delay": 0.05})
    v3 = connected(gwws, connect_params(3, 3))
    v4 = connected(gwws)
    r = v4.call("chat.send", {"sessionKey": "chat-1", "message": "hi", "idempotencyKey": "c1"})
    assert r["payload"] == {"runId": "c1", "status": "started"}

    def chats(c):
        out = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = c.recv()
            if m.get("event") == "chat":
                out.append(m)
                if m["payload"]["state"] != "delta":
                    return out
        return out
    e4, e3 = chats(v4), chats(v3)
    assert e4[-1]["payload"]["state"] == "final" and e3[-1]["payload"]["state"] == "final"
    d4 = [e["payload"] for e in e4 if e["payload"]["state"] == "delta"]
    assert d4 and "".join(d["deltaText"] for d in d4) == "abcdefghij"
    d3 = [e["payload"] for e in e3 if e["payload"]["state"] == "delta"]
    assert d3 and all("deltaText" not in d for d in d3)
    assert d3[-1]["message"]["content"][0]["text"] == "abcdefghij"  # cumulative
    assert e4[-1]["payload"]["message"]["content"][0]["text"] == "abcdefghij"
    hist = v4.call("chat.history", {"sessionKey": "chat-1"})["payload"]
    assert hist["sessionKey"] == "chat-1" and len(hist["messages"]) == 2  # echoed as sent
    assert {e["payload"]["sessionKey"] for e in e4} == {"agent:main:chat-1"}  # events: canonical
    ab = v4.call("chat.abort", {"sessionKey": "chat-1"})["payload"]
    assert ab == {"ok": True, "aborted": False, "runIds": []}
    v3.close()
    v4.close()


def test_chat_abort_live_run(gwws, fake):
    fake.push({"text": "slow", "first_byte_delay": 5})
    c = connected(gwws)
    assert c.call("chat.send", {"sessionKey": "ab", "message": "hi", "idempotencyKey": "ab1"})["ok"]
    time.sleep(0.3)
    r = c.call("chat.abort", {"sessionKey": "other", "runId": "ab1"})
    assert r["error"]["message"] == "runId does not match sessionKey"
    r = c.call("chat.abort", {"sessionKey": "ab", "runId": "ab1"})
    assert r["payload"] == {"ok": True, "aborted": True, "runIds": ["ab1"]}
    c.close()


# ---------------------------------------------------------------- malformed


def test_malformed_frames_after_connect(gwws):
    c = connected(gwws)
    c.send("{not json")
    r = c.res("invalid")
    assert r["error"]["code"] == "INVALID_REQUEST" and r["error"]["message"].startswith("invalid request frame")
    c.send(json.dumps({"type": "req", "id": 5, "method": "health"}))
    r = c.res("invalid")
    assert r["error"]["message"] == "invalid request frame: at /id: must be string"
    c.send(json.dumps({"type": "req", "id": "a", "method": "health", "params": [1]}))
    assert c.res("a")["error"]["message"] == "invalid health params: must be object"
    assert c.call("health", {})["ok"]  # still alive
    c.send(b"\x00\x01binary")
    code, _ = c.closed()
    assert code == 1003
    assert http(gwws, "GET", "/health").status_code == 200
