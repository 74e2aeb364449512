"""Session keys as OpenClaw takes them (resolveSessionStoreKey), through real
WebSocket clients and the /sessions/<key> HTTP routes: every key a client
sends names a session by its canonical form (`main`, `Main` and
`agent:main:main` are one session; `s1`, `S1` and `agent:main:s1`
another), which is what the gateway stores, looks up and emits; only
chat.history and sessions.preview echo the key as sent; a malformed
`agent:` key is refused with OpenClaw's text."""

import time

from e2elib import http
from test_ws_protocol import TOKEN, connected, fake, gwws  # noqa: F401 (fixtures)

MAIN = "agent:main:main"


def run_events(c, run_id, timeout=10):
    """Every event of run_id, as (event, payload), up to its last chat event."""
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = c.recv(max(0.05, deadline - time.monotonic()))
        if m.get("type") == "event" and (m.get("payload") or {}).get("runId") == run_id:
            out.append((m["event"], m["payload"]))
            if m["event"] == "chat" and m["payload"]["state"] != "delta":
                break
    return out


def chat_events(c, run_id):
    return [p for e, p in run_events(c, run_id) if e == "chat"]


def err(r):
    assert r["ok"] is False, r
    return r["error"]


def test_chat_send_on_main_is_the_main_session(gwws, fake):
    fake.push({"text": "main answer", "chunks": 2})
    c = connected(gwws)
    r = c.call("chat.send", {"sessionKey": "main", "message": "hello", "idempotencyKey": "m1"})
    assert r["payload"] == {"runId": "m1", "status": "started"}, r
    ev = run_events(c, "m1")
    assert ev[-1][1]["state"] == "final" and {e for e, _ in ev} == {"chat", "agent"}
    assert {p["sessionKey"] for _, p in ev} == {MAIN}, ev
    for sent in (MAIN, "Main", "main", " MAIN "):
        h = c.call("chat.history", {"sessionKey": sent})["payload"]
        assert h["sessionKey"] == sent, h  # echoed as the client sent it
        assert [m["role"] for m in h["messages"]] == ["user", "assistant"], (sent, h)
        assert h["messages"][1]["content"][0]["text"] == "main answer"
    assert len(c.call("sessions.get", {"key": "Agent:Main:Main"})["payload"]["messages"]) == 2
    rows = c.call("sessions.list", {})["payload"]["sessions"]
    assert [x["key"] for x in rows] == [MAIN], rows
    pv = c.call("sessions.preview", {"keys": ["Main", "main", "nope"]})["payload"]["previews"]
    assert [(p["key"], p["status"]) for p in pv] == [("Main", "ok"), ("main", "ok"), ("nope", "missing")]
    c.close()


def test_agent_on_a_bare_key_acks_canonical_and_aborts_by_any_spelling(gwws, fake):
    fake.push({"text": "slow", "first_byte_delay": 5})
    c = connected(gwws)
    rid = c.req("agent", {"message": "hi", "sessionKey": "s1", "idempotencyKey": "a1"})
    acc = c.res(rid)
    assert acc["payload"]["status"] == "accepted" and acc["payload"]["sessionKey"] == "agent:main:s1", acc
    time.sleep(0.3)
    assert err(c.call("chat.abort", {"sessionKey": "s2", "runId": "a1"}))["message"] == \
        "runId does not match sessionKey"
    r = c.call("chat.abort", {"sessionKey": "AGENT:MAIN:S1", "runId": "a1"})
    assert r["payload"] == {"ok": True, "aborted": True, "runIds": ["a1"]}, r
    fin = c.res(rid, timeout=15)
    assert fin["payload"]["status"] == "timeout" and fin["payload"]["summary"] == "aborted", fin  # v4, as OpenClaw
    # sessionId stands for the key when sessionKey is absent (seed 001), canonical too
    fake.push({"text": "again"})
    rid = c.req("agent", {"message": "again", "sessionId": "S1", "idempotencyKey": "a2"})
    assert c.res(rid)["payload"]["sessionKey"] == "agent:main:s1"
    assert c.res(rid, timeout=15)["payload"]["status"] == "ok"
    rows = c.call("sessions.list", {})["payload"]["sessions"]
    assert [x["key"] for x in rows] == ["agent:main:s1"], rows
    c.close()


def test_global_runs_in_the_main_session(gwws, fake):
    fake.push({"text": "g"})
    c = connected(gwws)
    assert c.call("chat.send", {"sessionKey": "global", "message": "hi", "idempotencyKey": "g1"})["ok"]
    ev = chat_events(c, "g1")
    assert ev[-1]["state"] == "final" and {e["sessionKey"] for e in ev} == {MAIN}
    c.close()


