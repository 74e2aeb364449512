"""GET /sessions/<key>/history (OpenClaw v4): a session's transcript over
HTTP, read scope.  {sessionKey, items, messages, hasMore, nextCursor?};
limit keeps the newest, cursor pages back; Accept: text/event-stream keeps
the answer open and sends a new `history` event as runs go by."""

import json
import time

import requests

from agentlib import chat, llm_config
from e2elib import HOST, http
from fakes.llm import FakeLLM


def history(g, key, token=None, **params):
    return http(g, "GET", f"/sessions/{key}/history", token=token or g.admin_token, params=params)


def texts(msgs):
    return [(m["role"], "".join(c.get("text", "") for c in m["content"])) for m in msgs]


def test_history_pages(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "one back"}, {"text": "two back"}, {"text": "three back"})
        g = gateway_factory(llm_config({"p": fake}))
        for word in ("one", "two", "three"):
            assert chat(g, word, "hist-a").status_code == 200
        r = history(g, "hist-a")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["sessionKey"] == "agent:main:hist-a" and body["hasMore"] is False and "nextCursor" not in body
        assert body["items"] == body["messages"]
        assert texts(body["messages"]) == [("user", "one"), ("assistant", "one back"), ("user", "two"),
                                           ("assistant", "two back"), ("user", "three"), ("assistant", "three back")]
        seqs = [m["__openclaw"]["seq"] for m in body["messages"]]
        assert seqs == sorted(seqs) and len(set(seqs)) == 6
        assert all(m["runId"] for m in body["messages"])
        # newest two, then page back with the cursor (both spellings)
        page = history(g, "hist-a", limit=2).json()
        assert texts(page["messages"]) == [("user", "three"), ("assistant", "three back")]
        assert page["hasMore"] is True and page["nextCursor"] == str(seqs[4])
        back = history(g, "hist-a", limit=2, cursor=page["nextCursor"]).json()
        assert texts(back["messages"]) == [("user", "two"), ("assistant", "two back")]
        assert back["hasMore"] is True
        first = history(g, "hist-a", limit=2, cursor="seq:" + back["nextCursor"]).json()
        assert texts(first["messages"]) == [("user", "one"), ("assistant", "one back")]
        assert first["hasMore"] is False and "nextCursor" not in first
        assert len(history(g, "hist-a", limit="99999999999999999999").json()["messages"]) == 6  # clamped to 1000


def test_history_refusals(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "hi"})
        g = gateway_factory(llm_config({"p": fake}))
        r = history(g, "nope")
        assert r.status_code == 404
        assert r.json() == {"ok": False, "error": {"type": "not_found", "message": "Session not found: nope"}}
        assert chat(g, "x", "hist-b").status_code == 200
        for params, word in (({"limit": "0"}, "limit"), ({"limit": "-1"}, "limit"), ({"limit": "x"}, "limit"),
                             ({"cursor": "abc"}, "cursor"), ({"cursor": "0"}, "cursor"),
                             ({"agentId": "ops"}, "agentId")):
            r = history(g, "hist-b", **params)
            assert r.status_code == 400 and word in r.json()["error"]["message"], (params, r.text)
        assert http(g, "POST", "/sessions/hist-b/history", token=g.admin_token).headers.get("Allow") in ("GET", "GET, HEAD")
        assert http(g, "GET", "/sessions/hist-b/history").status_code == 401
        send_tok = g.create_token("sender", "send")["token"]
        read_tok = g.create_token("reader", "read")["token"]
        time.sleep(1.2)  # the CLI wrote them to the db: the cache picks them up within a second
        assert history(g, "hist-b", token=send_tok).status_code == 403
        assert history(g, "hist-b", token=read_tok).status_code == 200


def test_history_stream(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "first answer"}, {"text": "second answer"})
        g = gateway_factory(llm_config({"p": fake}))
        assert chat(g, "first", "hist-s").status_code == 200
        url = f"http://{HOST}:{g.port}/sessions/hist-s/history"
        with requests.get(url, headers={"Authorization": f"Bearer {g.admin_token}", "Accept": "text/event-stream"},
                          stream=True, timeout=10) as r:
            assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
            lines = r.iter_lines(decode_unicode=True)
            events = []

            def next_history():
                deadline = time.monotonic() + 10
                name = None
                for line in lines:
                    assert time.monotonic() < deadline
                    if line.startswith("retry: "):
                        assert line == "retry: 1000"
                    elif line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: ") and name == "history":
                        events.append(json.loads(line[6:]))
                        return events[-1]
                raise AssertionError("stream ended")

            snap = next_history()
            assert texts(snap["messages"]) == [("user", "first"), ("assistant", "first answer")]
            assert chat(g, "second", "hist-s").status_code == 200
            for _ in range(3):  # one event when the run starts, one when it ends
                snap = next_history()
                if len(snap["messages"]) == 4:
                    break
            assert texts(snap["messages"])[2:] == [("user", "second"), ("assistant", "second answer")]


