"""/hooks end to end (issue #4 item 1, OpenClaw spec section 3, seed 000).

The auto_trader request exactly as mgh3326/auto_trader sends it (httpx,
timeout=10, Bearer, the four keys) against a slow fake LLM; the
agent-driven callback of seed 000 and the native raw callback into a
receiver that implements auto_trader's callback contract; every refusal;
idempotency; waitForCompletion; mappings and templates; /hooks/wake; and
the /metrics counters.
"""

import asyncio
import json
import re
import statistics
import time

import httpx
import pytest

from agentlib import MODEL, get_run, list_runs, session, start, turns, wait_run
from e2elib import http
from fakes.llm import FakeLLM
from hooklib import (CALLBACK_TOKEN, HOOK_TOKEN, CallbackReceiver, analysis_result, auto_trader_payload, hook,
                     hooks_config, metric)


def _user_texts(fake):
    """The newest user turn of each upstream request (the run's message;
    earlier turns of the session come along as history)."""
    out = []
    for req in fake.requests:
        users = [t for r, t in turns(fake.provider, req.json) if r == "user"]
        if users:
            out.append(users[-1])
    return out


def _metrics(g):
    r = http(g, "GET", "/metrics", token=g.admin_token)
    assert r.status_code == 200, r.text
    return r.text


# ---------------------------------------------------------------- auto_trader


