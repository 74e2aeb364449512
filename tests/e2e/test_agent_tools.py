"""Agent tools end to end: http_request limited to tools.http.allowHosts
(seed 000's agent-driven callback), web_fetch's SSRF refusals, tool errors
going back to the model, MAX_TOOL_ROUNDS and the repeated-call stop.

The fake upstream asks for a tool call; what the tool produced is read
from the NEXT upstream request (the tool result in the provider's format),
which is exactly what the model would see.
"""

import json
import time

import pytest

from agentlib import (PROVIDERS, LocalServer, abort_run, chat, chat_ok, get_run, health_detail, in_thread,
                      list_runs, llm_config, offered_tools, start, tool_results, wait_run, wire_problems)
from fakes.llm import FakeLLM


def _tool_round(fake, name, args, answer="done."):
    fake.push({"tool_calls": [{"name": name, "arguments": args}]}, {"text": answer})


def _result(fake, provider="anthropic", n=2):
    """The single tool result carried by the n-th upstream request."""
    reqs = fake.wait_requests(n)
    res = tool_results(provider, reqs[n - 1].json)
    assert len(res) == 1, reqs[n - 1].json
    return res[0]


# ---------------------------------------------------------------- http_request


def test_http_request_not_offered_without_allow_hosts(gateway_factory):
    with FakeLLM("anthropic") as fake:
        _tool_round(fake, "http_request", {"method": "GET", "url": "http://example.com/"})
        g = start(gateway_factory, llm_config({"p": fake}))
        chat_ok(g, "call out", "http-off")
        assert "http_request" not in offered_tools("anthropic", fake.wait_requests(1)[0].json)
        res = _result(fake)
        assert res["is_error"], res


@pytest.mark.parametrize("url", [
    "http://evil.example.com/steal",
    "http://127.0.0.1:{other}/cb",      # allowed host, other port
    "http://localhost:{port}/cb",       # another spelling of the host is another host
])
def test_http_request_refused_for_host_not_allowed(gateway_factory, url):
    with LocalServer({"/cb": (200, {"Content-Type": "application/json"}, '{"ok":true}')}) as rx, \
            LocalServer() as other, FakeLLM("anthropic") as fake:
        target = url.format(port=rx.port, other=other.port)
        _tool_round(fake, "http_request", {"method": "POST", "url": target, "body": {"x": 1}}, "could not call")
        g = start(gateway_factory, llm_config({"p": fake}, tools={"http": {"allowHosts": [f"127.0.0.1:{rx.port}"]}}))
        a = chat_ok(g, "post the callback", "http-deny")
        assert a["content"] == "could not call"
        assert "http_request" in offered_tools("anthropic", fake.wait_requests(1)[0].json)
        res = _result(fake)
        assert res["is_error"], res
        assert "refused" in res["content"] and "allowHosts" in res["content"], res
        assert not rx.received and not other.received, "a refused request went out anyway"


@pytest.mark.parametrize("provider", ["anthropic", "openai", "gemini"])
def test_http_request_posts_callback_to_allowed_host(gateway_factory, provider):
    secret = "cb-secret-7f3a9"
    with LocalServer({"/api/v1/openclaw/callback": (200, {"Content-Type": "application/json"},
                                                    '{"received":true}')}) as rx, \
            FakeLLM(provider) as fake:
        payload = {"taskId": "t-42", "status": "completed", "result": {"answer": 42}}
        _tool_round(fake, "http_request", {
            "method": "POST",
            "url": f"http://127.0.0.1:{rx.port}/api/v1/openclaw/callback",
            "headers": {"Authorization": f"Bearer {secret}"},
            "body": payload,
        }, "Callback posted.")
        g = start(gateway_factory, llm_config({"p": fake}, tools={"http": {"allowHosts": [f"127.0.0.1:{rx.port}"]}}))
        a = chat_ok(g, "Do the task, then POST the result to the callback.", "http-ok")
        assert a["content"] == "Callback posted."
        got = rx.wait(1)
        assert len(got) == 1
        req = got[0]
        assert req["method"] == "POST" and req["path"] == "/api/v1/openclaw/callback"
        assert req["headers"].get("authorization") == f"Bearer {secret}"
        assert req["headers"].get("content-type", "").startswith("application/json")
        assert json.loads(req["body"]) == payload
        res = _result(fake, provider)
        assert not res["is_error"], res
        assert "200" in res["content"] and "received" in res["content"], res
        assert secret not in g.stderr(), "the callback's bearer token reached the gateway log"


