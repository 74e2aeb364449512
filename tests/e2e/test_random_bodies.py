"""Seeded random bodies against the JSON surfaces of issue #4 (hooks, REST
chat and send, outgoing webhooks, /tools/invoke, /v1/embeddings, and the
queries of /sessions/<key>/history): each field of the real request grammar,
with values of every wrong shape mixed in.  Every answer must be a JSON
answer below 500 (or a 502/504 naming an upstream failure), and the
gateway must stay up and healthy.  CHELA_E2E_SEED picks another seed."""

import base64
import os
import random

from agentlib import llm_config
from e2elib import http
from fakes.llm import FakeLLM
from fakes.pdf import make_pdf
from hooklib import HOOK_TOKEN, hooks_config

DEAD = "http://127.0.0.1:9/cb"  # discard port: deliveries fail fast, on loopback


def _value(rng, depth=0):
    pool = [None, True, False, 0, -1, 7, 2.5, -1e300, 10 ** 30, "", "x", "hook:abc", "agent:main:main",
            "é\u2028\"\\\n", "\ud7ff" * 3, "a" * 5000, "now", "next-heartbeat", "raw", "envelope", DEAD,
            "webhook", "fake/fake-model", "gpt"]
    if depth < 2 and rng.random() < 0.2:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 2 and rng.random() < 0.15:
        return {rng.choice(["url", "mode", "secret", "headers", "x"]): _value(rng, depth + 1)
                for _ in range(rng.randint(0, 3))}
    return rng.choice(pool)


GRAMMARS = {
    "/hooks/agent": {"message": ["do it", "multi\nline {\"json\": 1}", ""], "name": ["Trader"],
                     "agentId": ["main", "ops"], "sessionKey": ["auto-trader:x:1", "hook:1", "cron:1"],
                     "wakeMode": ["now", "next-heartbeat"], "deliver": [False, True], "channel": ["webhook", "last"],
                     "to": ["x"], "model": ["fake/fake-model", "gpt", "nope/x"], "thinking": ["low"],
                     "timeoutSeconds": [5, 0, -1], "idempotencyKey": ["k1", "k2"],
                     "callback": [{"url": DEAD, "mode": "raw"}, {"url": DEAD, "mode": "envelope", "secret": "s"},
                                  {"url": "ftp://x", "mode": "raw"}, {"url": DEAD, "headers": {"a\nb": "c"}}],
                     "waitForCompletion": [False], "sessionMode": ["isolated", "persistent", "shared"],
                     "accountId": ["biz", "a" * 300]},
    "/hooks/wake": {"text": ["wake up", ""], "mode": ["now", "next-heartbeat", "later"],
                    "sessionKey": ["inbox", "main", "agent:main:x", "", "a" * 600], "agentId": ["main"]},
    # fan-out (hooks.presets gmail, and a wake mapping with forEach)
    "/hooks/gmail": {"messages": [[{"id": "m1", "from": "a@b", "subject": "s", "snippet": "p", "body": "b"}],
                                  [], [{"id": "m2"}, {"id": "m2"}], [{"id": "agent:main:x"}], [{"id": "a" * 600}],
                                  [{"id": None}, 3, "x"], "x"],
                     "source": ["gmail"]},
    "/hooks/pings": {"items": [["a", "b"], [], [" "], ["x" * 70000], [{"deep": [1, 2]}]]},
    "/api/v1/chat": {"message": ["hi", ""], "conversationId": ["conv_1", "agent:main:main", "a" * 600],
                     "model": ["fake/fake-model", "nope/x"], "systemPrompt": ["be brief"],
                     "maxTokens": [16, 0, -5], "temperature": [0.5, 3]},
    "/api/v1/chat/stream": {"message": ["hi"], "conversationId": ["conv_2"], "model": ["fake/fake-model"],
                            "maxTokens": [16], "temperature": [0.2]},
    "/api/v1/send": {"channel": ["webhook", "telegram"], "chatId": ["c1"], "message": ["hello"]},
    "/tools/invoke": {"tool": ["current_time", "exec"], "name": ["current_time", "http_request", ""],
                      "action": ["json"], "args": [{"timezone": "UTC"}, {"timezone": "Mars/Base"}, {}],
                      "sessionKey": ["main", "agent:main:main"], "agentId": ["main", "ops"], "dryRun": [True],
                      "idempotencyKey": ["k"]},
    "/v1/embeddings": {"model": ["fake/fake-model", "openclaw", "nope/x"], "input": ["hi", ["a", "b"], [1, 2], ""],
                       "encoding_format": ["float", "base64", "hex"], "dimensions": [4, 0], "user": ["u"]},
    # file parts: text files, PDFs good and bad (pdftotext runs), file_id, junk
    "/v1/chat/completions": {"model": ["fake/fake-model", "openclaw", "nope/x"], "messages": [
        [{"role": "user", "content": [{"type": "file", "file": f}]}] for f in (
            {"file_data": "data:text/plain;base64,aGk=", "filename": "a.txt"},
            {"file_data": "data:application/pdf;base64," + base64.b64encode(make_pdf(["p1", ""])).decode()},
            {"file_data": "data:application/pdf;base64,JVBERi0xLjQK"}, {"file_data": "data:application/pdf,x"},
            {"file_id": "file-1"}, {"file_data": 5}, "x", None, {"filename": "a.pdf"})]},
    "/api/v1/webhooks": {"url": [DEAD, "ftp://x", "http://"], "secret": ["s3cret"],
                         "events": [["run.completed"], ["nope"], "run.failed"],
                         "retry": [{"maxAttempts": 1, "backoffMs": 10}, {"maxAttempts": -1}]},
}


