"""OpenClaw gateway WebSocket: how a run's end reads to clients, per protocol
(spec 2.2, 2.3), as OpenClaw 2026.9.6 (v4) and 2026.3 (v3) send it.

- An aborted run (chat.abort, sessions.reset, sessions.delete): the `agent`
  final is ok:true, v4 {status: "timeout", summary: "aborted", stopReason:
  "aborted"}, v3 {status: "ok", summary: "completed"}, both with
  result.meta.aborted; agent.wait says v4 {status: "error", stopReason} with
  the abort's reason ("rpc", "reset", "delete"; no error text),
  v3 "ok"; the lifecycle ends with phase "end" (cancelled), not "error".
- chat events: `aborted` carries stopReason and a message only when text
  had streamed, never errorMessage; `error` carries errorMessage and
  errorKind, never a message.
- The `agent` events of a run are numbered 1, 2, 3... without gaps: the
  `usage` stream ({outputTokens: the run's total so far}) follows each
  model call.
"""

import time

import pytest

from test_ws_protocol import connect_params, connected, fake, gwws  # noqa: F401 (fixtures)


def run_events(c, run_id, timeout=15):
    """(event, payload) of run_id, the ones c.res() put aside first, up to its last chat event."""
    out = [(e["event"], e["payload"]) for e in c.events
           if e.get("type") == "event" and (e.get("payload") or {}).get("runId") == run_id]
    deadline = time.monotonic() + timeout
    while not (out and out[-1][0] == "chat" and out[-1][1]["state"] != "delta") and time.monotonic() < deadline:
        m = c.recv(max(0.05, deadline - time.monotonic()))
        if m.get("type") == "event" and (m.get("payload") or {}).get("runId") == run_id:
            out.append((m["event"], m["payload"]))
        elif m.get("type") == "res":
            c.stash.setdefault(m.get("id"), []).append(m)
    return out


