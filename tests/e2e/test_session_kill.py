"""POST /sessions/<key>/kill (OpenClaw v4): stop a session's live runs.
Admin scope; 200 {ok, killed}; 404 {ok: false, error: {type: "not_found"}}
for an unknown session; the stopped run ends `aborted` and the session
stays usable."""

import time

from agentlib import chat, in_thread, list_runs, llm_config, wait_run
from e2elib import http
from fakes.llm import FakeLLM


def kill(g, key, token=None, **kw):
    return http(g, "POST", f"/sessions/{key}/kill", token=token or g.admin_token, **kw)


def test_kill_stops_the_live_run(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "slow answer", "delay": 8})
        fake.push({"text": "after the kill"})
        g = gateway_factory(llm_config({"p": fake}))
        t, box = in_thread(chat, g, "take your time", "kill-me", timeout=20)
        deadline = time.monotonic() + 10
        runs = []
        while time.monotonic() < deadline and not runs:
            runs = list_runs(g, sessionKey="kill-me", status="running")
            time.sleep(0.05)
        assert runs, "the run never started"
        r = kill(g, "kill-me")
        assert r.status_code == 200 and r.json() == {"ok": True, "killed": True}, r.text
        assert wait_run(g, runs[0]["runId"])["status"] == "aborted"
        t.join(10)
        assert box["r"].status_code == 409, box  # the REST caller hears its run was aborted
        # nothing left to stop; the session still works
        assert kill(g, "kill-me").json() == {"ok": True, "killed": False}
        assert chat(g, "again", "kill-me").json()["content"] == "after the kill"


def test_kill_refusals(gateway_factory):
    with FakeLLM("openai") as fake:
        g = gateway_factory(llm_config({"p": fake}))
        r = kill(g, "no-such-session")
        assert r.status_code == 404, r.text
        assert r.json() == {"ok": False, "error": {"type": "not_found", "message": "Session not found: no-such-session"}}
        assert kill(g, "agent%3Amain%3Amain", params={"agentId": "ops"}).status_code == 400
        assert http(g, "GET", "/sessions/x/kill", token=g.admin_token).headers.get("Allow") == "POST"
        chat_tok = g.create_token("chatter", "chat")["token"]
        time.sleep(1.2)  # the CLI wrote it to the db: the cache picks it up within a second
        assert kill(g, "x", token=chat_tok).status_code == 403
        assert http(g, "POST", "/sessions/x/kill").status_code == 401