def test_http_request_wildcard_and_error_status(gateway_factory):
    # *.domain patterns do not match the bare IP; a 4xx from an allowed host
    # is a result for the model (status shown), not a crash
    with LocalServer({"/nope": (403, {"Content-Type": "text/plain"}, "forbidden here")}) as rx, \
            FakeLLM("openai") as fake:
        _tool_round(fake, "http_request", {"url": f"http://127.0.0.1:{rx.port}/nope"})
        g = start(gateway_factory, llm_config({"p": fake}, tools={"http": {"allowHosts": ["127.0.0.1", "*.test"]}}))
        chat_ok(g, "try it", "http-403")
        res = _result(fake, "openai")
        assert "403" in res["content"] and "forbidden here" in res["content"], res
        assert rx.received and rx.received[0]["method"] == "GET"


# ---------------------------------------------------------------- web_fetch


@pytest.mark.parametrize("url,why", [
    ("http://127.0.0.1:{port}/", "loopback"),
    ("http://10.0.0.1/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://localhost:{port}/", "loopback"),
    ("http://[::1]:{port}/", "loopback"),
    ("http://0.0.0.0:{port}/", None),
    ("http://2130706433:{port}/", None),   # 127.0.0.1 as one decimal number
    ("http://0x7f.1:{port}/", None),       # hex/short forms some resolvers accept
    ("http://100.64.0.1/", "CGNAT"),
    ("http://192.168.1.1/", "private"),
])
def test_web_fetch_refuses_internal_addresses(gateway_factory, url, why):
    with LocalServer({"/": (200, {"Content-Type": "text/html"}, "<p>internal secret</p>")}) as rx, \
            FakeLLM("anthropic") as fake:
        target = url.format(port=rx.port)
        _tool_round(fake, "web_fetch", {"url": target})
        g = start(gateway_factory, llm_config({"p": fake}, tools={"timeoutSeconds": 5}))
        chat_ok(g, "fetch it", "ssrf")
        res = _result(fake)
        assert res["is_error"], res
        assert "internal secret" not in res["content"]
        assert "refused" in res["content"] or "not valid" in res["content"] or "not allowed" in res["content"], res
        if why:
            assert why.lower() in res["content"].lower(), res
        assert not rx.received, f"web_fetch reached {target}"


def test_web_fetch_allowlisted_local_host_works(gateway_factory):
    page = ("<html><head><title>Test page</title><script>var x=1;</script></head>"
            "<body><nav>menu</nav><p>Hello from the fetched page.</p></body></html>")
    with LocalServer({"/page": (200, {"Content-Type": "text/html; charset=utf-8"}, page)}) as rx, \
            FakeLLM("openai") as fake:
        _tool_round(fake, "web_fetch", {"url": f"http://127.0.0.1:{rx.port}/page"})
        g = start(gateway_factory, llm_config({"p": fake},
                                              tools={"web": {"fetch": {"allowHosts": [f"127.0.0.1:{rx.port}"]}}}))
        chat_ok(g, "read it", "fetch-ok")
        res = _result(fake, "openai")
        assert not res["is_error"], res
        assert "Hello from the fetched page." in res["content"]
        assert "Test page" in res["content"]
        assert "var x=1" not in res["content"], "script text leaked into the readable text"
        assert len(rx.received) == 1