def _body(rng, grammar):
    if rng.random() < 0.05:
        return _value(rng)  # not even an object
    body = {}
    for k, good in grammar.items():
        r = rng.random()
        if r < 0.65:
            body[k] = rng.choice(good)
        elif r < 0.8:
            body[k] = _value(rng)
    if rng.random() < 0.1:
        body[rng.choice(["extra", "__proto__", ""])] = _value(rng)
    return body


def test_random_bodies_on_hooks_and_rest(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok", "times": -1})
        cfg = hooks_config({"fake": fake}, hooks={
            "presets": ["gmail"],
            "mappings": [{"match": {"path": "pings"}, "action": "wake", "forEach": "items",
                          "textTemplate": "ping {{items[0]}}"}]})
        cfg["api"] = {"webhooks": {"outgoing": []}}
        cfg["gateway"] = {"http": {"endpoints": {"chatCompletions": {"enabled": True}}}}
        g = gateway_factory(cfg)
        admin = g.admin_token
        rng = random.Random(int(os.environ.get("CHELA_E2E_SEED", "20261122")))
        seen = {}
        for i in range(400):
            path = rng.choice(list(GRAMMARS))
            body = _body(rng, GRAMMARS[path])
            token = HOOK_TOKEN if path.startswith("/hooks") else admin
            r = http(g, "POST", path, token=token, json=body, timeout=15)
            seen[(path, r.status_code)] = seen.get((path, r.status_code), 0) + 1
            assert r.status_code < 500 or r.status_code in (502, 504), (path, body, r.status_code, r.text[:300])
            if r.status_code >= 400:
                ctype = r.headers.get("Content-Type", "")
                assert ctype.startswith("application/json"), (path, body, r.status_code, ctype)
                assert r.json(), (path, body)
        ok = {p for (p, s) in seen if s < 300}
        assert len(ok) >= 3, seen  # the valid paths were reached too
        assert any(s == 400 for (_, s) in seen), seen
        assert http(g, "GET", "/health", token=admin).status_code == 200
        assert http(g, "GET", "/ready", token=admin).status_code == 200


def test_random_history_queries(gateway_factory):
    """GET /sessions/<key>/history with random keys, limits and cursors:
    200, 400 or 404 with a JSON body, never a failure."""
    from urllib.parse import quote
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok", "times": -1})
        g = gateway_factory(llm_config({"fake": fake}))
        for i in range(3):
            assert http(g, "POST", "/api/v1/chat", token=g.admin_token, json={"message": f"m{i}", "conversationId": "h"},
                        timeout=15).status_code == 200
        rng = random.Random(int(os.environ.get("CHELA_E2E_SEED", "20261122")))
        keys = ["h", "nope", "agent:main:main", "a" * 600, "%", "é", "h/x", " h", "%00"]
        nums = ["1", "2", "1000", "1001", "0", "-3", "x", "", "seq:2", "seq:", "99999999999999999999999", "2.5",
                "1e3", " 2", "seq:-1"]
        seen = {}
        for _ in range(250):
            params = {}
            for name in ("limit", "cursor", "agentId"):
                if rng.random() < 0.5:
                    params[name] = rng.choice(nums if name != "agentId" else ["main", "ops", ""])
            key = rng.choice(keys)
            r = http(g, "GET", "/sessions/" + quote(key, safe="%") + "/history", token=g.admin_token, params=params)
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
            assert r.status_code in (200, 400, 404), (key, params, r.status_code, r.text[:200])
            body = r.json()
            if r.status_code == 200:
                assert body["items"] == body["messages"] and len(body["messages"]) <= 6, (key, params)
                assert body["hasMore"] == ("nextCursor" in body), body
        assert seen.get(200) and seen.get(400) and seen.get(404), seen
        assert http(g, "GET", "/health", token=g.admin_token).status_code == 200
