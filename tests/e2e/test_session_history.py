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
        assert body["sessionKey"] == "hist-a" and body["hasMore"] is False and "nextCursor" not in body
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