OMITTED = "[chat.history omitted: message too large]"


def sse_first_history(g, key, **params):
    url = f"http://{HOST}:{g.port}/sessions/{key}/history"
    with requests.get(url, headers={"Authorization": f"Bearer {g.admin_token}", "Accept": "text/event-stream"},
                      params=params, stream=True, timeout=20) as r:
        assert r.status_code == 200, r.text
        name = None
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name == "history":
                return json.loads(line[6:]), len(line)
    raise AssertionError("stream ended before a history event")


def test_history_over_the_write_queue_cap(gateway_factory):
    """Both lists of a 2.5 MB transcript passed limits.writeQueueHardBytes
    (4 MiB): the connection was closed with no answer, and the stream
    dropped (and its client reloaded every second).  Now the answer keeps
    within half the cap; a message too large for any page comes as
    OpenClaw's placeholder."""
    big, large = "b" * 1_500_000, "q" * 1_000_000
    with FakeLLM("openai") as fake:
        fake.push({"text": big, "chunks": 30}, {"text": large, "chunks": 20})
        g = gateway_factory(llm_config({"p": fake}))
        assert chat(g, "one", "hist-big", timeout=60).status_code == 200
        assert chat(g, "two", "hist-big", timeout=60).status_code == 200
        r = history(g, "hist-big")
        assert r.status_code == 200, r.text[:200]
        assert len(r.content) < 2 << 20
        body = r.json()
        assert body["items"] == body["messages"]
        assert texts(body["messages"]) == [("user", "one"), ("assistant", OMITTED), ("user", "two"),
                                           ("assistant", large)]
        assert body["messages"][1]["__openclaw"]["truncated"] is True
        assert body["messages"][1]["runId"] and body["messages"][1]["__openclaw"]["seq"] == 2
        assert body["truncated"] is True and body["hasMore"] is False and "nextCursor" not in body
        snap, size = sse_first_history(g, "hist-big")
        assert snap == body and size < 2 << 20


def test_history_pages_under_the_byte_cap_cover_everything(gateway_factory):
    """With a cursor, a page was read oldest-first from cursor - limit and
    cut at its newer end by the byte cap: the messages just below the
    cursor were never returned and hasMore came from the oldest row.  Now
    each page is the newest messages below the cursor that fit."""
    replies = [chr(ord("a") + i) * 20000 for i in range(8)]
    with FakeLLM("openai") as fake:
        fake.push(*({"text": t} for t in replies))
        cfg = llm_config({"p": fake})
        cfg["limits"] = {"writeQueueHardBytes": 262144, "writeQueueSoftBytes": 65536}
        g = gateway_factory(cfg)
        for i in range(8):
            assert chat(g, f"q{i}", "hist-pages").status_code == 200
        seen, cursor, pages = [], None, 0
        while True:
            params = {"cursor": cursor} if cursor else {}
            r = history(g, "hist-pages", **params)
            assert r.status_code == 200, r.text[:200]
            assert len(r.content) <= 131072, len(r.content)  # half the cap
            page = r.json()
            got = [m["__openclaw"]["seq"] for m in page["messages"]]
            assert got and all(s < int(cursor) for s in got) if cursor else got
            seen = got + seen
            pages += 1
            if not page["hasMore"]:
                assert "nextCursor" not in page
                break
            assert page["truncated"] is True and page["nextCursor"] == str(got[0])
            cursor = page["nextCursor"]
            assert pages < 20
        assert seen == list(range(1, 17)), seen  # every message once, in order
        assert pages >= 3
        assert [t for _, t in texts(r.json()["messages"])][:2] == ["q0", replies[0]]
        # limit still counts messages within a page
        page = history(g, "hist-pages", limit=1).json()
        assert texts(page["messages"]) == [("assistant", replies[7])]
        assert page["truncated"] is False and page["nextCursor"] == "16"


def test_history_bad_cursor_and_key(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "hi"})
        g = gateway_factory(llm_config({"p": fake}))
        assert chat(g, "x", "hist-c").status_code == 200
        # Past INT64_MAX: overflowed (undefined behaviour) and answered 200.
        for cur in ("9223372036854775808", "seq:9223372036854775808", "18446744073709551616",
                    "99999999999999999999999", "seq:", "+5", " 5"):
            r = history(g, "hist-c", cursor=cur)
            assert r.status_code == 400, (cur, r.text)
            assert r.json()["ok"] is False and "cursor" in r.json()["error"]["message"], r.text
        assert len(history(g, "hist-c", cursor="9223372036854775807").json()["messages"]) == 2
        # A bad key answers in the route's own error shape, as kill does.
        for method, path in (("GET", "history"), ("POST", "kill")):
            r = http(g, method, f"/sessions/{'k' * 600}/{path}", token=g.admin_token)
            assert r.status_code == 400, r.text
            j = r.json()
            assert j["ok"] is False and j["error"]["type"] == "invalid_request", j
            assert "512" in j["error"]["message"], j
