"""OpenClaw v4's hook `sessionMode`: "isolated" (the default) starts the
session afresh for each run, so a reused sessionKey carries no earlier
turn to the model; "persistent" continues the session's transcript.  The
earlier transcript stays stored under the old session id (as a reset leaves it).  `accountId` is
accepted and kept with the run's delivery target."""

import signal

from agentlib import session, start, wait_run
from fakes.llm import FakeLLM
from hooklib import hook, hooks_config


def user_texts(req):
    return [m["content"] for m in req.json["messages"] if m["role"] == "user"]


def run_hook(g, body):
    r = hook(g, body=body)
    assert r.status_code == 202, r.text
    assert wait_run(g, r.json()["runId"])["status"] == "ok"
    return r.json()["runId"]


def test_isolated_by_default_and_persistent_on_request(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "noted", "times": -1})
        # OpenClaw v4: a direct request continues a session only under allowed prefixes
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"allowedSessionKeyPrefixes": ["trader:"]}))
        run_hook(g, {"message": "first: the code is 1234", "sessionKey": "trader:a"})
        sid1 = session(g, "trader:a")["sessionId"]
        run_hook(g, {"message": "second", "sessionKey": "trader:a"})
        assert user_texts(fake.wait_requests(2)[1]) == ["second"]  # nothing of the first run
        sid2 = session(g, "trader:a")["sessionId"]
        assert sid2 != sid1
        run_hook(g, {"message": "explicit", "sessionKey": "trader:a", "sessionMode": "isolated"})
        assert user_texts(fake.wait_requests(3)[2]) == ["explicit"]
        # persistent: the run continues the session's transcript
        run_hook(g, {"message": "third", "sessionKey": "trader:a", "sessionMode": "persistent"})
        assert user_texts(fake.wait_requests(4)[3]) == ["explicit", "third"]
        run_hook(g, {"message": "fourth", "sessionKey": "trader:a", "sessionMode": "persistent"})
        assert user_texts(fake.wait_requests(5)[4]) == ["explicit", "third", "fourth"]
        assert session(g, "trader:a")["sessionId"] not in (sid1, sid2)


def test_bad_session_mode_and_account_id(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok", "times": -1})
        g = start(gateway_factory, hooks_config({"p": fake}))
        for bad in ("shared", 1, True, ""):
            r = hook(g, body={"message": "x", "sessionMode": bad})
            assert r.status_code == 400, (bad, r.text)
            assert r.json() == {"ok": False, "error": "sessionMode must be isolated or persistent"}
        r = hook(g, body={"message": "x", "sessionMode": None, "accountId": "biz", "channel": "webhook",
                          "to": "ops"})
        assert r.status_code == 202, r.text
        r = hook(g, body={"message": "x", "accountId": "a" * 500})
        assert r.status_code == 400 and "accountId" in r.json()["error"]
        # OpenClaw v4's delivery rules for an account, in its words
        for body, err in (({"accountId": ""}, "accountId must be a non-empty string for hook delivery"),
                          ({"accountId": 5}, "accountId must be a non-empty string for hook delivery"),
                          ({"accountId": "biz", "channel": "webhook"}, "accountId requires channel and to for hook delivery"),
                          ({"accountId": "biz", "to": "ops"}, "accountId requires channel and to for hook delivery"),
                          ({"accountId": "biz", "channel": "last", "to": "ops"},
                           "channel must name a concrete channel for hook delivery")):
            r = hook(g, body=dict(body, message="x"))
            assert r.status_code == 400 and r.json() == {"ok": False, "error": err}, (body, r.text)
        assert hook(g, body={"message": "x", "accountId": "biz", "deliver": False}).status_code == 202


def test_mapping_session_mode(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "seen", "times": -1})
        mappings = [{"id": "gh", "match": {"path": "gh"}, "sessionKey": "hook:gh:{{payload.repo}}",
                     "messageTemplate": "event {{payload.n}}", "sessionMode": "persistent"},
                    {"id": "ci", "match": {"path": "ci"}, "sessionKey": "hook:ci", "messageTemplate": "ci {{payload.n}}"}]
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"mappings": mappings}))
        for n in (1, 2):
            r = hook(g, path="/hooks/gh", body={"repo": "r", "n": n})
            assert r.status_code == 202 and wait_run(g, r.json()["runId"])["status"] == "ok"
        assert user_texts(fake.wait_requests(2)[1]) == ["event 1", "event 2"]
        for n in (1, 2):
            r = hook(g, path="/hooks/ci", body={"n": n})
            assert r.status_code == 202 and wait_run(g, r.json()["runId"])["status"] == "ok"
        assert user_texts(fake.wait_requests(4)[3]) == ["ci 2"]


