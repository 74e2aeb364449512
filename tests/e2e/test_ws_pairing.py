"""OpenClaw device pairing and device tokens (issue #5, spec 1.4 "Pairing",
1.5 hello-ok auth.deviceToken, 2.2 device.pair.* / device.token.*, 2.3
device.pair.requested/resolved).

Most tests run with `gateway.nodes.pairing.autoApproveLocal: false`, so the
loopback client takes the path a remote device takes: an unknown device is
refused NOT_PAIRED (close 1008, a reason openclaw-node's regex parses) and
waits for an operator's approval over WS or `chela devices`.  Device proofs
are signed with `cryptography`'s Ed25519, as test_ws_protocol.py does.
Pending requests are capped per source (API token, else address) so one
client cannot flood another's request out of the queue.
"""

import base64
import hashlib
import json
import re
import time

import pytest

from e2elib import http, wait_for
from fakes.llm import FakeLLM
from test_ws_protocol import TOKEN, WS, connect_params, ws_config

pytest.importorskip("websockets")
pytest.importorskip("cryptography")

# openclaw-node's parse of the close reason (spec 1.4).
CLOSE_RE = re.compile(r"^pairing required(?::\s*(.+?))?(?:\s*\(requestId:\s*([^)]+)\))?$")
NOT_APPROVED = "pairing required: device is not approved yet"


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Device:
    """One Ed25519 identity that can sign connect proofs (v3 payload)."""

    def __init__(self):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.id = hashlib.sha256(raw).hexdigest()
        self.pub = b64(raw)

    def proof(self, nonce, token, scopes, role="operator"):
        signed_at = int(time.time() * 1000)
        parts = ["v3", self.id, "cli", "cli", role, ",".join(scopes), str(signed_at), token or "", nonce, "linux", ""]
        sig = self.key.sign("|".join(parts).encode())
        return {"id": self.id, "publicKey": self.pub, "signature": b64(sig), "signedAt": signed_at, "nonce": nonce}


def dev_connect(gw, dev, scopes=("operator.read",), auth=None, role="operator", proto=4):
    """Connect as dev; returns (client, connect res).  Retries, as a client
    does, while the gateway answers that it is starting (its paired devices
    load right after start)."""
    auth = {"token": TOKEN} if auth is None else auth
    for _ in range(50):
        c = WS(gw.port)
        nonce = c.recv()["payload"]["nonce"]
        signed_token = auth.get("token") or auth.get("deviceToken") or ""
        p = connect_params(proto, proto, token=None, scopes=scopes, role=role,
                           device=dev.proof(nonce, signed_token, list(scopes), role), auth=auth)
        r = c.call("connect", p)
        if (r.get("error") or {}).get("details", {}).get("reason") != "startup-sidecars":
            return c, r
        assert r["error"]["code"] == "UNAVAILABLE" and c.closed() == (1013, "gateway starting")
        time.sleep(0.1)
    raise AssertionError("the gateway kept answering 'gateway starting'")


def operator(gw, scopes=("operator.admin",)):
    c = WS(gw.port)
    r = c.handshake(connect_params(scopes=scopes))
    assert r["ok"], r
    return c