@pytest.mark.parametrize("location", [
    "http://10.0.0.1/",
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://127.0.0.1:{other}/secret",
    "http://localhost:{other}/secret",
])
def test_web_fetch_refuses_redirect_to_private_address(gateway_factory, location):
    with LocalServer() as inner, LocalServer() as outer, FakeLLM("gemini") as fake:
        inner.routes["/secret"] = (200, {"Content-Type": "text/plain"}, "internal secret")
        loc = location.format(other=inner.port)
        outer.routes["/go"] = (302, {"Location": loc}, "")
        _tool_round(fake, "web_fetch", {"url": f"http://127.0.0.1:{outer.port}/go"})
        g = start(gateway_factory, llm_config({"p": fake}, tools={"timeoutSeconds": 5, "web": {"fetch": {
            "allowHosts": [f"127.0.0.1:{outer.port}"]}}}))
        chat_ok(g, "follow it", "ssrf-redirect")
        res = _result(fake, "gemini")
        assert res["is_error"], res
        assert "redirect" in res["content"].lower() and "refused" in res["content"], res
        assert "internal secret" not in res["content"]
        assert len(outer.received) == 1, "the allowlisted first hop should have been fetched once"
        assert not inner.received, "the redirect target was reached"


def test_web_fetch_redirect_limit(gateway_factory):
    with LocalServer() as srv, FakeLLM("anthropic") as fake:
        for i in range(10):
            srv.routes[f"/r{i}"] = (302, {"Location": f"/r{i + 1}"}, "")
        _tool_round(fake, "web_fetch", {"url": f"http://127.0.0.1:{srv.port}/r0"})
        g = start(gateway_factory, llm_config({"p": fake}, tools={"web": {"fetch": {
            "allowHosts": [f"127.0.0.1:{srv.port}"]}}}))
        chat_ok(g, "loop", "redir-limit")
        res = _result(fake)
        assert res["is_error"], res
        assert len(srv.received) <= 6, f"{len(srv.received)} hops (at most 5 redirects)"


# ---------------------------------------------------------------- tool errors


def test_bad_tool_input_and_unknown_tool_go_back_as_tool_errors(gateway_factory):
    with FakeLLM("anthropic", strict=True) as fake:
        with LocalServer({"/a.png": (200, {"Content-Type": "image/png"}, "\x89PNG\r\n\x1a\n..")}) as img:
            # fetch_image is the gateway's own: a model naming it (even with a
            # host allowlist of its own) gets an unknown tool and nothing is fetched
            fake.push({"tool_calls": [{"name": "current_time", "arguments": {"timezone": 123}},
                                      {"name": "no_such_tool", "arguments": {}},
                                      {"name": "current_time", "arguments": {"timezone": "Mars/Olympus"}},
                                      {"name": "fetch_image", "arguments": {
                                          "url": f"http://127.0.0.1:{img.port}/a.png", "allowHosts": ["127.0.0.1"]}}]},
                      {"text": "Sorry, the tools failed."})
            g = start(gateway_factory, llm_config({"p": fake}, tools={"web": {"fetch": {"allowHosts": ["127.0.0.1"]}}}))
            a = chat_ok(g, "time?", "tool-err")
            assert a["content"] == "Sorry, the tools failed."
            res = tool_results("anthropic", fake.wait_requests(2)[1].json)
            assert len(res) == 4, res
            assert all(r["is_error"] for r in res), res
            assert "timezone" in res[0]["content"], res[0]
            assert "no_such_tool" in res[1]["content"], res[1]
            assert "Mars/Olympus" in res[2]["content"], res[2]
            assert res[3]["content"].startswith('unknown tool "fetch_image"'), res[3]
            assert "fetch_image" not in offered_tools("anthropic", fake.wait_requests(1)[0].json)
            assert img.received == []
        assert get_run(g, a["runId"])["status"] == "ok"


# ---------------------------------------------------------------- loops


TZS = ["UTC", "Asia/Seoul", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Europe/Berlin",
       "Africa/Cairo", "Australia/Sydney", "America/Chicago", "Asia/Kolkata", "Europe/London", "Asia/Dubai"]


def _endless_tools(fake, n=len(TZS)):
    # a different argument each time: only MAX_TOOL_ROUNDS can stop it
    for tz in TZS[:n]:
        fake.push({"tool_calls": [{"name": "current_time", "arguments": {"timezone": tz}}]})


