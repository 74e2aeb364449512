"""Sessions, conversations, models and runs over REST and through the CLI
(issue #3 item 8, issue #4 items 1 and 4): /api/v1/sessions[/:key[/reset]],
/api/v1/conversations[/:id], /api/v1/models, /api/v1/runs[/:id], and
`chela sessions|models|runs`."""

import json
import re

import pytest

from e2elib import assert_error, http
from fakes.llm import FakeLLM
from test_rest_chat import SSE, chat, run_status, start_agent_gateway, turns, wait_token

ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
CLI_ROW_KEYS = {"key", "model", "inputTokens", "outputTokens", "totalTokens", "contextTokens",
                "estimatedCostUsd", "updatedAt"}
REST_ROW_KEYS = CLI_ROW_KEYS | {"sessionId", "createdAt", "label", "channel"}
RUN_KEYS = {"runId", "sessionKey", "source", "status", "createdAt", "startedAt", "finishedAt", "durationMs",
            "model", "usage", "costUsd", "error", "errorClass", "result"}


@pytest.fixture
def fake():
    with FakeLLM("openai", default={"text": "default reply", "usage": {"input": 10, "output": 4}}) as f:
        yield f


@pytest.fixture
def gw(gateway_factory, fake):
    # Priced, so cost figures are not all zero.
    return start_agent_gateway(gateway_factory, fake, {"models": {"providers": {"fake": {"models": [
        {"id": "fake-model", "contextWindow": 64000, "maxTokens": 2048,
         "pricing": {"input": 3.0, "output": 15.0}}]}}}})


def say(gw, key, message):
    r = chat(gw, {"message": message, "conversationId": key})
    assert r.status_code == 200, r.text
    return r.json()


def get(gw, path):
    return http(gw, "GET", path, token=gw.admin_token)


def canon(key):
    """The key OpenClaw stores and answers with for a bare key a client sent."""
    return "agent:main:" + key.lower()


# ---------------------------------------------------------------- REST


def test_list_and_show_sessions(gw, fake):
    say(gw, "s-one", "first")
    say(gw, "s-one", "second")
    say(gw, "s-two", "other")
    r = get(gw, "/api/v1/sessions")
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["nextCursor"] is None
    rows = {s["key"]: s for s in j["sessions"]}
    assert set(rows) == {canon("s-one"), canon("s-two")}
    assert [s["key"] for s in j["sessions"]] == [canon("s-two"), canon("s-one")]  # most recent first
    one = rows[canon("s-one")]
    assert REST_ROW_KEYS <= set(one), one
    assert one["inputTokens"] == 20 and one["outputTokens"] == 8 and one["totalTokens"] == 28
    assert one["contextTokens"] > 0
    assert one["model"] == "fake/fake-model"
    assert one["estimatedCostUsd"] == pytest.approx((20 * 3.0 + 8 * 15.0) / 1e6)
    assert ISO_RE.match(one["updatedAt"]) and ISO_RE.match(one["createdAt"])
    r = get(gw, "/api/v1/sessions/s-one")
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["key"] == canon("s-one") and s["sessionId"] == one["sessionId"]
    msgs = s["messages"]
    assert [(m["seq"], m["role"], m["content"]) for m in msgs] == [
        (1, "user", "first"), (2, "assistant", "default reply"), (3, "user", "second"),
        (4, "assistant", "default reply")]
    assert msgs[1]["usage"]["inputTokens"] == 10 and msgs[1]["model"] == "fake-model"
    assert all(ISO_RE.match(m["createdAt"]) for m in msgs)


def test_conversations_alias(gw, fake):
    say(gw, "c-alias", "hello")
    j = get(gw, "/api/v1/conversations").json()
    assert [c["id"] for c in j["conversations"]] == ["c-alias"]
    assert "key" not in j["conversations"][0]
    c = get(gw, "/api/v1/conversations/c-alias").json()
    assert c["id"] == "c-alias" and [m["role"] for m in c["messages"]] == ["user", "assistant"]
    r = http(gw, "DELETE", "/api/v1/conversations/c-alias", token=gw.admin_token)
    assert r.status_code == 200 and r.json() == {"ok": True, "deleted": True}
    assert_error(get(gw, "/api/v1/conversations/c-alias"), 404, "not_found")