def test_isolated_replay_keeps_the_session_it_started(gateway_factory):
    """Killed mid-call and replayed: the run does not start yet another
    session, so its own user message and reply stay together."""
    with FakeLLM("openai") as fake:
        cfg = hooks_config({"p": fake})
        cfg["limits"] = {"shutdownGraceMs": 300}
        g = start(gateway_factory, cfg)
        fake.push({"text": "one"})
        run_hook(g, {"message": "earlier", "sessionKey": "trader:k"})
        fake.push({"text": "late", "first_byte_delay": 8}, {"text": "replayed"})
        r = hook(g, body={"message": "killed", "sessionKey": "trader:k"})
        assert r.status_code == 202
        run_id = r.json()["runId"]
        assert user_texts(fake.wait_requests(2, timeout=10)[1]) == ["killed"]
        sid = session(g, "trader:k")["sessionId"]
        g.signal(signal.SIGKILL)
        assert g.wait(15) is not None
        g2 = gateway_factory.new(cfg, state=g.state).start()
        g2.admin_token = g.admin_token
        assert wait_run(g2, run_id, timeout=15)["status"] == "ok"
        assert user_texts(fake.wait_requests(3, timeout=10)[2]) == ["killed"]
        assert session(g2, "trader:k")["sessionId"] == sid


def test_persistent_needs_a_named_session(gateway_factory):
    """OpenClaw v4's rules, in its words: persistent needs a sessionKey, and a
    direct request needs hooks.allowedSessionKeyPrefixes; a mapping needs
    a sessionKey or hooks.defaultSessionKey."""
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok", "times": -1})
        mappings = [{"id": "p", "match": {"path": "p"}, "messageTemplate": "m", "sessionMode": "persistent"},
                    {"id": "k", "match": {"path": "k"}, "messageTemplate": "m", "sessionMode": "persistent",
                     "sessionKey": "hook:k"}]
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"mappings": mappings}))
        for body, err in (({"sessionMode": "persistent"}, "sessionKey is required when sessionMode is persistent"),
                          ({"sessionMode": "persistent", "sessionKey": "x:1"},
                           "hooks.allowedSessionKeyPrefixes is required when direct hook sessionMode is persistent")):
            r = hook(g, body=dict(body, message="x"))
            assert r.status_code == 400 and r.json() == {"ok": False, "error": err}, r.text
        r = hook(g, path="/hooks/p", body={})
        assert r.status_code == 400 and r.json()["error"] == (
            "sessionKey or hooks.defaultSessionKey is required when mapped hook sessionMode is persistent"), r.text
        assert hook(g, path="/hooks/k", body={}).status_code == 202  # the mapping names its session
        assert hook(g, body={"message": "x", "sessionKey": "x:1"}).status_code == 202  # isolated: fine
        g.stop()
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"mappings": mappings, "defaultSessionKey": "hook:d",
                                                                    "allowedSessionKeyPrefixes": ["hook:", "x:"]}))
        assert hook(g, path="/hooks/p", body={}).status_code == 202
        assert hook(g, body={"message": "x", "sessionKey": "x:1", "sessionMode": "persistent"}).status_code == 202