@pytest.mark.parametrize("how", ["config", "env"])
def test_max_tool_rounds_stops_an_endless_loop(gateway_factory, how):
    limit = 2
    with FakeLLM("openai", default={"text": "never reached"}) as fake:
        _endless_tools(fake)
        cfg = llm_config({"p": fake}, agents={"maxToolRounds": limit} if how == "config" else None)
        g = start(gateway_factory, cfg, env={"MAX_TOOL_ROUNDS": str(limit)} if how == "env" else None)
        before = health_detail(g)["agent"]["toolCalls"]
        r = chat(g, "loop forever", "rounds")
        assert r.status_code != 200, r.text
        j = r.json()
        assert "MAX_TOOL_ROUNDS" in j["message"] or "tool rounds" in j["message"], j
        # the provider answered every call: this is not a 502 provider failure
        assert j["error"] != "provider_error" and r.status_code != 502, j
        run = get_run(g, j["runId"])
        assert run["status"] == "error" and "tool rounds" in (run["error"] or ""), run
        # at most `limit` rounds of tools ran (seed 003: "도구 최대 실행 라운드",
        # the most tool rounds per turn); the model was called before each
        # round, and possibly once more with the last results
        executed = health_detail(g)["agent"]["toolCalls"] - before
        assert executed == limit, f"maxToolRounds={limit} but {executed} tool rounds ran"
        assert len(fake.requests) in (limit, limit + 1), f"{len(fake.requests)} LLM calls for maxToolRounds={limit}"


def test_max_tool_rounds_zero_runs_no_tool(gateway_factory):
    with LocalServer({"/cb": (200, {}, "ok")}) as rx, FakeLLM("anthropic") as fake:
        _tool_round(fake, "http_request", {"method": "POST", "url": f"http://127.0.0.1:{rx.port}/cb", "body": "x"})
        g = start(gateway_factory, llm_config({"p": fake}, agents={"maxToolRounds": 0},
                                              tools={"http": {"allowHosts": [f"127.0.0.1:{rx.port}"]}}))
        r = chat(g, "post it", "rounds-0")
        assert r.status_code != 200 or "done" in r.text
        assert not rx.received, "maxToolRounds 0 still executed a tool with side effects"


def test_same_tool_same_arguments_three_times_stops(gateway_factory):
    call = {"tool_calls": [{"name": "current_time", "arguments": {"timezone": "UTC"}}], "times": -1}
    with FakeLLM("anthropic", default={"text": "never"}) as fake:
        fake.push(call)
        g = start(gateway_factory, llm_config({"p": fake}, agents={"maxToolRounds": 50}))
        r = chat(g, "what time is it? (forever)", "same-3")
        assert r.status_code != 200, r.text
        j = r.json()
        assert "3 times in a row" in j["message"] and "current_time" in j["message"], j
        assert j["error"] != "provider_error" and r.status_code != 502, j
        assert len(fake.requests) == 3, f"{len(fake.requests)} LLM calls"
        run = get_run(g, j["runId"])
        assert run["status"] == "error" and "loop" in run["error"], run
        # the two tool results that did run are in the transcript of the last request
        assert len(tool_results("anthropic", fake.requests[-1].json)) == 2


def test_same_tool_with_varying_arguments_is_not_a_loop(gateway_factory):
    with FakeLLM("anthropic") as fake:
        for tz in ["UTC", "UTC", "Asia/Seoul", "UTC", "UTC"]:
            fake.push({"tool_calls": [{"name": "current_time", "arguments": {"timezone": tz}}]})
        fake.push({"text": "finally"})
        g = start(gateway_factory, llm_config({"p": fake}, agents={"maxToolRounds": 10}))
        a = chat_ok(g, "times", "vary")
        assert a["content"] == "finally"
        assert len(fake.requests) == 6


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stop", ["repeat", "max_rounds"])
def test_session_continues_after_a_stopped_tool_loop(gateway_factory, provider, stop):
    """A run stopped in the middle of its tool rounds leaves a transcript the
    provider still accepts on the next turn: every tool call paired with
    its result (the real APIs answer 400 otherwise)."""
    with FakeLLM(provider) as fake:
        if stop == "repeat":
            fake.push({"tool_calls": [{"name": "current_time", "arguments": {"timezone": "UTC"}}], "times": 3})
        else:
            _endless_tools(fake, 4)
        fake.push({"text": "next turn answered"})
        g = start(gateway_factory, llm_config({"p": fake}, agents={"maxToolRounds": 2}))
        r = chat(g, "loop", "after-stop")
        assert r.status_code != 200, r.text
        n = len(fake.requests)
        a = chat_ok(g, "let us talk about something else", "after-stop")
        assert a["content"] == "next turn answered"
        body = fake.wait_requests(n + 1)[n].json
        assert wire_problems(provider, body) == [], json.dumps(body)[:3000]


