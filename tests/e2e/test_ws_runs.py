"""OpenClaw gateway WebSocket: runs and their edge cases (spec 1.8, 2.2,
2.3) that test_ws_protocol.py leaves out: agent.wait on runs the gateway
has not seen (yet), agent.wait answered from the 5-minute cache, repeats of
a failed chat.send, chat.history of a key no session can have, and request
frames whose strings hold escapes JSON.parse takes but jansson does not.
"""

import time

from hooklib import HOOK_TOKEN, hook
from test_ws_protocol import TOKEN, WS, connected, fake, gwws, ws_config  # noqa: F401 (fixtures)


def chat_events(c, run_id, timeout=10):
    """The chat events of run_id up to its final/error/aborted one."""
    out = [e["payload"] for e in c.events if e.get("event") == "chat" and e["payload"]["runId"] == run_id]
    deadline = time.monotonic() + timeout
    while not (out and out[-1]["state"] != "delta") and time.monotonic() < deadline:
        m = c.recv(max(0.05, deadline - time.monotonic()))
        if m.get("event") == "chat" and m["payload"]["runId"] == run_id:
            out.append(m["payload"])
    return out


def test_agent_wait_for_an_unknown_run_times_out(gwws):
    # OpenClaw's agent.wait waits timeoutMs for the run's end and answers
    # "timeout" (it cannot tell a run not started yet from an unknown one).
    c = connected(gwws)
    t = time.monotonic()
    r = c.call("agent.wait", {"runId": "never-started", "timeoutMs": 400})
    assert r["ok"], r
    assert r["payload"] == {"runId": "never-started", "status": "timeout"}
    assert time.monotonic() - t >= 0.35
    r = c.call("agent.wait", {"runId": "never-started", "timeoutMs": 0})
    assert r["payload"] == {"runId": "never-started", "status": "timeout"}
    assert c.call("health", {})["ok"]  # the record made for the wait is gone, nothing leaks into later calls
    c.close()


def test_agent_wait_before_the_run_is_submitted(gwws, fake):
    fake.push({"text": "late answer", "chunks": 2})
    c = connected(gwws)
    w = c.req("agent.wait", {"runId": "late-1", "timeoutMs": 10000})
    time.sleep(0.2)
    assert c.call("chat.send", {"sessionKey": "late", "message": "hi", "idempotencyKey": "late-1"})["ok"]
    done = c.res(w)
    assert done["payload"]["runId"] == "late-1" and done["payload"]["status"] == "ok", done
    ev = chat_events(c, "late-1")
    assert ev[-1]["state"] == "final" and {e["sessionKey"] for e in ev} == {"agent:main:late"}
    c.close()


def test_agent_wait_on_a_queued_run_keeps_its_session_key(gateway_factory, fake):
    # A run queued behind another on its session (here a hook's) that a
    # client waits for before it starts: its events name its own session,
    # not the main one.
    cfg = ws_config(fake, {"hooks": {"enabled": True, "token": HOOK_TOKEN, "allowRequestSessionKey": True,
                                     "allowedSessionKeyPrefixes": ["hook:"]}})
    gw = gateway_factory(cfg)
    fake.push({"text": "first", "first_byte_delay": 1.0})
    fake.push({"text": "queued answer"})
    c = connected(gw)
    assert c.call("chat.send", {"sessionKey": "hook:q", "message": "one", "idempotencyKey": "q-first"})["ok"]
    time.sleep(0.2)
    h = hook(gw, body={"message": "two", "sessionKey": "hook:q"})
    assert h.status_code in (200, 202), h.text
    run_id = h.json()["runId"]
    r = c.call("agent.wait", {"runId": run_id, "timeoutMs": 10000}, timeout=15)
    assert r["payload"]["status"] == "ok", r
    ev = chat_events(c, run_id)
    assert ev and ev[-1]["state"] == "final"
    assert {e["sessionKey"] for e in ev} == {"agent:main:hook:q"}, ev
    agent = [e["payload"] for e in c.events if e.get("event") == "agent" and e["payload"]["runId"] == run_id]
    assert agent and {a["sessionKey"] for a in agent} == {"agent:main:hook:q"}
    c.close()