def test_pagination(gw, fake):
    keys = {f"page-{i}" for i in range(5)}
    for k in sorted(keys):
        say(gw, k, "hi")
    seen, cursor, pages = [], None, 0
    while True:
        q = "/api/v1/sessions?limit=2" + (f"&cursor={cursor}" if cursor else "")
        j = get(gw, q).json()
        assert len(j["sessions"]) <= 2
        seen += [s["key"] for s in j["sessions"]]
        pages += 1
        cursor = j["nextCursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and pages < 10
    assert pages == 3 and sorted(seen) == sorted(canon(k) for k in keys) and len(seen) == 5
    for bad in ("limit=0", "limit=1001", "limit=x", "cursor=abc", "cursor=-1"):
        assert_error(get(gw, f"/api/v1/sessions?{bad}"), 400, "invalid_request")


def test_path_parameters_are_url_decoded(gw, fake):
    key = "team:a/b+c"
    say(gw, key, "encoded")
    r = get(gw, "/api/v1/sessions/team:a%2Fb%2Bc")
    assert r.status_code == 200, r.text
    assert r.json()["key"] == canon(key)
    # '+' in a path is a plus, not a space.
    assert get(gw, "/api/v1/sessions/team%3Aa%2Fb+c").json()["key"] == canon(key)
    # requests would re-quote a bad escape: send these raw.
    for path in ("/api/v1/sessions/bad%zz", "/api/v1/sessions/nul%00x", "/api/v1/sessions/cut%4"):
        with gw.raw() as c:
            c.send(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gw.admin_token}\r\n\r\n".encode())
            assert_error(c.read_response(), 400, "invalid_request")


def test_unknown_sessions(gw):
    assert_error(get(gw, "/api/v1/sessions/nope"), 404, "not_found")
    assert_error(http(gw, "POST", "/api/v1/sessions/nope/reset", token=gw.admin_token), 404, "not_found")
    r = http(gw, "DELETE", "/api/v1/sessions/nope", token=gw.admin_token)
    assert r.status_code == 200 and r.json() == {"ok": True, "deleted": False}


def test_reset_starts_a_new_transcript(gw, fake):
    say(gw, "s-reset", "remember me")
    old = get(gw, "/api/v1/sessions/s-reset").json()
    r = http(gw, "POST", "/api/v1/sessions/s-reset/reset", token=gw.admin_token)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["ok"] is True and j["previousSessionId"] == old["sessionId"] and j["sessionId"] != old["sessionId"]
    new = get(gw, "/api/v1/sessions/s-reset").json()
    assert new["messages"] == [] and new["inputTokens"] == 0 and new["sessionId"] == j["sessionId"]
    say(gw, "s-reset", "fresh start")
    assert turns(fake.requests[-1]) == [("user", "fresh start")]


def test_delete_session(gw, fake):
    say(gw, "s-del", "bye")
    r = http(gw, "DELETE", "/api/v1/sessions/s-del", token=gw.admin_token)
    assert r.status_code == 200 and r.json() == {"ok": True, "deleted": True}
    assert_error(get(gw, "/api/v1/sessions/s-del"), 404)
    assert canon("s-del") not in [s["key"] for s in get(gw, "/api/v1/sessions").json()["sessions"]]
    # Runs are history and stay.
    assert get(gw, "/api/v1/runs?sessionKey=s-del").json()["runs"]


def test_delete_with_a_live_run(gw, fake):
    """The live run is aborted and its outcome saved before the row goes:
    the run ends `aborted` (not stuck `running`, which would replay it at
    the next start) and does not bring the session back."""
    fake.push({"tool_calls": [{"name": "current_time", "arguments": {}}], "usage": {"input": 50, "output": 5}},
              {"text": "too late", "first_byte_delay": 3})
    s = SSE(gw, "/api/v1/chat/stream", {"message": "what time is it", "conversationId": "s-live"}, gw.admin_token)
    try:
        run_id = s.next_events()[0][2]["runId"]
        fake.wait_requests(2)  # the tool round is done; the second call hangs
        r = http(gw, "DELETE", "/api/v1/sessions/s-live", token=gw.admin_token)
        assert r.status_code == 200 and r.json()["deleted"] is True, r.text
        last = [p for _, k, p in s.read_all() if k == "data"][-1]
    finally:
        s.close()
    assert last["type"] == "error" and last["status"] == "aborted"
    run = get(gw, f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "aborted" and run["finishedAt"], run
    assert run["usage"]["inputTokens"] == 50
    assert_error(get(gw, "/api/v1/sessions/s-live"), 404)
    assert "saving its outcome failed" not in gw.stderr()


def test_models_route(gw):
    j = get(gw, "/api/v1/models").json()
    assert j["default"] == "fake/fake-model"
    m = next(m for m in j["models"] if m["id"] == "fake/fake-model")
    assert m["provider"] == "fake" and m["contextWindow"] == 64000 and m["maxTokens"] == 2048
    assert m["pricing"]["input"] == 3.0 and m["pricing"]["output"] == 15.0
    assert m["isDefault"] is True


def test_runs_routes(gw, fake):
    done = say(gw, "s-runs", "track me")
    run = run_status(gw, done["runId"], "ok")
    assert RUN_KEYS <= set(run), run
    assert run["status"] == "ok" and run["source"] == "api" and run["sessionKey"] == canon("s-runs")
    assert run["result"] == {"text": "default reply"}
    assert run["usage"]["inputTokens"] == 10 and run["usage"]["outputTokens"] == 4
    assert run["durationMs"] >= 0 and ISO_RE.match(run["finishedAt"])
    assert run["costUsd"] == pytest.approx((10 * 3.0 + 4 * 15.0) / 1e6)
    assert run["error"] is None and run["live"] is False
    assert "request" not in run  # a caller's message may carry secrets
    fake.push({"error_kind": "auth"})
    r = chat(gw, {"message": "fail", "conversationId": "s-runs"})
    failed = r.json()["runId"]
    run_status(gw, failed, "error")
    j = get(gw, "/api/v1/runs?status=error").json()
    assert [x["runId"] for x in j["runs"]] == [failed] and j["runs"][0]["errorClass"] == "auth"
    j = get(gw, "/api/v1/runs?sessionKey=s-runs&limit=1").json()
    assert len(j["runs"]) == 1 and j["runs"][0]["runId"] == failed and j["nextCursor"]
    assert_error(get(gw, "/api/v1/runs?status=bogus"), 400, "invalid_request")
    assert_error(get(gw, "/api/v1/runs/unknown-run"), 404, "not_found")


# ---------------------------------------------------------------- CLI

@pytest.mark.cli
def test_cli_sessions_list(gw, fake):
    say(gw, "cli-a", "one")
    say(gw, "cli-b", "two")
    p = gw.cli("sessions", "list", "--json")
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    assert j["count"] == 2
    for row in j["sessions"]:
        assert set(row) == CLI_ROW_KEYS, row
    assert {r["key"] for r in j["sessions"]} == {canon("cli-a"), canon("cli-b")}
    assert j["sessions"][0]["inputTokens"] == 10
    p = gw.cli("sessions", "list")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["KEY", "MODEL", "IN", "OUT", "TOTAL", "CONTEXT", "COST-USD", "UPDATED"]
    assert any(l.startswith(canon("cli-a")) and "fake/fake-model" in l for l in lines)


@pytest.mark.cli
def test_cli_sessions_show_reset_delete(gw, fake):
    say(gw, "cli-s", "what is two plus two")
    p = gw.cli("sessions", "show", "cli-s")
    assert p.returncode == 0, p.stderr
    assert "what is two plus two" in p.stdout and "default reply" in p.stdout
    j = json.loads(gw.cli("sessions", "show", "cli-s", "--json").stdout)
    assert j["key"] == canon("cli-s") and len(j["messages"]) == 2
    p = gw.cli("sessions", "reset", "cli-s")
    assert p.returncode == 0 and p.stdout.startswith("Reset cli-s"), (p.stdout, p.stderr)
    assert json.loads(gw.cli("sessions", "show", "cli-s", "--json").stdout)["messages"] == []
    p = gw.cli("sessions", "delete", "cli-s")
    assert p.returncode == 0 and "Deleted cli-s" in p.stdout, p.stderr
    p = gw.cli("sessions", "delete", "cli-s")
    assert p.returncode == 1 and "no session" in p.stderr
    p = gw.cli("sessions", "show", "cli-s")
    assert p.returncode == 1 and "404" in p.stderr
    p = gw.cli("sessions", "reset", "cli-s")
    assert p.returncode == 1


@pytest.mark.cli
def test_cli_sessions_key_with_reserved_characters(gw, fake):
    key = "auto-trader:openclaw:x/y+z"
    say(gw, key, "special")
    p = gw.cli("sessions", "show", key, "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["key"] == canon(key)


@pytest.mark.cli
def test_cli_usage_errors(gw):
    for args in (("sessions",), ("sessions", "bogus"), ("sessions", "show"), ("sessions", "show", "a", "b"),
                 ("sessions", "list", "--limit", "0"), ("models",), ("models", "bogus"), ("runs",),
                 ("runs", "show"), ("runs", "list", "--limit", "5000")):
        p = gw.cli(*args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
    for args in (("sessions", "--help"), ("sessions", "list", "--help"), ("models", "list", "--help"),
                 ("runs", "--help"), ("runs", "show", "--help")):
        p = gw.cli(*args)
        assert p.returncode == 0 and "Usage" in p.stdout, (args, p.stdout, p.stderr)


@pytest.mark.cli
def test_cli_models_list(gw):
    p = gw.cli("models", "list")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].split()[0] == "MODEL"
    line = next(l for l in p.stdout.splitlines() if l.startswith("fake/fake-model"))
    assert "64000" in line and "default" in line
    j = json.loads(gw.cli("models", "list", "--json").stdout)
    assert j["default"] == "fake/fake-model"


@pytest.mark.cli
def test_cli_runs_list_and_show(gw, fake):
    done = say(gw, "cli-runs", "show me")
    run_status(gw, done["runId"], "ok")
    p = gw.cli("runs", "show", done["runId"])
    assert p.returncode == 0, p.stderr
    assert "Status:      ok" in p.stdout and "default reply" in p.stdout and "cli-runs" in p.stdout
    j = json.loads(gw.cli("runs", "show", done["runId"], "--json").stdout)
    assert j["runId"] == done["runId"] and j["result"]["text"] == "default reply"
    p = gw.cli("runs", "list", "--status", "ok", "--json")
    assert p.returncode == 0, p.stderr
    assert done["runId"] in [r["runId"] for r in json.loads(p.stdout)["runs"]]
    p = gw.cli("runs", "list", "--status", "error", "--json")
    assert json.loads(p.stdout)["runs"] == []
    p = gw.cli("runs", "list")
    assert p.returncode == 0 and done["runId"] in p.stdout
    p = gw.cli("runs", "list", "--status", "nonsense")
    assert p.returncode == 1 and "status must be" in p.stderr
    p = gw.cli("runs", "show", "no-such-run")
    assert p.returncode == 1 and "404" in p.stderr


@pytest.mark.cli
def test_cli_read_token_cannot_reset(gw):
    tok = gw.create_token("reader", "read")["token"]
    wait_token(gw, tok)  # a CLI-created token is seen within a refresh
    p = gw.cli("sessions", "list", "--token", tok)
    assert p.returncode == 0, p.stderr
    p = gw.cli("sessions", "reset", "x", "--token", tok)
    assert p.returncode == 1 and "403" in p.stderr and "admin" in p.stderr
