"""Seeded random params for every WebSocket method chela serves, from the
protocol's own grammar with wrong shapes and odd values mixed in: each
request gets a res frame (ok or an error with a message), the connection
stays usable, and the gateway stays up.  CHELA_E2E_SEED picks another seed."""

import os
import random

from fakes.llm import FakeLLM
from test_ws_protocol import connected, ws_config

METHODS = {
    "health": {}, "status": {}, "logs.tail": {"limit": [10, 0, -1], "cursor": [0, 99]},
    "usage.status": {}, "usage.cost": {"days": [1, 30, 0], "startDate": ["2026-01-01", "x"], "endDate": ["2026-12-31"]},
    "channels.status": {"probe": [True]}, "config.get": {}, "models.list": {}, "agents.list": {},
    "sessions.list": {"limit": [1, 1000, 0], "offset": [0, 5], "activeMinutes": [1, 0], "agentId": ["main", "ops"],
                      "search": ["x"], "includeGlobal": [True]},
    "sessions.preview": {"keys": [["agent:main:main"], ["nope", ""], []], "limit": [1, 50], "maxChars": [10, 1]},
    "sessions.get": {"key": ["agent:main:main", "hook:none", ""], "limit": [1, 5]},
    "sessions.usage": {"key": ["agent:main:main", "nope"], "startDate": ["2026-01-01"], "limit": [1]},
    "sessions.patch": {"key": ["agent:main:main", "r:1", "cron:x", ""], "label": ["L", "", None],
                       "model": ["anthropic/claude-opus-4-5", "nope/none", None, ""], "thinkingLevel": ["low", "max"]},
    "sessions.reset": {"key": ["r:1", "agent:main:main", "nope"]},
    "sessions.delete": {"key": ["r:1", "agent:main:main", "nope"], "deleteTranscript": [True]},
    "sessions.compact": {"key": ["r:1", "agent:main:main"], "maxLines": [1, 400, 0]},
    "cron.list": {"includeDisabled": [True]}, "cron.status": {},
    "wake": {"mode": ["now", "next-heartbeat"], "text": ["wake", ""]},
    "send": {"to": ["x"], "message": ["hi"], "channel": ["webhook", "telegram"], "idempotencyKey": ["k1", "k2"]},
    "agent": {"message": ["hi", ""], "sessionKey": ["r:2", "agent:main:main"], "idempotencyKey": ["a1", "a2", "a3"],
              "model": ["nope/none"], "timeout": [1, 0], "deliver": [False]},
    "agent.wait": {"runId": ["a1", "nope"], "timeoutMs": [0, 10]},
    "chat.history": {"sessionKey": ["agent:main:main", "r:2", "nope"], "limit": [1, 1000]},
    "chat.send": {"sessionKey": ["r:3", "agent:main:main"], "message": ["hi", ""], "idempotencyKey": ["c1", "c2"]},
    "chat.abort": {"sessionKey": ["r:3", "nope"], "runId": ["c1", "nope"]},
    "chat.inject": {"sessionKey": ["r:3", "agent:main:main", "nope"], "message": ["injected", ""], "label": ["x"]},
    "tools.invoke": {"name": ["current_time", "exec", ""], "args": [{"timezone": "UTC"}, {"timezone": 5}, {}],
                     "agentId": ["main", "ops"], "idempotencyKey": ["t1"]},
    "device.pair.list": {}, "device.pair.approve": {"requestId": ["nope", ""]},
    "device.pair.reject": {"requestId": ["nope"]}, "device.pair.remove": {"deviceId": ["nope"]},
    "device.token.rotate": {"deviceId": ["nope"], "role": ["operator"], "scopes": [["operator.read"]]},
    "device.token.revoke": {"deviceId": ["nope"], "role": ["operator"]},
    "system-presence": {}, "system-event": {"text": ["evt"]},
}
ODD = [None, True, -1, 2 ** 53, 1.5, "", "é\u2028", "a" * 3000, [], {}, [1, "x"], {"k": []}]


def _params(rng, grammar):
    if rng.random() < 0.05:
        return rng.choice([None, [], "x", 5])  # not an object
    p = {}
    for k, good in grammar.items():
        r = rng.random()
        if r < 0.6:
            p[k] = rng.choice(good)
        elif r < 0.75:
            p[k] = rng.choice(ODD)
    if rng.random() < 0.05:
        p["unexpected"] = 1
    return p


def test_random_params_for_every_method(gateway_factory):
    with FakeLLM("anthropic") as fake:
        fake.push({"text": "ok", "times": -1})
        g = gateway_factory(ws_config(fake))
        rng = random.Random(int(os.environ.get("CHELA_E2E_SEED", "20261122")))
        c = connected(g)
        try:
            seen = {}
            for _ in range(400):
                method = rng.choice(list(METHODS))
                params = _params(rng, METHODS[method])
                f = {"type": "req", "id": f"r{rng.random()}", "method": method}
                if params is not None:
                    f["params"] = params
                c.send(f)
                r = c.res(f["id"], timeout=15)
                payload = r.get("payload")  # an object, or a list (system-presence)
                if r["ok"] and isinstance(payload, dict) and payload.get("status") == "accepted":
                    r = c.res(f["id"], timeout=15)  # agent: accepted, then the final answer
                assert r["type"] == "res", r
                if not r["ok"]:
                    assert r["error"]["message"], (method, params, r)
                seen[(method, r["ok"])] = seen.get((method, r["ok"]), 0) + 1
            assert any(ok for (_, ok) in seen) and any(not ok for (_, ok) in seen), seen
            assert c.call("health", {})["ok"]
        finally:
            c.close()