def wait_for_text(c, run_id, timeout=10):
    """Until the first assistant text of run_id has arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = c.recv(max(0.05, deadline - time.monotonic()))
        c.events.append(m)
        p = m.get("payload") or {}
        if m.get("event") == "agent" and p.get("runId") == run_id and p.get("stream") == "assistant":
            return
    raise AssertionError("no assistant text")


def abort(c, how, key, run_id):
    if how == "chat.abort":
        r = c.call("chat.abort", {"sessionKey": key, "runId": run_id})
        assert r["payload"] == {"ok": True, "aborted": True, "runIds": [run_id]}, r
    else:
        assert c.call(how, {"key": key})["ok"]


@pytest.mark.parametrize("how,reason", [("chat.abort", "rpc"), ("sessions.reset", "reset"),
                                        ("sessions.delete", "delete")])
def test_aborted_run_v4(gwws, fake, how, reason):
    fake.push({"text": "slow", "first_byte_delay": 5})
    c = connected(gwws)
    rid = c.req("agent", {"message": "hi", "sessionKey": "ab4", "idempotencyKey": "ab4-1"})
    assert c.res(rid)["payload"]["status"] == "accepted"
    w = c.req("agent.wait", {"runId": "ab4-1", "timeoutMs": 15000})
    time.sleep(0.3)
    abort(c, how, "ab4", "ab4-1")
    fin = c.res(rid, timeout=15)
    assert fin["ok"] is True, fin
    p = fin["payload"]
    assert (p["runId"], p["status"], p["summary"], p["stopReason"]) == ("ab4-1", "timeout", "aborted", "aborted"), p
    assert p["result"]["meta"]["aborted"] is True and p["result"]["payloads"] == []
    live = c.res(w, timeout=15)["payload"]
    assert (live["status"], live["stopReason"]) == ("error", reason) and "error" not in live, live
    assert live["endedAt"] >= live["startedAt"] > 0
    cached = c.call("agent.wait", {"runId": "ab4-1", "timeoutMs": 1000})["payload"]
    assert cached == live  # from the 5-minute cache: the same answer
    ev = run_events(c, "ab4-1")
    chat = [x for e, x in ev if e == "chat"]
    assert chat[-1] == {"runId": "ab4-1", "sessionKey": "agent:main:ab4", "seq": chat[-1]["seq"],
                        "state": "aborted", "stopReason": reason}, chat  # no text streamed: no message
    end = [x["data"] for e, x in ev if e == "agent" and x["stream"] == "lifecycle"][-1]
    assert (end["phase"], end["status"], end["aborted"], end["stopReason"]) == ("end", "cancelled", True, reason), end
    assert "error" not in end
    c.close()


def test_aborted_run_v3(gwws, fake):
    fake.push({"text": "slow", "first_byte_delay": 5})
    c = connected(gwws, connect_params(min_p=3, max_p=3))
    rid = c.req("agent", {"message": "hi", "sessionKey": "ab3", "idempotencyKey": "ab3-1"})
    assert c.res(rid)["payload"]["status"] == "accepted"
    w = c.req("agent.wait", {"runId": "ab3-1", "timeoutMs": 15000})
    time.sleep(0.3)
    abort(c, "chat.abort", "ab3", "ab3-1")
    p = c.res(rid, timeout=15)["payload"]
    assert (p["status"], p["summary"]) == ("ok", "completed") and "stopReason" not in p, p
    assert p["result"]["meta"]["aborted"] is True
    live = c.res(w, timeout=15)["payload"]
    assert live["status"] == "ok" and "error" not in live and "stopReason" not in live, live
    chat = [x for e, x in run_events(c, "ab3-1") if e == "chat"]
    assert chat[-1]["state"] == "aborted" and "errorMessage" not in chat[-1], chat
    c.close()


def test_aborted_chat_keeps_the_streamed_text(gwws, fake):
    fake.push({"text": "partial answer that goes on", "chunks": 5, "chunk_delay": 1.0})
    c = connected(gwws)
    assert c.call("chat.send", {"sessionKey": "abt", "message": "hi", "idempotencyKey": "abt-1"})["ok"]
    wait_for_text(c, "abt-1")
    abort(c, "chat.abort", "abt", "abt-1")
    last = [x for e, x in run_events(c, "abt-1") if e == "chat"][-1]
    assert last["state"] == "aborted" and last["stopReason"] == "rpc" and "errorMessage" not in last, last
    assert last["message"]["role"] == "assistant"
    assert "partial answer that goes on".startswith(last["message"]["content"][0]["text"])
    assert last["message"]["content"][0]["text"] and last["message"]["timestamp"] > 0
    c.close()


@pytest.mark.parametrize("proto", [3, 4])
def test_chat_error_has_no_message(gwws, fake, proto):
    fake.push({"error_kind": "server"})
    c = connected(gwws, connect_params(min_p=proto, max_p=proto))
    assert c.call("chat.send", {"sessionKey": "err", "message": "hi", "idempotencyKey": f"err-{proto}"})["ok"]
    last = [x for e, x in run_events(c, f"err-{proto}") if e == "chat"][-1]
    assert last["state"] == "error", last
    assert set(last) == {"runId", "sessionKey", "seq", "state", "errorMessage", "errorKind"}, last
    assert "500" in last["errorMessage"]
    assert last["errorKind"] in ("refusal", "timeout", "rate_limit", "context_length", "unknown")
    c.close()


@pytest.mark.parametrize("proto", [3, 4])
def test_agent_event_seq_is_contiguous_with_usage(gwws, fake, proto):
    # Two model calls around a tool: each is followed by a `usage` event
    # with the run's output tokens so far, and the per-run seq has no gap
    # (for a client taking tool events; others miss those, as in OpenClaw).
    fake.push({"tool_calls": [{"name": "current_time", "arguments": {"timezone": "UTC"}}],
               "usage": {"input": 10, "output": 7}})
    fake.push({"text": "It is noon.", "chunks": 2, "usage": {"input": 20, "output": 5}})
    c = connected(gwws, connect_params(min_p=proto, max_p=proto, caps=["tool-events"]))
    assert c.call("agent", {"message": "time?", "idempotencyKey": f"seq-{proto}"},
                  skip_accepted=True, timeout=15)["payload"]["status"] == "ok"
    agent = [x for e, x in run_events(c, f"seq-{proto}") if e == "agent"]
    assert [a["seq"] for a in agent] == list(range(1, len(agent) + 1)), [(a["seq"], a["stream"]) for a in agent]
    assert [a["data"] for a in agent if a["stream"] == "usage"] == [{"outputTokens": 7}, {"outputTokens": 12}]
    assert {a["stream"] for a in agent} == {"lifecycle", "usage", "tool", "assistant"}
    c.close()
