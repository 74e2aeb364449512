"""WebSocket security findings: the API token behind a WS connection bounds
what it can pair itself (silent loopback pairing, device tokens), ends the
connection when revoked, and shares its rate limit with REST.  The device
token a silent pairing mints keeps answering to that API token: revoked,
expired or narrowed with it, and charged to its rate limit.
"""

import json
import sqlite3

import pytest

from e2elib import http, wait_for
from test_ws_pairing import Device, dev_connect
from test_ws_protocol import TOKEN, WS, connect_params, ws_config

pytest.importorskip("websockets")
pytest.importorskip("cryptography")


@pytest.fixture
def gwsec(gateway_factory, fake):
    return gateway_factory(ws_config(fake))  # autoApproveLocal: true (default)


@pytest.fixture
def fake():
    from fakes.llm import FakeLLM
    with FakeLLM("anthropic") as f:
        yield f


def rest_token(gw, name, scope, **extra):
    body = {"name": name, "scope": scope, **extra}
    r = http(gw, "POST", "/api/v1/tokens", token=TOKEN, data=json.dumps(body),
             headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    return r.json()["token"]


ADMIN_ASK = ("operator.admin", "operator.pairing")


def test_read_token_cannot_pair_itself_admin(gwsec):
    """Finding 1: read token + device proof asking admin on loopback, then
    the device token it got back: no admin anywhere."""
    reader = rest_token(gwsec, "ws-reader", ["read"])
    dev = Device()
    c, r = dev_connect(gwsec, dev, scopes=ADMIN_ASK, auth={"token": reader})
    assert r["ok"], r
    auth = r["payload"]["auth"]
    tok = auth.get("deviceToken")
    assert "operator.admin" not in auth["scopes"] and "operator.pairing" not in auth["scopes"], auth
    assert c.call("chat.inject", {"sessionKey": "main", "message": "x"})["ok"] is False
    c.close()
    assert tok, auth  # silently paired (for what the read token allows)

    c, r = dev_connect(gwsec, dev, scopes=ADMIN_ASK, auth={"deviceToken": tok})
    if r["ok"]:
        assert "operator.admin" not in r["payload"]["auth"]["scopes"], r
        for method, params in (("chat.inject", {"sessionKey": "main", "message": "x"}),
                               ("device.pair.list", {}), ("sessions.reset", {"key": "main"})):
            res = c.call(method, params)
            assert res["ok"] is False and res["error"]["details"]["code"] == "MISSING_SCOPE", (method, res)
    c.close()

    # The pairing record holds no admin either.
    op = WS(gwsec.port)
    assert op.handshake(connect_params())["ok"]
    paired = [d for d in op.call("device.pair.list", {})["payload"]["paired"] if d["deviceId"] == dev.id][0]
    assert "operator.admin" not in paired["scopes"], paired
    assert all("operator.admin" not in t.get("scopes", []) for t in paired["tokens"]), paired
    op.close()


def test_admin_approved_device_keeps_token_scopes_capped_by_credential(gwsec):
    """A device paired as admin (shared token) that connects with a read
    token gets a device token no wider than read."""
    reader = rest_token(gwsec, "ws-reader2", ["read"])
    dev = Device()
    c, r = dev_connect(gwsec, dev, scopes=("operator.admin",))
    assert r["ok"] and "operator.admin" in r["payload"]["auth"]["scopes"], r
    c.close()
    c, r = dev_connect(gwsec, dev, scopes=("operator.read",), auth={"token": reader})
    assert r["ok"], r
    tok = r["payload"]["auth"]["deviceToken"]
    assert r["payload"]["auth"]["scopes"] == ["operator.read"], r
    c.close()
    c, r = dev_connect(gwsec, dev, scopes=("operator.admin",), auth={"deviceToken": tok})
    assert not r["ok"] or c.call("chat.inject", {"sessionKey": "main", "message": "x"})["ok"] is False, r
    c.close()


def test_deleted_token_closes_its_ws(gwsec):
    """Finding 2: DELETE /api/v1/tokens/<name> ends the token's sockets."""
    admin = rest_token(gwsec, "ws-admin", ["admin"])
    c = WS(gwsec.port)
    assert c.handshake(connect_params(token=admin))["ok"]
    other = WS(gwsec.port)  # the shared token's socket stays
    assert other.handshake(connect_params())["ok"]
    assert c.call("sessions.list", {})["ok"]
    r = http(gwsec, "DELETE", "/api/v1/tokens/ws-admin", token=TOKEN)
    assert r.status_code == 200, r.text
    code, reason = c.closed(timeout=5)
    assert code == 1008 and "revoked" in reason, (code, reason)
    assert other.call("sessions.list", {})["ok"]
    other.close()


def test_cli_revoked_token_closes_ws(gwsec):
    """The CLI revokes in another process: the 1 Hz table refresh ends it."""
    admin = rest_token(gwsec, "ws-cli-admin", ["admin"])
    c = WS(gwsec.port)
    assert c.handshake(connect_params(token=admin))["ok"]
    p = gwsec.cli("token", "revoke", "ws-cli-admin")
    assert p.returncode == 0, p.stderr
    code, reason = c.closed(timeout=5)
    assert code == 1008 and "revoked" in reason, (code, reason)


def test_expired_token_closes_ws(gwsec):
    """A token that expires ends its sockets within about a second."""
    tok = rest_token(gwsec, "ws-brief", ["read"], expires="2s")
    c = WS(gwsec.port)
    assert c.handshake(connect_params(token=tok, scopes=("operator.read",)))["ok"]
    code, reason = c.closed(timeout=6)
    assert code == 1008 and "expired" in reason, (code, reason)


def test_ws_methods_share_the_token_rate_limit(gwsec):
    """Finding 3: a token with rateLimit 2 gets 2 WS calls, then a
    retryable UNAVAILABLE; the socket stays open."""
    tok = rest_token(gwsec, "ws-slow", ["read"], rateLimit=2)
    c = WS(gwsec.port)
    assert c.handshake(connect_params(token=tok, scopes=("operator.read",)))["ok"]
    answers = [c.call("sessions.list", {}) for _ in range(6)]
    assert [a["ok"] for a in answers[:2]] == [True, True], answers[:2]
    limited = [a for a in answers[2:] if not a["ok"]]
    assert len(limited) >= 3, answers
    err = limited[0]["error"]
    assert err["code"] == "UNAVAILABLE" and err["retryable"] is True and err["retryAfterMs"] > 0, err
    assert err["details"] == {"code": "RATE_LIMITED", "limit": "token"}, err
    # Still open, and REST shares the same (spent) budget.
    assert c.closed(timeout=0.3) is None
    assert http(gwsec, "GET", "/api/v1/sessions", token=tok).status_code == 429
    c.close()


def test_rest_default_per_token_limit_leaves_ws_alone(gateway_factory, fake):
    """The REST default per token (api.rateLimit.perToken) is not charged
    to WebSocket methods: OpenClaw clients on the gateway token poll many
    methods a minute and OpenClaw limits none of them; a token's own
    rateLimit (above) and the global limit are."""
    cfg = ws_config(fake)
    cfg["api"] = {"rateLimit": {"perToken": {"windowMs": 60000, "maxRequests": 3}}}
    g = gateway_factory(cfg)
    c = WS(g.port)
    assert c.handshake(connect_params())["ok"]
    assert all(c.call("sessions.list", {})["ok"] for _ in range(10))
    c.close()
    cfg["api"]["rateLimit"]["global"] = {"windowMs": 60000, "maxRequests": 4}
    g2 = gateway_factory(cfg)
    c = WS(g2.port)
    assert c.handshake(connect_params())["ok"]
    answers = [c.call("sessions.list", {}) for _ in range(8)]
    limited = [a for a in answers if not a["ok"]]
    assert limited and limited[0]["error"]["details"]["limit"] == "global", answers
    c.close()


# ---- a silently paired device's token answers to the API token that paired it


def device_token(gw, dev, api_token, scopes=("operator.read",)):
    """Pair dev silently (loopback) with api_token; its device token."""
    c, r = dev_connect(gw, dev, scopes=scopes, auth={"token": api_token})
    assert r["ok"], r
    tok = r["payload"]["auth"]["deviceToken"]
    c.close()
    return tok


def paired_entry(gw, dev_id):
    op = WS(gw.port)
    assert op.handshake(connect_params())["ok"]
    entry = [d for d in op.call("device.pair.list", {})["payload"]["paired"] if d["deviceId"] == dev_id][0]
    op.close()
    return entry


def test_silent_device_token_dies_with_its_api_token(gwsec):
    """Deleting the API token that paired a device silently closes the
    device token's connections 1008 and refuses the device token after, as
    a revoked device token is refused; the listing shows the tie."""
    api = rest_token(gwsec, "pairer", ["read"])
    dev = Device()
    tok = device_token(gwsec, dev, api)
    entry = paired_entry(gwsec, dev.id)
    assert entry["approvedVia"] == "silent", entry
    assert entry["tokens"][0]["apiTokenId"] > 0 and entry["tokens"][0]["apiTokenName"] == "pairer", entry
    p = gwsec.cli("devices", "list")
    assert p.returncode == 0 and "silent, token pairer" in p.stdout, p.stdout

    c, r = dev_connect(gwsec, dev, auth={"deviceToken": tok})
    assert r["ok"], r
    assert c.call("sessions.list", {})["ok"]
    r = http(gwsec, "DELETE", "/api/v1/tokens/pairer", token=TOKEN)
    assert r.status_code == 200, r.text
    code, reason = c.closed(timeout=5)
    assert code == 1008 and "revoked" in reason, (code, reason)

    c, r = dev_connect(gwsec, dev, auth={"deviceToken": tok})
    assert r["ok"] is False, r
    assert r["error"]["details"] == {"code": "AUTH_DEVICE_TOKEN_MISMATCH"}, r
    assert r["error"]["message"] == "unauthorized: device token mismatch (rotate/reissue device token)"
    assert c.closed()[0] == 1008
    entry = paired_entry(gwsec, dev.id)
    assert entry["tokens"][0]["apiTokenId"] > 0 and "apiTokenName" not in entry["tokens"][0], entry
    assert "(revoked/expired)" in gwsec.cli("devices", "list").stdout


def test_silent_device_token_expires_with_its_api_token(gwsec):
    api = rest_token(gwsec, "pairer-brief", ["read"], expires="3s")
    dev = Device()
    tok = device_token(gwsec, dev, api)
    c, r = dev_connect(gwsec, dev, auth={"deviceToken": tok})
    assert r["ok"], r
    code, reason = c.closed(timeout=8)
    assert code == 1008 and "expired" in reason, (code, reason)
    c, r = dev_connect(gwsec, dev, auth={"deviceToken": tok})
    assert r["error"]["details"] == {"code": "AUTH_DEVICE_TOKEN_MISMATCH"}, r


def test_silent_device_token_narrows_with_its_api_token(gwsec):
    """The API token loses chat (operator.write) in the table: the device
    token's connection holding write closes within the 1 Hz refresh, and
    the device token then gives read only."""
    both = ("operator.read", "operator.write")
    api = rest_token(gwsec, "pairer-wide", ["read", "chat"])
    dev = Device()
    tok = device_token(gwsec, dev, api, scopes=both)
    c, r = dev_connect(gwsec, dev, scopes=both, auth={"deviceToken": tok})
    assert r["ok"] and r["payload"]["auth"]["scopes"] == list(both), r
    db = sqlite3.connect(str(gwsec.state / "chela.db"), timeout=5)
    with db:
        db.execute("UPDATE tokens SET scopes = 4 WHERE name = 'pairer-wide' AND revoked_ms = 0")  # read alone
    db.close()
    code, reason = c.closed(timeout=6)
    assert code == 1008 and "scopes changed" in reason, (code, reason)
    c, r = dev_connect(gwsec, dev, scopes=both, auth={"deviceToken": tok})
    assert r["ok"] and r["payload"]["auth"]["scopes"] == ["operator.read"], r
    assert c.call("chat.send", {"sessionKey": "main", "message": "x", "idempotencyKey": "k"})["ok"] is False
    c.close()


def test_silent_device_token_pays_its_api_token_rate_limit(gwsec):
    """The device token's WS methods are charged to the API token's own
    rateLimit (and REST shares the spent bucket), not only the global one."""
    api = rest_token(gwsec, "pairer-slow", ["read"], rateLimit=2)
    dev = Device()
    tok = device_token(gwsec, dev, api)
    c, r = dev_connect(gwsec, dev, auth={"deviceToken": tok})
    assert r["ok"], r
    answers = [c.call("sessions.list", {}) for _ in range(5)]
    assert [a["ok"] for a in answers[:2]] == [True, True], answers[:2]
    limited = [a for a in answers[2:] if not a["ok"]]
    assert len(limited) >= 2, answers
    assert limited[0]["error"]["details"] == {"code": "RATE_LIMITED", "limit": "token"}, limited[0]
    assert c.closed(timeout=0.3) is None
    assert http(gwsec, "GET", "/api/v1/sessions", token=api).status_code == 429
    c.close()
