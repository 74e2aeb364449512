"""Session keys over HTTP are OpenClaw's canonical keys (resolveSessionStoreKey):
`s1`, `S1` and `agent:main:s1` name one session, stored and shown as
`agent:main:s1`.  Hooks check their prefixes on the key lowercased and store
the canonical key; /v1 canonicalizes x-openclaw-session-key and builds
agent:main:openai-user:<user> / openresponses-user:<user> keys; chela's REST
API keeps conversation ids as the client gave them (the key without
agent:main:) and looks them up canonically; the CLI canonicalizes its
arguments the same way."""

import re

from agentlib import chat, get_run, list_runs, llm_config, start, wait_run
from e2elib import http
from fakes.llm import FakeLLM
from hooklib import hook, hooks_config


def keys(g, tok=None):
    return [s["key"] for s in http(g, "GET", "/api/v1/sessions", token=tok or g.admin_token).json()["sessions"]]


# ---------------------------------------------------------------- hooks


def test_hook_keys_are_checked_lowercased_and_stored_canonical(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok", "times": -1})
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"allowedSessionKeyPrefixes": ["hook:"]}))
        r = hook(g, body={"message": "one", "sessionKey": "HOOK:Abc", "idempotencyKey": "sk-1"})
        assert r.status_code == 202, r.text
        run_id = r.json()["runId"]
        assert wait_run(g, run_id)["sessionKey"] == "agent:main:hook:abc"
        assert "agent:main:hook:abc" in keys(g)
        # a replay under another spelling of the key names the same run
        for k in ("hook:abc", " HOOK:ABC "):
            r = hook(g, body={"message": "one", "sessionKey": k, "idempotencyKey": "sk-1"})
            assert r.status_code in (200, 202) and r.json()["runId"] == run_id, r.text
        # reserved namespaces in any case; the prefix list still applies
        for k in ("AGENT:main:x", "Cron:1", "SubAgent:x"):
            r = hook(g, body={"message": "x", "sessionKey": k})
            assert r.status_code == 400 and "reserved" in r.json()["error"], (k, r.text)
        r = hook(g, body={"message": "x", "sessionKey": "other:1"})
        assert r.status_code == 400 and r.json()["error"] == "sessionKey must start with one of: hook:"
        # the default key is a fresh hook:<uuid>, stored in the agent's namespace
        r = hook(g, body={"message": "fresh"})
        assert r.status_code == 202, r.text
        assert re.fullmatch(r"agent:main:hook:[0-9a-f-]{36}", wait_run(g, r.json()["runId"])["sessionKey"])
        # /hooks/wake takes the same canonical key
        r = hook(g, path="/hooks/wake", body={"text": "ping", "sessionKey": "Hook:ABC"})
        assert r.status_code == 200, r.text
        assert wait_run(g, r.json()["runId"])["sessionKey"] == "agent:main:hook:abc"
        r = hook(g, path="/hooks/wake", body={"text": "ping", "sessionKey": "agent:main"})
        assert r.status_code == 400, r.text
        # GET /api/v1/runs?sessionKey= canonicalizes too
        assert {x["sessionKey"] for x in list_runs(g, sessionKey="HOOK:ABC")} == {"agent:main:hook:abc"}


def test_hook_default_session_key_must_be_a_key(gateway_factory):
    with FakeLLM("openai") as fake:
        g = gateway_factory.new(hooks_config({"p": fake}, hooks={"defaultSessionKey": "agent:main"}))
        g.spawn()
        assert g.wait(10) not in (None, 0)
        assert "hooks.defaultSessionKey" in g.stderr()


# ---------------------------------------------------------------- /v1


def oa_config(fake):
    cfg = llm_config({"p": fake})
    cfg["gateway"] = {"http": {"endpoints": {"chatCompletions": {"enabled": True}, "responses": {"enabled": True}}}}
    return cfg


def completions(g, body, headers=None):
    return http(g, "POST", "/v1/chat/completions", token=g.admin_token, json=body, headers=headers or {}, timeout=30)