@pytest.mark.parametrize("how", ["abort", "run_timeout", "tool_timeout"])
def test_interrupted_tool_call(gateway_factory, how):
    """A tool still running when the run is aborted or times out is
    cancelled promptly, and the session's next turn is still well formed."""
    with LocalServer({"/slow": (200, {"Content-Type": "text/plain"}, "slow answer", 4)}) as rx, \
            FakeLLM("anthropic") as fake:
        _tool_round(fake, "http_request", {"url": f"http://127.0.0.1:{rx.port}/slow"}, "after the tool")
        fake.push({"text": "next turn answered"})
        agents = {"timeoutSeconds": 1} if how == "run_timeout" else {}
        tools = {"http": {"allowHosts": [f"127.0.0.1:{rx.port}"]}}
        if how == "tool_timeout":
            tools["timeoutSeconds"] = 1
        g = start(gateway_factory, llm_config({"p": fake}, agents=agents, tools=tools))
        t0 = time.monotonic()
        th, box = in_thread(chat, g, "call the slow endpoint", "tool-int")
        rx.wait(1, timeout=5)
        if how == "abort":
            runs = [r for r in list_runs(g, sessionKey="tool-int") if r["status"] == "running"]
            assert len(runs) == 1, runs
            assert abort_run(g, runs[0]["runId"]).status_code == 200
        th.join(10)
        took = time.monotonic() - t0
        assert "r" in box, box
        r = box["r"]
        if how == "tool_timeout":
            # the tool failed; the model got the error and answered
            assert r.status_code == 200, r.text
            res = tool_results("anthropic", fake.wait_requests(2)[1].json)
            assert res and res[0]["is_error"] and "timed out" in res[0]["content"], res
        else:
            assert r.status_code in (409, 504), r.text
            assert wait_run(g, r.json()["runId"])["status"] == ("aborted" if how == "abort" else "timeout")
        assert took < 3.5, f"the interrupted tool call held the run for {took:.2f}s"
        n = len(fake.requests)
        a = chat_ok(g, "something else", "tool-int")
        assert a["content"] in ("next turn answered", "after the tool")
        body = fake.wait_requests(n + 1)[n].json
        assert wire_problems("anthropic", body) == [], json.dumps(body)[:3000]


def test_http_request_seed000_callback_by_localhost_name(gateway_factory):
    """Seed 000's message names the callback as http://localhost:8000/...;
    an operator who lists "localhost:<port>" gets it delivered."""
    with LocalServer({"/api/v1/openclaw/callback": (200, {"Content-Type": "application/json"}, '{"ok":true}')}) as rx, \
            FakeLLM("anthropic") as fake:
        _tool_round(fake, "http_request", {
            "method": "POST", "url": f"http://localhost:{rx.port}/api/v1/openclaw/callback",
            "headers": {"Authorization": "Bearer t0k", "X-Trace": "abc"}, "body": {"done": True}}, "sent")
        g = start(gateway_factory, llm_config({"p": fake}, tools={"http": {"allowHosts": [f"localhost:{rx.port}"]}}))
        assert chat_ok(g, "report back", "cb-localhost")["content"] == "sent"
        got = rx.wait(1)[0]
        assert got["headers"]["authorization"] == "Bearer t0k" and got["headers"]["x-trace"] == "abc"
        assert json.loads(got["body"]) == {"done": True}
        assert not _result(fake)["is_error"]