def event(c, name, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in c.events:
            if isinstance(e, dict) and e.get("event") == name:
                c.events.remove(e)
                return e
        try:
            m = c.recv(max(0.05, deadline - time.monotonic()))
        except Exception:
            break
        c.events.append(m)
    raise AssertionError(f"no {name} event; saw {c.events}")


def refused(c, r, reason="not-paired"):
    """Check a NOT_PAIRED answer and the close; returns the request id."""
    assert r["ok"] is False, r
    err = r["error"]
    assert err["code"] == "NOT_PAIRED", r
    det = err["details"]
    assert det["code"] == "PAIRING_REQUIRED" and det["reason"] == reason, det
    code, close_reason = c.closed()
    assert code == 1008
    m = CLOSE_RE.match(close_reason)
    assert m and m.group(2) == det["requestId"], close_reason
    return det["requestId"]


@pytest.fixture
def fake():
    with FakeLLM("anthropic") as f:
        yield f


def pairing_config(fake, auto=False):
    return ws_config(fake, {"gateway": {"auth": {"token": TOKEN},
                                        "nodes": {"pairing": {"autoApproveLocal": auto}}}})


@pytest.fixture
def gwp(gateway_factory, fake):
    return gateway_factory(pairing_config(fake))


def test_unknown_device_requests_pairing_then_token(gwp):
    op = operator(gwp)
    dev = Device()
    c, r = dev_connect(gwp, dev)
    rid = refused(c, r)
    err = r["error"]
    assert err["message"] == NOT_APPROVED
    det = err["details"]
    assert det["deviceId"] == dev.id and det["requestedRole"] == "operator"
    assert det["requestedScopes"] == ["operator.read"] and det["remediationHint"]
    assert c.ws.close_reason == f"{NOT_APPROVED} (requestId: {rid})"
    ev = event(op, "device.pair.requested")["payload"]
    assert ev["requestId"] == rid and ev["deviceId"] == dev.id and ev["publicKey"] == dev.pub
    assert ev["role"] == "operator" and ev["roles"] == ["operator"] and ev["scopes"] == ["operator.read"]
    assert ev["isRepair"] is False and ev["silent"] is False and ev["clientId"] == "cli"
    assert ev["remoteIp"] and isinstance(ev["ts"], int)

    # Asking again reuses the pending request: same id, no second event.
    c, r = dev_connect(gwp, dev)
    assert refused(c, r) == rid
    lst = op.call("device.pair.list", {})["payload"]
    assert [p["requestId"] for p in lst["pending"]] == [rid] and lst["paired"] == []

    a = op.call("device.pair.approve", {"requestId": rid})
    assert a["ok"], a
    assert a["payload"]["requestId"] == rid and a["payload"]["device"]["deviceId"] == dev.id
    assert a["payload"]["device"]["scopes"] == ["operator.read"]
    res = event(op, "device.pair.resolved")["payload"]
    assert res["requestId"] == rid and res["deviceId"] == dev.id and res["decision"] == "approved"

    c, r = dev_connect(gwp, dev)
    assert r["ok"], r
    auth = r["payload"]["auth"]
    tok = auth["deviceToken"]
    assert len(tok) >= 40 and auth["issuedAtMs"] > 0 and auth["scopes"] == ["operator.read"]
    assert c.call("sessions.list", {})["ok"]
    c.close()

    # The device token alone authenticates the device (no shared secret),
    # as auth.deviceToken and as auth.token; the same token comes back.
    for auth in ({"deviceToken": tok}, {"token": tok}):
        c, r = dev_connect(gwp, dev, auth=auth)
        assert r["ok"], r
        assert r["payload"]["auth"]["deviceToken"] == tok
        c.close()
    # ...but not for more than the device was approved for.
    c, r = dev_connect(gwp, dev, scopes=("operator.read", "operator.write"), auth={"deviceToken": tok})
    assert refused(c, r, "scope-upgrade")
    # Nor for another device.
    c, r = dev_connect(gwp, Device(), auth={"deviceToken": tok})
    assert r["error"]["details"] == {"code": "AUTH_DEVICE_TOKEN_MISMATCH"}
    assert r["error"]["message"] == "unauthorized: device token mismatch (rotate/reissue device token)"
    assert c.closed()[0] == 1008
    lst = op.call("device.pair.list", {})["payload"]
    paired = [d for d in lst["paired"] if d["deviceId"] == dev.id][0]
    assert paired["approvedVia"] == "manual" and paired["roles"] == ["operator"]
    assert "token" not in json.dumps(paired["tokens"]).replace("tokens", "")
    assert paired["tokens"][0]["role"] == "operator" and paired["tokens"][0]["lastUsedAtMs"] > 0
    op.close()


def test_revoke_and_rotate(gwp):
    op = operator(gwp)
    dev = Device()
    c, r = dev_connect(gwp, dev)
    rid = refused(c, r)
    assert op.call("device.pair.approve", {"requestId": rid})["ok"]
    c, r = dev_connect(gwp, dev)
    tok = r["payload"]["auth"]["deviceToken"]

    rv = op.call("device.token.revoke", {"deviceId": dev.id, "role": "operator"})
    assert rv["ok"] and rv["payload"]["deviceId"] == dev.id and rv["payload"]["revokedAtMs"] > 0
    assert c.closed()[0] == 1008  # the device's live connection goes
    c, r = dev_connect(gwp, dev, auth={"deviceToken": tok})
    assert r["error"]["details"]["code"] == "AUTH_DEVICE_TOKEN_MISMATCH"
    assert op.call("device.token.revoke", {"deviceId": "nope", "role": "operator"})["error"]["message"] == \
        "device token revocation denied"

    ro = op.call("device.token.rotate", {"deviceId": dev.id, "role": "operator"})
    assert ro["ok"], ro
    p = ro["payload"]
    assert p["tokenDelivery"] == "in-band" and p["scopes"] == ["operator.read"] and p["token"] != tok
    c, r = dev_connect(gwp, dev, auth={"deviceToken": p["token"]})
    assert r["ok"] and r["payload"]["auth"]["deviceToken"] == p["token"]
    c.close()
    # Beyond the approved scopes: refused.
    bad = op.call("device.token.rotate", {"deviceId": dev.id, "role": "operator", "scopes": ["operator.admin"]})
    assert bad["error"]["message"] == "device token rotation denied"
    assert op.call("device.token.rotate", {"deviceId": dev.id, "role": "node"})["error"]["message"] == \
        "device token rotation denied"
    op.close()


def test_reject_remove_and_params(gwp):
    op = operator(gwp)
    dev = Device()
    c, r = dev_connect(gwp, dev)
    rid = refused(c, r)
    rj = op.call("device.pair.reject", {"requestId": rid})
    assert rj["ok"] and rj["payload"] == {"requestId": rid, "deviceId": dev.id}
    res = event(op, "device.pair.resolved")["payload"]
    assert res["decision"] == "rejected" and res["requestId"] == rid
    assert op.call("device.pair.list", {})["payload"]["pending"] == []
    assert op.call("device.pair.reject", {"requestId": rid})["error"]["message"] == "unknown requestId"
    assert op.call("device.pair.approve", {"requestId": rid})["error"]["message"] == "unknown requestId"

    # A new attempt is a new request.
    c, r = dev_connect(gwp, dev)
    rid2 = refused(c, r)
    assert rid2 != rid
    assert op.call("device.pair.approve", {"requestId": rid2})["ok"]
    c, r = dev_connect(gwp, dev)
    assert r["ok"]
    rm = op.call("device.pair.remove", {"deviceId": dev.id})
    assert rm["ok"] and rm["payload"] == {"deviceId": dev.id}
    assert c.closed()[0] == 1008
    assert op.call("device.pair.remove", {"deviceId": dev.id})["error"]["message"] == "unknown deviceId"
    c, r = dev_connect(gwp, dev)
    refused(c, r)

    # Closed params, generated from protocol.schema.json.
    e = op.call("device.pair.approve", {})["error"]
    assert e["code"] == "INVALID_REQUEST" and e["message"].startswith("invalid device.pair.approve params: ")
    assert "requestId" in e["message"]
    e = op.call("device.pair.list", {"x": 1})["error"]
    assert e["message"] == "invalid device.pair.list params: at root: unexpected property 'x'"
    e = op.call("device.token.rotate", {"deviceId": dev.id})["error"]
    assert "role" in e["message"]
    op.close()


def test_scope_gate_and_features(gwp):
    c = operator(gwp, scopes=("operator.read", "operator.write"))
    r = c.call("device.pair.list", {})
    assert r["error"]["code"] == "FORBIDDEN" and r["error"]["details"]["missingScope"] == "operator.pairing"
    c.close()
    c = WS(gwp.port)
    hello = c.handshake(connect_params(scopes=["operator.pairing"]))
    assert hello["ok"]
    feats = hello["payload"]["features"]
    for m in ("device.pair.list", "device.pair.approve", "device.pair.reject", "device.pair.remove",
              "device.token.rotate", "device.token.revoke"):
        assert m in feats["methods"]
    assert "device.pair.requested" in feats["events"] and "device.pair.resolved" in feats["events"]
    assert c.call("device.pair.list", {})["ok"]
    # operator.pairing alone sees requests, and cannot approve beyond itself.
    dev = Device()
    d, r = dev_connect(gwp, dev, scopes=("operator.admin",))
    rid = refused(d, r)
    assert event(c, "device.pair.requested")["payload"]["requestId"] == rid
    assert c.call("device.pair.approve", {"requestId": rid})["error"]["message"] == "device pairing approval denied"
    # v3 wording of the missing scope.
    v3 = WS(gwp.port)
    assert v3.handshake(connect_params(3, 3, scopes=["operator.read"]))["ok"]
    assert v3.call("device.pair.list", {})["error"] == {"code": "INVALID_REQUEST",
                                                      "message": "missing scope: operator.pairing"}
    v3.close()
    c.close()


def test_scope_upgrade(gwp):
    op = operator(gwp)
    dev = Device()
    c, r = dev_connect(gwp, dev, scopes=("operator.read",))
    assert op.call("device.pair.approve", {"requestId": refused(c, r)})["ok"]
    c, r = dev_connect(gwp, dev, scopes=("operator.read", "operator.write"))
    rid = refused(c, r, "scope-upgrade")
    det = r["error"]["details"]
    assert r["error"]["message"] == "pairing required: device is asking for more scopes than currently approved"
    assert det["approvedScopes"] == ["operator.read"] and det["approvedRoles"] == ["operator"]
    ev = event(op, "device.pair.requested")
    ev = event(op, "device.pair.requested")["payload"]  # the first one was the not-paired request
    assert ev["requestId"] == rid and ev["isRepair"] is True
    assert op.call("device.pair.approve", {"requestId": rid})["ok"]
    c, r = dev_connect(gwp, dev, scopes=("operator.read", "operator.write"))
    assert r["ok"], r
    assert r["payload"]["auth"]["scopes"] == ["operator.read", "operator.write"]
    c.close()
    # A role the device was not approved for.
    c, r = dev_connect(gwp, dev, scopes=(), role="node")
    refused(c, r, "role-upgrade")
    op.close()


def test_cli_and_rest(gwp):
    dev, other = Device(), Device()
    c, r = dev_connect(gwp, dev)
    rid = refused(c, r)
    c, r = dev_connect(gwp, other)
    rid_other = refused(c, r)

    p = gwp.cli("devices", "list", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert {x["requestId"] for x in doc["pending"]} == {rid, rid_other}
    p = gwp.cli("devices", "list")
    assert p.returncode == 0 and rid in p.stdout and "Paired devices" in p.stdout

    # approve by device id, reject by request id
    p = gwp.cli("devices", "approve", dev.id)
    assert p.returncode == 0, p.stderr
    assert f"Approved device {dev.id} (request {rid})" in p.stdout
    p = gwp.cli("devices", "reject", rid_other, "--json")
    assert p.returncode == 0 and json.loads(p.stdout) == {"requestId": rid_other, "deviceId": other.id}
    p = gwp.cli("devices", "approve", rid_other)
    assert p.returncode != 0 and "no pending pairing request" in p.stderr

    c, r = dev_connect(gwp, dev)
    assert r["ok"] and r["payload"]["auth"]["deviceToken"]
    p = gwp.cli("devices", "list", "--json")
    doc = json.loads(p.stdout)
    assert doc["pending"] == [] and doc["paired"][0]["deviceId"] == dev.id and doc["paired"][0]["connected"]

    p = gwp.cli("devices", "remove", dev.id)
    assert p.returncode == 0 and f"Removed device {dev.id}" in p.stdout
    assert c.closed()[0] == 1008
    p = gwp.cli("devices", "remove", dev.id)
    assert p.returncode != 0
    p = gwp.cli("devices", "bogus")
    assert p.returncode == 2

    # REST needs admin.
    tok = gwp.create_token("reader", "read")["token"]
    assert wait_for(lambda: http(gwp, "GET", "/api/v1/devices", token=tok).status_code == 403, 5)


def test_pairing_survives_restart(gateway_factory, fake):
    gw = gateway_factory(pairing_config(fake))
    op = operator(gw)
    dev = Device()
    c, r = dev_connect(gw, dev)
    rid = refused(c, r)
    assert op.call("device.pair.approve", {"requestId": rid})["ok"]
    c, r = dev_connect(gw, dev)
    tok = r["payload"]["auth"]["deviceToken"]
    c.close()
    pending_dev = Device()
    c, r = dev_connect(gw, pending_dev)
    pending_rid = refused(c, r)
    op.close()
    assert gw.stop() == 0

    gw2 = gateway_factory.new(pairing_config(fake), state=gw.state).start()
    c, r = dev_connect(gw2, dev, auth={"deviceToken": tok})
    assert r["ok"], r
    c.close()
    op = operator(gw2)
    lst = op.call("device.pair.list", {})["payload"]
    assert [p["requestId"] for p in lst["pending"]] == [pending_rid]
    assert [d["deviceId"] for d in lst["paired"]] == [dev.id]
    op.close()


def test_loopback_auto_approval_is_silent(gateway_factory, fake):
    gw = gateway_factory(ws_config(fake))  # default: autoApproveLocal true
    op = operator(gw)
    dev = Device()
    c, r = dev_connect(gw, dev, scopes=("operator.read", "operator.write"))
    assert r["ok"], r
    tok = r["payload"]["auth"]["deviceToken"]
    c.close()
    ev = event(op, "device.pair.resolved")["payload"]
    assert ev["deviceId"] == dev.id and ev["decision"] == "approved"
    assert not [e for e in op.events if isinstance(e, dict) and e.get("event") == "device.pair.requested"]
    lst = op.call("device.pair.list", {})["payload"]
    assert lst["pending"] == [] and lst["paired"][0]["approvedVia"] == "silent"
    # Upgrades are silent on loopback too; v3 gets the token as well.
    c, r = dev_connect(gw, dev, scopes=("operator.admin",), auth={"deviceToken": tok}, proto=3)
    assert r["ok"] and r["payload"]["auth"]["deviceToken"] == tok
    c.close()
    op.close()


def api_token(gw, name, scope, **extra):
    r = http(gw, "POST", "/api/v1/tokens", token=TOKEN, data=json.dumps({"name": name, "scope": scope, **extra}),
             headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    return r.json()["token"]


def test_operator_approved_device_is_not_tied_to_an_api_token(gwp):
    """A device an operator approved keeps its device token when the API
    token it connected with is deleted (rotating a token must not unpair
    devices), and its methods pay only the global limit."""
    api = api_token(gwp, "laptop", ["read"], rateLimit=1)
    op = operator(gwp)
    dev = Device()
    c, r = dev_connect(gwp, dev, auth={"token": api})
    assert op.call("device.pair.approve", {"requestId": refused(c, r)})["ok"]
    c, r = dev_connect(gwp, dev, auth={"token": api})
    assert r["ok"], r
    tok = r["payload"]["auth"]["deviceToken"]
    c.close()
    entry = [d for d in op.call("device.pair.list", {})["payload"]["paired"] if d["deviceId"] == dev.id][0]
    assert entry["approvedVia"] == "manual" and "apiTokenId" not in entry["tokens"][0], entry
    assert http(gwp, "DELETE", "/api/v1/tokens/laptop", token=TOKEN).status_code == 200
    c, r = dev_connect(gwp, dev, auth={"deviceToken": tok})
    assert r["ok"], r
    assert all(c.call("sessions.list", {})["ok"] for _ in range(3))
    c.close()
    op.close()


def test_pending_requests_capped_per_source(gwp):
    """One API token minting fresh device identities from off loopback
    holds at most 8 pending requests (its own oldest make room), so it
    cannot push another client's request out of the 256-request queue."""
    victim = Device()
    c, r = dev_connect(gwp, victim)  # the shared token: its address is its source
    victim_rid = refused(c, r)
    c.close()
    api = api_token(gwp, "flooder", ["read"])
    rids = []
    for _ in range(256 + 4):
        c, r = dev_connect(gwp, Device(), auth={"token": api})
        rids.append(refused(c, r))
        c.close()
    op = operator(gwp)
    pending = {p["requestId"] for p in op.call("device.pair.list", {})["payload"]["pending"]}
    assert victim_rid in pending
    assert pending == {victim_rid, *rids[-8:]}, len(pending)
    assert op.call("device.pair.approve", {"requestId": victim_rid})["ok"]
    op.close()