def test_v1_session_keys(gateway_factory):
    msgs = [{"role": "user", "content": "hi"}]
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok", "times": -1})
        g = start(gateway_factory, oa_config(fake))
        for h in ("s1", "S1", "agent:main:s1"):
            r = completions(g, {"model": "openclaw", "messages": msgs}, {"x-openclaw-session-key": h})
            assert r.status_code == 200, r.text
        assert keys(g) == ["agent:main:s1"]
        runs = list_runs(g, sessionKey="s1")
        assert len(runs) == 3 and {x["sessionKey"] for x in runs} == {"agent:main:s1"}
        assert get_run(g, runs[0]["runId"])["sessionKey"] == "agent:main:s1"
        # `user` names a session in the agent's namespace, lowercased
        for u in ("Alice", "alice"):
            r = completions(g, {"model": "openclaw", "messages": msgs, "user": u})
            assert r.status_code == 200, r.text
        assert [x["sessionKey"] for x in list_runs(g, sessionKey="agent:main:openai-user:alice")] == \
            ["agent:main:openai-user:alice"] * 2
        r = http(g, "POST", "/v1/responses", token=g.admin_token, timeout=30,
                 json={"model": "openclaw", "input": "hi", "user": "Bob"})
        assert r.status_code == 200, r.text
        assert list_runs(g, sessionKey="agent:main:openresponses-user:bob"), keys(g)
        # no user, no header: a fresh session per request
        r = completions(g, {"model": "openclaw", "messages": msgs})
        assert r.status_code == 200, r.text
        assert any(re.fullmatch(r"agent:main:openai:[0-9a-f-]{36}", k) for k in keys(g)), keys(g)
        # malformed agent keys and OpenClaw's internal namespaces are refused
        n = len(fake.requests)
        r = completions(g, {"model": "openclaw", "messages": msgs}, {"x-openclaw-session-key": "agent:main"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_session", r.text
        assert "agent:<agent-id>:<session-key>" in r.json()["error"]["message"]
        for h in ("Cron:x", "agent:main:subagent:x"):
            r = completions(g, {"model": "openclaw", "messages": msgs}, {"x-openclaw-session-key": h})
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_session", (h, r.text)
        assert len(fake.requests) == n


# ---------------------------------------------------------------- REST


def test_rest_conversation_ids(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok", "times": -1})
        g = start(gateway_factory, llm_config({"p": fake}))
        r = chat(g, "one", "c-1")
        assert r.status_code == 200 and r.json()["conversationId"] == "c-1", r.text
        r = chat(g, "two", "C-1")  # the same conversation, echoed as sent
        assert r.status_code == 200 and r.json()["conversationId"] == "C-1", r.text
        fresh = chat(g, "three").json()["conversationId"]
        assert fresh.startswith("conv_")
        chat(g, "four", "main")
        convs = http(g, "GET", "/api/v1/conversations", token=g.admin_token).json()["conversations"]
        assert sorted(c["id"] for c in convs) == sorted(["c-1", fresh, "main"])
        assert sorted(keys(g)) == sorted(["agent:main:c-1", "agent:main:" + fresh, "agent:main:main"])
        one = http(g, "GET", "/api/v1/conversations/C-1", token=g.admin_token)
        assert one.status_code == 200 and one.json()["id"] == "C-1", one.text
        assert [m["content"] for m in one.json()["messages"]] == ["one", "ok", "two", "ok"]
        # `main` is the agent's main session
        main = http(g, "GET", "/api/v1/sessions/agent:main:main", token=g.admin_token).json()
        assert [m["content"] for m in main["messages"]] == ["four", "ok"]
        assert http(g, "GET", "/api/v1/sessions/S1", token=g.admin_token).status_code == 404
        r = http(g, "GET", "/api/v1/sessions/agent:main", token=g.admin_token)
        assert r.status_code == 400 and r.json()["message"] == 'malformed session key "agent:main"', r.text
        # a key too long once in its namespace is refused as that, not as malformed
        long_key = "k" * 505
        for path in (f"/api/v1/sessions/{long_key}", f"/api/v1/runs?sessionKey={long_key}"):
            r = http(g, "GET", path, token=g.admin_token)
            assert r.status_code == 400 and "at most 512 bytes" in r.json()["message"], (path, r.text)
        # seed 004: looked up canonically, echoed as sent
        info = http(g, "GET", "/api/sessions/C-1", token=g.admin_token)
        assert info.status_code == 200 and info.json()["key"] == "C-1", info.text
        r = http(g, "POST", "/api/messages/send", token=g.admin_token, json={"sessionId": "C-1", "text": "hey"})
        assert r.status_code == 200 and r.json()["sessionId"] == "C-1", r.text
        r = http(g, "POST", "/api/sessions/C-1/reset", token=g.admin_token)
        assert r.status_code == 200 and r.json()["sessionId"] == "C-1" and r.json()["key"] == "agent:main:c-1"
        r = http(g, "DELETE", "/api/v1/conversations/C-1", token=g.admin_token)
        assert r.status_code == 200, r.text
        assert "agent:main:c-1" not in keys(g)
        # /tools/invoke resolves its sessionKey as OpenClaw does
        r = http(g, "POST", "/tools/invoke", token=g.admin_token,
                 json={"tool": "current_time", "sessionKey": "agent:main"})
        assert r.status_code == 400 and "malformed session key" in r.json()["error"]["message"], r.text
        r = http(g, "POST", "/tools/invoke", token=g.admin_token, json={"tool": "current_time", "sessionKey": "S1"})
        assert r.status_code == 200, r.text
