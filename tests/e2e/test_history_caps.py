"""Transcript answers sized to their connection's output cap.

An answer is built in full before it is queued, and one that would pass
its connection's cap is never sent: HTTP above limits.writeQueueHardBytes
(a 500, or the connection closed), WebSocket above
gateway.ws.maxBufferedBytes (closed 1008 "slow consumer").  WS
chat.history / sessions.get loaded up to 6 MiB of content and
GET /api/v1/sessions/:key 2 MiB, whatever the cap; now each keeps the
newest messages whose JSON, escaping counted, fits in half of the cap in
force, and a message too large for any answer comes as OpenClaw's
placeholder."""

import json
import uuid

from agentlib import chat
from e2elib import http
from fakes.llm import FakeLLM
from test_ws_protocol import TOKEN, WS, connect_params, ws_config

OMITTED = "[chat.history omitted: message too large]"
WS_CAP = (4 << 20) - (64 << 10)  # default writeQueueHardBytes less 64 KiB (src/api/oc_ws.c)


def texts(msgs):
    return [(m["role"], "".join(c.get("text", "") for c in m["content"])) for m in msgs]


def raw_call(c, method, params):
    """(frame, its length as sent) of the answer to one request."""
    rid = c.req(method, params, rid=str(uuid.uuid4()))
    while True:
        raw = c.run(c.ws.recv(), 30)
        m = json.loads(raw)
        if m.get("type") == "res" and m.get("id") == rid:
            return m, len(raw.encode())


def test_ws_history_fits_the_send_queue_cap(gateway_factory):
    """Three ~2 MB replies: chat.history built a ~4.5 MB frame and the
    connection was closed 1008 "slow consumer" with no answer."""
    a, b, c3 = "a" * 2_000_000, "b" * 2_000_000, "c" * 2_500_000
    with FakeLLM("anthropic") as fake:
        fake.push({"text": a, "chunks": 20}, {"text": b, "chunks": 20}, {"text": c3, "chunks": 25})
        g = gateway_factory(ws_config(fake))
        for word in ("one", "two", "three"):
            r = chat(g, word, "caps-ws", token=TOKEN, timeout=90)
            assert r.status_code == 200, r.text[:300]
        c = WS(g.port, timeout=30)
        try:
            assert c.handshake(connect_params())["ok"]
            for method, params in (("chat.history", {"sessionKey": "caps-ws"}), ("sessions.get", {"key": "caps-ws"})):
                m, size = raw_call(c, method, params)
                assert m["ok"], m.get("error")
                assert size <= WS_CAP // 2, (method, size)
                msgs = m["payload"]["messages"]
                # the newest that fit; the newest reply alone is too large
                assert texts(msgs) == [("user", "two"), ("assistant", b), ("user", "three"),
                                       ("assistant", OMITTED)], method
                assert msgs[3]["__openclaw"]["truncated"] is True and msgs[3]["runId"]
                assert [x["seq"] for x in msgs] == [3, 4, 5, 6]
            m, _ = raw_call(c, "chat.history", {"sessionKey": "caps-ws"})
            p = m["payload"]
            assert p["sessionKey"] == "caps-ws" and p["sessionId"] and p["thinkingLevel"] == "off"
            assert p["verboseLevel"] == "off"
            # limit still counts messages
            m, _ = raw_call(c, "chat.history", {"sessionKey": "caps-ws", "limit": 1})
            assert texts(m["payload"]["messages"]) == [("assistant", OMITTED)]
        finally:
            c.close()


def test_rest_session_show_counts_escaping(gateway_factory):
    """Replies of control characters and quotes (6 and 2 bytes each as
    JSON): 1.5 MB of transcript under a 1 MiB writeQueueHardBytes did not
    fit the connection's buffers and came as a 500 ("the response could
    not be rendered").  Counted as characters, all of it would seem to fit
    in half the cap."""
    replies = [("\x01\"" * 40000) for _ in range(3)] + ["\x02" * 100000]
    with FakeLLM("anthropic") as fake:
        fake.push(*({"text": t, "chunks": 4} for t in replies))
        cfg = ws_config(fake)
        cfg["limits"] = {"writeQueueHardBytes": 1 << 20, "writeQueueSoftBytes": 256 << 10}
        g = gateway_factory(cfg)
        for i in range(4):
            r = chat(g, f"q{i}", "caps-rest", token=TOKEN, timeout=60)
            assert r.status_code == 200, r.text[:300]
        for path in ("/api/v1/sessions/caps-rest", "/api/v1/conversations/caps-rest"):
            r = http(g, "GET", path, token=TOKEN, timeout=30)
            assert r.status_code == 200, r.text[:300]
            assert len(r.content) <= 512 << 10, len(r.content)
            body = r.json()
            assert body["truncated"] is True
            got = [(m["role"], m["content"]) for m in body["messages"]]
            assert got == [("user", "q2"), ("assistant", replies[2]), ("user", "q3"), ("assistant", OMITTED)]
            assert [m["seq"] for m in body["messages"]] == [5, 6, 7, 8]