def test_agent_wait_from_the_cache_has_start_and_end(gwws, fake):
    fake.push({"text": "done", "first_byte_delay": 0.2})
    c = connected(gwws)
    live = c.req("agent.wait", {"runId": "cached-1", "timeoutMs": 10000})
    fin = c.call("agent", {"message": "hi", "idempotencyKey": "cached-1"}, skip_accepted=True)
    assert fin["payload"]["status"] == "ok"
    lw = c.res(live)["payload"]
    cw = c.call("agent.wait", {"runId": "cached-1", "timeoutMs": 1000})["payload"]
    assert cw["status"] == "ok" and cw["runId"] == "cached-1"
    assert cw["startedAt"] == lw["startedAt"] > 0 and cw["endedAt"] == lw["endedAt"] >= cw["startedAt"]
    c.close()


def test_chat_send_repeat_of_a_failed_run_gets_its_error(gwws, fake):
    fake.push({"error_kind": "server"})
    c = connected(gwws)
    p = {"sessionKey": "fail", "message": "hi", "idempotencyKey": "fail-chat"}
    assert c.call("chat.send", p)["payload"] == {"runId": "fail-chat", "status": "started"}
    assert chat_events(c, "fail-chat")[-1]["state"] == "error"
    again = c.call("chat.send", p)
    assert again["ok"] is False and again["error"]["code"] == "UNAVAILABLE", again
    assert again["payload"]["runId"] == "fail-chat" and again["payload"]["status"] == "error"
    assert again["payload"]["summary"] == again["error"]["message"] and "500" in again["error"]["message"]
    # a run that succeeded is still repeated as {runId, status: "ok"}
    fake.push({"text": "fine"})
    p = {"sessionKey": "fail", "message": "hi", "idempotencyKey": "ok-chat"}
    assert c.call("chat.send", p)["ok"]
    assert chat_events(c, "ok-chat")[-1]["state"] == "final"
    assert c.call("chat.send", p)["payload"] == {"runId": "ok-chat", "status": "ok"}
    c.close()


def test_chat_history_of_a_key_no_session_can_have(gwws):
    c = connected(gwws)
    key = "k" * 600  # over the store's 512-byte key: no session has it
    r = c.call("chat.history", {"sessionKey": key})
    assert r["ok"], r
    assert r["payload"]["sessionKey"] == key and r["payload"]["messages"] == []
    r = c.call("sessions.get", {"key": key})
    assert r["ok"] and r["payload"]["messages"] == [], r
    c.close()


def test_frames_with_lone_surrogates_and_nul_are_answered(gwws, fake):
    # JS clients cutting a string between the halves of a surrogate pair
    # send "\ud83d" (JSON.stringify escapes it); the reference parses that.
    fake.push({"text": "ok"})
    c = connected(gwws)
    c.send('{"type":"req","id":"sur-1","method":"chat.send","params":{"sessionKey":"sur",'
           '"message":"cut \\ud83d here \\udc00 and a pair \\ud83d\\ude00","idempotencyKey":"sur-1"}}')
    r = c.res("sur-1")
    assert r["ok"] and r["payload"] == {"runId": "sur-1", "status": "started"}, r
    assert chat_events(c, "sur-1")[-1]["state"] == "final"
    hist = c.call("chat.history", {"sessionKey": "sur"})["payload"]["messages"]
    assert hist[0]["content"][0]["text"] == "cut \ufffd here \ufffd and a pair \U0001F600"
    c.send('{"type":"req","id":"nul-1","method":"chat.send","params":{"sessionKey":"sur",'
           '"message":"a \\u0000 b","idempotencyKey":"nul-1"}}')
    r = c.res("nul-1")
    assert r["ok"] is False and r["error"]["code"] == "INVALID_REQUEST", r
    assert "\\u0000" in r["error"]["message"]
    assert c.call("health", {})["ok"]
    c.close()