async def _auto_trader_post(url, payload, token):
    """OpenClawClient.request_analysis: httpx.AsyncClient(timeout=10),
    json=payload, Content-Type and Bearer; success is raise_for_status()."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(timeout=10, trust_env=False) as cli:
        t0 = time.monotonic()
        res = await cli.post(url, json=payload, headers=headers)
        dt = time.monotonic() - t0
        res.raise_for_status()
        return res, dt


def test_auto_trader_request_is_fast_and_byte_identical(gateway_factory):
    with FakeLLM("openai") as fake, CallbackReceiver() as rx:
        fake.push({"text": "analysing", "first_byte_delay": 3, "times": -1})
        g = start(gateway_factory, hooks_config({"p": fake}))
        url = f"http://127.0.0.1:{g.port}/hooks/agent"
        sent, times = [], []
        for _ in range(5):
            rid, payload = auto_trader_payload(rx.url)
            res, dt = asyncio.run(_auto_trader_post(url, payload, HOOK_TOKEN))
            assert res.status_code == 202, res.text
            body = res.json()
            assert body["ok"] is True and body["runId"]
            sent.append((rid, payload, body["runId"]))
            times.append(dt)
        # every 2xx came while the model was still thinking (3 s first byte)
        assert statistics.median(times) < 0.1, f"hook answers took {times}"
        assert max(times) < 1.0, times
        fake.wait_requests(5, timeout=10)
        upstream = _user_texts(fake)
        for rid, payload, run_id in sent:
            assert payload["message"] in upstream, "the message did not reach the model byte for byte"
            run = get_run(g, run_id)
            assert run["sessionKey"] == f"agent:main:auto-trader:openclaw:{rid}" and run["source"] == "hook"
        # byte for byte: the trailing newline, the quotes, the JSON and the Korean text included
        assert upstream.count(sent[0][1]["message"]) == 1
        assert sent[0][1]["message"].endswith("}\n")


def test_auto_trader_retry_resends_same_body(gateway_factory):
    # tenacity re-sends the identical body (same sessionKey) after a failure
    # or timeout: every try must be accepted
    with FakeLLM("openai") as fake, CallbackReceiver() as rx:
        fake.push({"text": "done", "times": -1})
        g = start(gateway_factory, hooks_config({"p": fake}))
        url = f"http://127.0.0.1:{g.port}/hooks/agent"
        rid, payload = auto_trader_payload(rx.url)
        ids = []
        for _ in range(3):
            res, _dt = asyncio.run(_auto_trader_post(url, payload, HOOK_TOKEN))
            assert res.status_code == 202, res.text
            ids.append(res.json()["runId"])
        assert len(set(ids)) == 3
        for run_id in ids:
            assert wait_run(g, run_id)["status"] == "ok"
        assert session(g, f"auto-trader:openclaw:{rid}")["key"] == f"agent:main:auto-trader:openclaw:{rid}"


def test_agent_driven_callback(gateway_factory):
    # seed 000 as written: the model follows the message and posts the
    # analysis with http_request; the first try has a float confidence and
    # gets 422 (strict schema), the second succeeds
    with FakeLLM("openai") as fake, CallbackReceiver() as rx:
        rid, payload = auto_trader_payload(rx.url)
        call = {"method": "POST", "url": rx.url,
                "headers": {"Content-Type": "application/json", "Authorization": f"Bearer {CALLBACK_TOKEN}"}}
        fake.push({"tool_calls": [{"name": "http_request", "arguments": dict(call, body=analysis_result(rid, 0.62))}]},
                  {"tool_calls": [{"name": "http_request", "arguments": dict(call, body=analysis_result(rid, 62))}]},
                  {"text": "Callback delivered."})
        g = start(gateway_factory, hooks_config({"p": fake}, tools={"http": {"allowHosts": [rx.hostport]}}))
        r = hook(g, body=payload)
        assert r.status_code == 202, r.text
        run = wait_run(g, r.json()["runId"], timeout=15)
        assert run["status"] == "ok" and run["result"]["text"] == "Callback delivered.", run
        got = rx.wait(2)
        assert [x["status"] for x in got] == [422, 200]
        stored = rx.wait(1, stored=True)[0]
        assert stored["request_id"] == rid and stored["confidence"] == 62
        assert CALLBACK_TOKEN not in g.stderr(), "the callback token reached the gateway log"


def test_callback_receiver_contract(gateway_factory):
    # the receiver itself: constant-time token check and 401/422 as auto_trader answers
    with CallbackReceiver() as rx:
        import requests
        s = requests.Session()
        s.trust_env = False
        ok = analysis_result("r1")
        assert s.post(rx.url, json=ok).status_code == 401
        assert s.post(rx.url, json=ok, headers={"Authorization": "Bearer wrong"}).status_code == 401
        r = s.post(rx.url, json=ok, headers={"Authorization": "Basic x", "X-OpenClaw-Token": CALLBACK_TOKEN})
        assert r.status_code == 200 and r.json()["request_id"] == "r1"
        r = s.post(rx.url, json=dict(ok, confidence=0.62), headers={"Authorization": f"Bearer {CALLBACK_TOKEN}"})
        assert r.status_code == 422
        r = s.post(rx.url, json=dict(ok, confidence=101), headers={"Authorization": f"Bearer {CALLBACK_TOKEN}"})
        assert r.status_code == 422


def test_native_raw_callback_with_bearer_from_env(gateway_factory):
    with FakeLLM("openai") as fake, CallbackReceiver() as rx:
        rid, payload = auto_trader_payload(rx.url, callback_token=None)
        # the model answers with the JSON in a fence; raw mode posts the JSON itself
        fake.push({"text": "```json\n" + json.dumps(analysis_result(rid), ensure_ascii=False) + "\n```"})
        # configured credentials go to hooks.callback.url's origin only
        cfg = hooks_config({"p": fake}, hooks={"callback": {"url": rx.url,
                                                             "headers": {"Authorization": "Bearer ${CB_TOKEN}"}}})
        g = start(gateway_factory, cfg, env={"CB_TOKEN": CALLBACK_TOKEN})
        payload["callback"] = {"url": rx.url, "mode": "raw"}
        r = hook(g, body=payload)
        assert r.status_code == 202, r.text
        run_id = r.json()["runId"]
        got = rx.wait(1, timeout=15)[0]
        assert got["status"] == 200, got
        assert got["headers"]["authorization"] == f"Bearer {CALLBACK_TOKEN}"
        assert got["json"] == analysis_result(rid)
        assert got["headers"].get("x-openclaw-delivery")
        run = wait_run(g, run_id)
        deadline = time.monotonic() + 5
        while "delivery" not in run and time.monotonic() < deadline:
            time.sleep(0.05)
            run = get_run(g, run_id)
        cb = run["delivery"]["callback"]
        assert cb["mode"] == "raw" and cb["state"] == "queued" and cb["deliveryId"], run
        assert CALLBACK_TOKEN not in json.dumps(run)
        assert CALLBACK_TOKEN not in g.stderr()


def test_raw_callback_invalid_json_is_recorded_not_posted(gateway_factory):
    with FakeLLM("openai") as fake, CallbackReceiver() as rx:
        fake.push({"text": "Here is my analysis: buy, confidence 0.62"})
        g = start(gateway_factory, hooks_config({"p": fake}))
        r = hook(g, body={"message": "analyse", "callback": {"url": rx.url, "mode": "raw"}})
        assert r.status_code == 202, r.text
        run_id = r.json()["runId"]
        wait_run(g, run_id)
        deadline = time.monotonic() + 5
        run = get_run(g, run_id)
        while "delivery" not in run and time.monotonic() < deadline:
            time.sleep(0.05)
            run = get_run(g, run_id)
        assert run["delivery"]["callback"]["state"] == "invalid_json", run
        time.sleep(0.3)
        assert rx.received == []
        assert metric(_metrics(g), "chela_hook_deliveries_total", result="invalid_json") == 1


def test_envelope_callback(gateway_factory):
    with FakeLLM("openai") as fake, CallbackReceiver(path="/cb") as rx:
        rx.kind = "django"
        rx.secret = "s3cret"
        fake.push({"text": '{"answer": 42}', "usage": {"input": 7, "output": 3}})
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"callback": {"url": rx.url, "secret": "s3cret"}}))
        r = hook(g, body={"message": "compute", "name": "Calc", "sessionKey": "calc:1",
                          "callback": {"url": rx.url}})
        assert r.status_code == 202, r.text
        got = rx.wait(1, timeout=15)[0]
        assert got["status"] == 200, got     # the signature verified as seed 004 computes it
        env = got["json"]
        assert env["runId"] == r.json()["runId"] and env["sessionKey"] == "agent:main:calc:1" and env["name"] == "Calc"
        assert env["status"] == "ok" and env["text"] == '{"answer": 42}' and env["json"] == {"answer": 42}
        assert env["usage"]["inputTokens"] == 7 and env["model"] == MODEL and env["finishedAt"]


# ---------------------------------------------------------------- refusals


def test_refusals(gateway_factory):
    with FakeLLM("openai") as fake:
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"maxBodyBytes": 2048}))
        r = hook(g, path=f"/hooks/agent?token={HOOK_TOKEN}", body={"message": "x"}, token=None)
        assert r.status_code == 400
        assert r.text == ("Hook token must be provided via Authorization: Bearer <token> or X-OpenClaw-Token header "
                          "(query parameters are not allowed).")
        assert hook(g, body={"message": "x"}, token=None).status_code == 401
        r = hook(g, body={"message": "x"}, token="wrong")
        assert r.status_code == 401 and r.text == "Unauthorized"
        r = http(g, "POST", "/hooks/agent", headers={"x-openclaw-token": HOOK_TOKEN}, json={"message": "x"})
        assert r.status_code == 202, r.text
        r = http(g, "GET", "/hooks/agent", headers={"Authorization": f"Bearer {HOOK_TOKEN}"})
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        r = http(g, "PUT", "/hooks/wake", headers={"Authorization": f"Bearer {HOOK_TOKEN}"}, data="{}")
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        r = hook(g, body={"message": "x" * 4000})
        assert r.status_code == 413 and r.json()["ok"] is False
        r = hook(g, data=b'{"message": "unterminated', headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["ok"] is False and "invalid JSON" in r.json()["error"]
        assert hook(g, data=b'["message"]').status_code == 400
        assert hook(g, body={"message": "   \n"}).json() == {"ok": False, "error": "message required"}
        assert hook(g, body={"name": "no message"}).status_code == 400
        for key in ("agent:main:main", "cron:x", "subagent:y", "acp:z"):
            r = hook(g, body={"message": "x", "sessionKey": key})
            assert r.status_code == 400 and "reserved" in r.json()["error"], key
        r = hook(g, body={"message": "x", "model": "no-such-model"})
        assert r.status_code == 400 and "p" in r.json()["error"] and "no-such-model" in r.json()["error"]
        assert hook(g, path="/hooks", body={"message": "x"}).status_code == 404
        assert hook(g, path="/hooks/", body={"message": "x"}).status_code == 404
        assert hook(g, path="/hooks/nothing-mapped", body={}).status_code == 404
        assert hook(g, body={"message": "x", "callback": {"url": "ftp://x"}}).status_code == 400
        assert hook(g, body={"message": "x", "callback": {"url": "http://h/", "mode": "soap"}}).status_code == 400
        # unknown keys are ignored, as OpenClaw does
        assert hook(g, body={"message": "x", "color": "blue", "nested": {"a": 1}}).status_code == 202
        text = _metrics(g)
        for reason, n in (("token_in_query", 1), ("unauthorized", 2), ("method", 2), ("too_large", 1),
                          ("invalid_json", 2), ("session_key", 4), ("model", 1), ("not_found", 3)):
            assert metric(text, "chela_hook_requests_total", outcome="refused", reason=reason) == n, reason
        assert metric(text, "chela_hook_requests_total", outcome="accepted", reason="agent") == 2
        assert "hooks: refused" in g.stderr() and "token_in_query" in g.stderr()
        assert HOOK_TOKEN not in g.stderr()


def test_auth_failures_throttled(gateway_factory):
    with FakeLLM("openai") as fake:
        g = start(gateway_factory, hooks_config({"p": fake}))
        codes = [hook(g, body={"message": "x"}, token=f"guess-{i}").status_code for i in range(20)]
        assert codes == [401] * 20
        r = hook(g, body={"message": "x"}, token="guess-21")
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        # locked out for the window, even with the right token
        assert hook(g, body={"message": "x"}).status_code == 429
        assert metric(_metrics(g), "chela_hook_requests_total", outcome="refused", reason="throttled") == 2


def test_hooks_disabled_and_custom_path(gateway_factory):
    with FakeLLM("openai") as fake:
        cfg = hooks_config({"p": fake})
        cfg["hooks"]["enabled"] = False
        g = start(gateway_factory, cfg)
        assert hook(g, body={"message": "x"}).status_code == 404
        assert http(g, "GET", "/hooks/agent").status_code == 404
        g.stop()
        cfg = hooks_config({"p": fake}, hooks={"path": "/integrations/hooks/"})
        g = start(gateway_factory, cfg)
        assert hook(g, path="/integrations/hooks/agent", body={"message": "x"}).status_code == 202
        assert hook(g, body={"message": "x"}).status_code == 404


def test_session_key_policy(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok", "times": -1})
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"allowedSessionKeyPrefixes": ["hook:", "trader:"]}))
        r = hook(g, body={"message": "x", "sessionKey": "trader:1"})
        assert r.status_code == 202, r.text
        r = hook(g, body={"message": "x", "sessionKey": "other:1"})
        assert r.status_code == 400 and r.json()["error"] == "sessionKey must start with one of: hook:, trader:"
        r = hook(g, body={"message": "x"})
        assert r.status_code == 202
        assert re.fullmatch(r"agent:main:hook:[0-9a-f-]{36}", get_run(g, r.json()["runId"])["sessionKey"])
        g.stop()
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"allowRequestSessionKey": False,
                                                                     "defaultSessionKey": "hook:inbox"}))
        r = hook(g, body={"message": "x", "sessionKey": "mine"})
        assert r.status_code == 400 and "allowRequestSessionKey" in r.json()["error"]
        r = hook(g, body={"message": "x"})
        assert get_run(g, r.json()["runId"])["sessionKey"] == "agent:main:hook:inbox"


def test_model_alias_resolves(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "filled"})
        cfg = hooks_config({"p": fake})
        cfg["agents"]["defaults"]["models"] = {f"p/{MODEL}": {"alias": "gpt"}}
        g = start(gateway_factory, cfg)
        # auto_trader's send_fill_notification: no sessionKey, model "gpt", deliver to discord
        r = hook(g, body={"message": "체결 알림", "name": "TradeAlert", "deliver": True, "channel": "discord",
                          "to": "1234567890", "model": "gpt", "timeoutSeconds": 60})
        assert r.status_code == 202, r.text
        run = wait_run(g, r.json()["runId"])
        assert run["status"] == "ok" and fake.requests[0].json["model"] == MODEL
        deadline = time.monotonic() + 5
        while "delivery" not in run and time.monotonic() < deadline:
            time.sleep(0.05)
            run = get_run(g, run["runId"])
        assert run["delivery"]["channel"]["state"] == "skipped", run


# ---------------------------------------------------------------- idempotency


@pytest.mark.parametrize("where", ["Idempotency-Key", "X-OpenClaw-Idempotency-Key", "body"])
def test_idempotent_replay(gateway_factory, where):
    with FakeLLM("openai") as fake:
        fake.push({"text": "once", "times": -1})
        g = start(gateway_factory, hooks_config({"p": fake}))
        body = {"message": "charge card 42", "sessionKey": "pay:42"}
        headers = {}
        if where == "body":
            body["idempotencyKey"] = "order-42"
        else:
            headers[where] = "order-42"
        r1 = hook(g, body=body, headers=headers)
        assert r1.status_code == 202, r1.text
        r2 = hook(g, body=body, headers=headers)
        assert r2.status_code == 200, r2.text
        assert r2.json()["runId"] == r1.json()["runId"] and r2.json()["ok"] is True
        # a different key is a different run
        other = dict(body, idempotencyKey="order-43") if where == "body" else body
        r3 = hook(g, body=other, headers={where: "order-43"} if where != "body" else {})
        assert r3.status_code == 202 and r3.json()["runId"] != r1.json()["runId"]
        wait_run(g, r1.json()["runId"])
        wait_run(g, r3.json()["runId"])
        assert _user_texts(fake).count("charge card 42") == 2
        assert metric(_metrics(g), "chela_hook_requests_total", outcome="accepted", reason="replay") == 1


def test_concurrent_replays_share_one_run(gateway_factory):
    import concurrent.futures as cf
    with FakeLLM("openai") as fake:
        fake.push({"text": "once", "first_byte_delay": 0.5, "times": -1})
        g = start(gateway_factory, hooks_config({"p": fake}))
        with cf.ThreadPoolExecutor(8) as ex:
            rs = list(ex.map(lambda _: hook(g, body={"message": "m"}, headers={"Idempotency-Key": "same"}),
                             range(8)))
        assert all(r.status_code in (200, 202) for r in rs), [r.text for r in rs]
        assert len({r.json()["runId"] for r in rs}) == 1
        assert sum(r.status_code == 202 for r in rs) == 1


# ---------------------------------------------------------------- waitForCompletion


def test_wait_for_completion(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "the answer is 42", "first_byte_delay": 0.3})
        g = start(gateway_factory, hooks_config({"p": fake}))
        r = hook(g, body={"message": "question", "waitForCompletion": True}, timeout=20)
        assert r.status_code == 200, r.text
        b = r.json()
        assert b["ok"] is True and b["runId"]
        assert b["completion"]["status"] == "ok" and b["completion"]["text"] == "the answer is 42"
        assert b["completion"]["usage"]["outputTokens"] == 5
        # a replay of a finished run answers from the store
        r = hook(g, body={"message": "question", "waitForCompletion": True, "idempotencyKey": "w1"}, timeout=20)
        r2 = hook(g, body={"message": "question", "waitForCompletion": True, "idempotencyKey": "w1"}, timeout=20)
        assert r2.status_code == 200 and r2.json()["runId"] == r.json()["runId"]
        assert r2.json()["completion"]["status"] == "ok"


def test_wait_for_completion_bounded_by_timeout(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "too late", "first_byte_delay": 5})
        g = start(gateway_factory, hooks_config({"p": fake}))
        t0 = time.monotonic()
        r = hook(g, body={"message": "slow one", "waitForCompletion": True, "timeoutSeconds": 1}, timeout=20)
        assert r.status_code == 200, r.text
        assert r.json()["completion"]["status"] == "timeout"
        assert time.monotonic() - t0 < 4


# ---------------------------------------------------------------- mappings


def test_mapping_templates(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "reviewed", "times": -1})
        mappings = [
            {"id": "github", "match": {"path": "github"}, "action": "agent", "name": "GitHub {{headers.x-github-event}}",
             "sessionKey": "hook:github:{{payload.repository.id}}",
             "messageTemplate": "Event {{headers.x-github-event}} on {{payload.repository.full_name}} by "
                                "{{ payload.sender.login }} ref={{query.ref}} path={{path}} "
                                "first={{payload.commits[0].id}} n={{payload.count}} ok={{payload.ok}} "
                                "obj={{payload.sender}} missing=[{{payload.nope.deeper}}] at {{now}}"},
            {"id": "stripe", "match": {"path": "pay", "source": "stripe"}, "messageTemplate": "stripe {{type}}"},
            {"id": "ping", "match": {"path": "ping"}, "action": "wake", "textTemplate": "ping from {{payload.who}}"},
        ]
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"mappings": mappings}))
        body = {"repository": {"id": 77, "full_name": "o/r"}, "sender": {"login": "octo"},
                "commits": [{"id": "abc"}], "count": 3, "ok": True}
        r = hook(g, path="/hooks/github?ref=main", body=body, headers={"X-GitHub-Event": "push"})
        assert r.status_code == 202, r.text
        run = wait_run(g, r.json()["runId"])
        assert run["sessionKey"] == "agent:main:hook:github:77"
        msg = _user_texts(fake)[-1]
        assert re.fullmatch(r'Event push on o/r by octo ref=main path=github first=abc n=3 ok=true '
                            r'obj=\{"login":"octo"\} missing=\[\] at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z', msg), msg
        assert hook(g, path="/hooks/pay", body={"source": "paypal", "type": "x"}).status_code == 404
        r = hook(g, path="/hooks/pay", body={"source": "stripe", "type": "invoice.paid"})
        assert r.status_code == 202
        wait_run(g, r.json()["runId"])
        assert _user_texts(fake)[-1] == "stripe invoice.paid"
        r = hook(g, path="/hooks/ping", body={"who": "cron"})
        assert r.status_code == 200 and r.json()["mode"] == "now"
        run = wait_run(g, r.json()["runId"])
        assert run["sessionKey"] == "agent:main:main" and run["source"] == "wake"
        assert _user_texts(fake)[-1] == "ping from cron"
        text = _metrics(g)
        assert metric(text, "chela_hook_requests_total", outcome="accepted", reason="mapping") == 2
        assert metric(text, "chela_hook_requests_total", outcome="refused", reason="not_found") == 1


def test_bad_mapping_refuses_start(gateway_factory):
    with FakeLLM("openai") as fake:
        g = gateway_factory.new(hooks_config({"p": fake}, hooks={"mappings": [{"id": "x", "match": {"path": "x"}}]}))
        g.spawn()
        assert g.wait(10) not in (None, 0)
        assert "messageTemplate" in g.stderr()
        for bad in ("/", "/api/hooks", "no-slash"):
            g = gateway_factory.new(hooks_config({"p": fake}, hooks={"path": bad}))
            g.spawn()
            assert g.wait(10) not in (None, 0), bad
            assert "hooks.path" in g.stderr(), bad


# ---------------------------------------------------------------- wake


def test_wake(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "awake", "times": -1})
        g = start(gateway_factory, hooks_config({"p": fake}))
        r = hook(g, path="/hooks/wake", body={"text": "New email arrived", "mode": "now"})
        assert r.status_code == 200 and r.json()["ok"] is True and r.json()["mode"] == "now"
        assert r.json()["eventOutcome"] == "queued"
        run = wait_run(g, r.json()["runId"])
        assert run["sessionKey"] == "agent:main:main" and run["source"] == "wake"
        assert _user_texts(fake)[-1] == "New email arrived"
        r = hook(g, path="/hooks/wake", body={"text": "check later", "mode": "next-heartbeat"})
        assert r.status_code == 200 and r.json() == {"ok": True, "mode": "next-heartbeat", "eventOutcome": "queued"}
        msgs = session(g, "agent:main:main")["messages"]
        assert any(m["role"] == "system" and "check later" in json.dumps(m) for m in msgs), msgs
        assert hook(g, path="/hooks/wake", body={"mode": "now"}).json() == {"ok": False, "error": "text required"}
        # OpenClaw v4: a sessionKey picks the session a `now` wake runs on
        for key, want in (("inbox", "agent:main:inbox"), ("main", "agent:main:main"),
                          ("agent:main:ops", "agent:main:ops"), (" MAIN ", "agent:main:main"),
                          ("Inbox", "agent:main:inbox"), ("AGENT:MAIN:Ops", "agent:main:ops")):
            r = hook(g, path="/hooks/wake", body={"text": "ping " + key, "sessionKey": key})
            assert r.status_code == 200, r.text
            assert wait_run(g, r.json()["runId"])["sessionKey"] == want, key
        for body, err in (({"sessionKey": ""}, "sessionKey must be a non-empty string"),
                          ({"sessionKey": 5}, "sessionKey must be a non-empty string"),
                          ({"sessionKey": "x", "mode": "next-heartbeat"}, "sessionKey requires mode=now")):
            r = hook(g, path="/hooks/wake", body=dict(body, text="t"))
            assert r.status_code == 400 and r.json() == {"ok": False, "error": err}, (body, r.text)


# ---------------------------------------------------------------- auth without hooks.token


def test_api_tokens_when_hooks_token_unset(gateway_factory):
    with FakeLLM("openai") as fake:
        cfg = hooks_config({"p": fake})
        del cfg["hooks"]["token"]
        g = start(gateway_factory, cfg)
        chat_tok = g.create_token("hooker", "chat")["token"]
        read_tok = g.create_token("reader", "read")["token"]
        deadline = time.monotonic() + 5
        while hook(g, body={"message": "x"}, token=chat_tok).status_code == 401 and time.monotonic() < deadline:
            time.sleep(0.1)   # the CLI wrote the token straight to the db
        assert hook(g, body={"message": "x"}, token=chat_tok).status_code == 202
        assert hook(g, body={"message": "x"}, token=g.admin_token).status_code == 202
        assert hook(g, body={"message": "x"}, token=read_tok).status_code == 401
        assert list_runs(g, limit=10)