def test_session_methods_answer_the_canonical_key(gwws, fake):
    c = connected(gwws)
    p = c.call("sessions.patch", {"key": "S2", "label": "two"})["payload"]
    assert p["key"] == "agent:main:s2" and p["entry"]["key"] == "agent:main:s2", p
    assert c.call("sessions.patch", {"key": "agent:main:s2", "label": "deux"})["payload"]["entry"]["label"] == "deux"
    assert c.call("chat.inject", {"sessionKey": "s2", "message": "note"})["payload"]["ok"] is True
    assert len(c.call("chat.history", {"sessionKey": "AGENT:MAIN:S2"})["payload"]["messages"]) == 1
    assert c.call("sessions.usage", {"key": "S2"})["payload"]["sessions"][0]["key"] == "agent:main:s2"
    assert c.call("sessions.compact", {"key": "s2"})["payload"]["key"] == "agent:main:s2"
    assert c.call("sessions.reset", {"key": "S2"})["payload"]["key"] == "agent:main:s2"
    assert [x["key"] for x in c.call("sessions.list", {})["payload"]["sessions"]] == ["agent:main:s2"]
    d = c.call("sessions.delete", {"key": "s2"})["payload"]
    assert d == {"ok": True, "key": "agent:main:s2", "deleted": True, "archived": []}
    assert c.call("sessions.list", {})["payload"]["sessions"] == []
    c.close()


def test_the_main_session_cannot_be_deleted_by_any_spelling(gwws):
    c = connected(gwws)
    for sent in ("main", "Main", "agent:main:main", "AGENT:MAIN:MAIN"):
        assert err(c.call("sessions.delete", {"key": sent})) == {
            "code": "INVALID_REQUEST", "message": "Cannot delete the main session (agent:main:main)."}, sent
    assert err(c.call("sessions.delete", {"key": "Global"}))["message"] == "Cannot delete the main session (global)."
    c.close()


def test_malformed_keys_are_refused(gwws):
    c = connected(gwws)
    calls = [
        ("chat.send", {"sessionKey": "agent:main", "message": "hi", "idempotencyKey": "x1"}, "agent:main"),
        ("agent", {"sessionKey": "agent::x", "message": "hi", "idempotencyKey": "x2"}, "agent::x"),
        ("chat.history", {"sessionKey": "agent:main:"}, "agent:main:"),
        ("sessions.get", {"key": "agent:main"}, "agent:main"),
        ("sessions.patch", {"key": "agent:main", "label": "x"}, "agent:main"),
        ("sessions.reset", {"key": "agent::x"}, "agent::x"),
        ("sessions.delete", {"key": "agent:main:"}, "agent:main:"),
        ("sessions.compact", {"key": "agent:main"}, "agent:main"),
        ("sessions.preview", {"keys": ["s1", "agent:main"]}, "agent:main"),
        ("chat.inject", {"sessionKey": "agent:main", "message": "m"}, "agent:main"),
        ("chat.abort", {"sessionKey": "agent:main"}, "agent:main"),
    ]
    for method, params, key in calls:
        e = err(c.call(method, params))
        assert e == {"code": "INVALID_REQUEST", "message": f'malformed session key "{key}"'}, (method, e)
    assert c.call("sessions.list", {})["payload"]["sessions"] == []  # nothing was made
    c.close()


def test_http_routes_find_the_canonical_session(gwws, fake):
    fake.push({"text": "over ws"})
    c = connected(gwws)
    fin = c.call("agent", {"message": "hi", "sessionKey": "agent:main:s1", "idempotencyKey": "h1"},
                 skip_accepted=True)
    assert fin["payload"]["status"] == "ok", fin
    for sent in ("s1", "S1", "agent%3Amain%3As1"):
        r = http(gwws, "GET", f"/sessions/{sent}/history", token=TOKEN)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["sessionKey"] == "agent:main:s1", body  # the reference's target.canonicalKey
        assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    r = http(gwws, "GET", "/sessions/Nope/history", token=TOKEN)
    assert r.status_code == 404 and r.json()["error"]["message"] == "Session not found: Nope"  # as sent
    r = http(gwws, "GET", "/sessions/agent%3Amain/history", token=TOKEN)
    assert r.status_code == 400 and r.json()["error"]["message"] == 'malformed session key "agent:main"', r.text
    r = http(gwws, "POST", "/sessions/S1/kill", token=TOKEN)
    assert r.status_code == 200 and r.json() == {"ok": True, "killed": False}, r.text
    r = http(gwws, "POST", "/sessions/agent%3A%3Ax/kill", token=TOKEN)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request", r.text
    c.close()


def test_http_kill_stops_a_run_made_under_another_spelling(gwws, fake):
    fake.push({"text": "slow", "first_byte_delay": 5})
    c = connected(gwws)
    rid = c.req("agent", {"message": "hi", "sessionKey": "K1", "idempotencyKey": "k1"})
    assert c.res(rid)["payload"]["status"] == "accepted"
    time.sleep(0.3)
    r = http(gwws, "POST", "/sessions/agent%3Amain%3Ak1/kill", token=TOKEN)
    assert r.status_code == 200 and r.json() == {"ok": True, "killed": True}, r.text
    assert c.res(rid, timeout=15)["payload"]["summary"] == "aborted"
    c.close()
