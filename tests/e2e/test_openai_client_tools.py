"""Client tools with the agent models (OpenClaw's clientTools): /v1 `tools`
sent with `model: "openclaw"` are offered to the model beside the agent's
own; a call to one ends the run and comes back as `tool_calls` for the
client to run; the client's next request carries the result, which the
agent reads as the new turn.  tool_choice narrows and demands, as OpenClaw
does (502 when the agent did not call)."""

import json

import pytest

from e2elib import http
from fakes.llm import FakeLLM

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ZONE = {"type": "function", "function": {"name": "get_zone", "parameters": {"type": "object"}}}


def config(fake):
    return {
        "gateway": {"http": {"endpoints": {"chatCompletions": {"enabled": True},
                                           "responses": {"enabled": True}}}},
        "models": {"providers": {"f": {"api": "openai-completions", "baseUrl": fake.base_url,
                                       "apiKey": "sk-test-ct", "models": [{"id": "fake-model"}]}}},
        "agents": {"defaults": {"model": {"primary": "f/fake-model"}}},
    }


@pytest.fixture
def fake():
    with FakeLLM("openai") as f:
        yield f


@pytest.fixture
def gw(gateway_factory, fake):
    g = gateway_factory(config(fake))
    return g, g.gateway_json()["localToken"]


def chat(g, tok, body, **kw):
    kw.setdefault("timeout", 30)
    return http(g, "POST", "/v1/chat/completions", token=tok, json=dict({"model": "openclaw"}, **body), **kw)


def offered(req):
    return [t["function"]["name"] for t in req.json.get("tools", [])]


def test_round_trip_stateless(gw, fake):
    g, tok = gw
    fake.push({"text": "checking", "tool_calls": [{"id": "call_w1", "name": "get_weather",
                                                   "arguments": {"city": "Paris"}}]})
    ask = {"role": "user", "content": "weather in Paris?"}
    r = chat(g, tok, {"tools": [WEATHER], "messages": [ask]})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert (call["id"], call["type"], call["function"]["name"]) == ("call_w1", "function", "get_weather")
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert choice["message"]["content"] == "checking"
    up = fake.wait_requests(1)[0]
    # beside the agent's own tools, with the client's schema as sent
    assert "get_weather" in offered(up) and "current_time" in offered(up)
    sent = [t for t in up.json["tools"] if t["function"]["name"] == "get_weather"][0]["function"]
    assert sent["parameters"] == WEATHER["function"]["parameters"]
    # the client runs it and sends the result back with the conversation
    fake.push({"text": "It is 22C and sunny in Paris."})
    r = chat(g, tok, {"tools": [WEATHER], "messages": [
        ask, choice["message"], {"role": "tool", "tool_call_id": "call_w1", "content": "22C, sunny"}]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "It is 22C and sunny in Paris."
    assert r.json()["choices"][0]["finish_reason"] == "stop"
    up = fake.wait_requests(2)[1].json
    last = up["messages"][-1]
    assert last["role"] == "user" and "22C, sunny" in last["content"] and "get_weather" in last["content"]
    system = up["messages"][0]["content"]
    assert "weather in Paris?" in system and "[tool call get_weather id=call_w1" in system


def test_round_trip_streaming(gw, fake):
    g, tok = gw
    fake.push({"tool_calls": [{"id": "call_s1", "name": "get_weather", "arguments": {"city": "Oslo"}}]})
    r = chat(g, tok, {"tools": [WEATHER], "stream": True, "stream_options": {"include_usage": True},
                      "messages": [{"role": "user", "content": "Oslo?"}]}, stream=True)
    assert r.status_code == 200
    data = [line[6:] for line in r.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert calls[0]["id"] == "call_s1" and calls[0]["function"]["name"] == "get_weather"
    args = "".join(tc["function"].get("arguments", "") for tc in calls)
    assert json.loads(args) == {"city": "Oslo"}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_agent_tools_in_the_same_round_still_run(gw, fake):
    """One reply calling the agent's current_time and the client's tool:
    the agent's runs, the client's comes back, and the run stops there."""
    g, tok = gw
    fake.push({"tool_calls": [{"id": "call_t", "name": "current_time", "arguments": {"timezone": "UTC"}},
                              {"id": "call_w", "name": "get_weather", "arguments": {"city": "Rome"}}]})
    r = chat(g, tok, {"tools": [WEATHER], "user": "ct-mixed", "messages": [{"role": "user", "content": "go"}]})
    assert r.status_code == 200, r.text
    calls = r.json()["choices"][0]["message"]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_w"]
    assert len(fake.requests) == 1  # the run ended at the client's call
    # the session's next turn: the transcript holds both results (the
    # agent's, and the client's as pending), then the client's answer
    fake.push({"text": "Rome: 30C"})
    r = chat(g, tok, {"tools": [WEATHER], "user": "ct-mixed", "messages": [
        {"role": "user", "content": "go"}, r.json()["choices"][0]["message"],
        {"role": "tool", "tool_call_id": "call_w", "content": "30C"}]})
    assert r.status_code == 200, r.text
    msgs = fake.wait_requests(2)[1].json["messages"]
    tool_msgs = {m["tool_call_id"]: m["content"] for m in msgs if m["role"] == "tool"}
    assert set(tool_msgs) == {"call_t", "call_w"}
    assert json.loads(tool_msgs["call_w"])["status"] == "pending"
    assert "T" in tool_msgs["call_t"] or "UTC" in tool_msgs["call_t"]
    assert msgs[-1]["role"] == "user" and "30C" in msgs[-1]["content"]


def test_tool_choice(gw, fake):
    g, tok = gw
    # a named function: only that client tool, and the model is told to call it
    fake.push({"tool_calls": [{"id": "c1", "name": "get_zone", "arguments": {}}]})
    r = chat(g, tok, {"tools": [WEATHER, ZONE], "tool_choice": {"type": "function", "function": {"name": "get_zone"}},
                      "messages": [{"role": "user", "content": "zone?"}]})
    assert r.status_code == 200, r.text
    up = fake.wait_requests(1)[0].json
    names = [t["function"]["name"] for t in up["tools"]]
    assert "get_zone" in names and "get_weather" not in names
    assert "tool_choice" not in up  # it would bind the agent's own tools too
    assert "You must call the get_zone tool before responding." in up["messages"][0]["content"]
    # required, and the model answered in text: 502 as OpenClaw
    fake.push({"text": "no tools for me"})
    r = chat(g, tok, {"tools": [WEATHER], "tool_choice": "required", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 502, r.text
    assert r.json()["error"]["type"] == "api_error"
    assert r.json()["error"]["message"] == "tool_choice=required was not satisfied by the agent response"
    # none: the client's tools are not offered
    fake.push({"text": "plain"})
    r = chat(g, tok, {"tools": [WEATHER], "tool_choice": "none", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 200, r.text
    assert "get_weather" not in offered(fake.wait_requests(3)[2])
    # unknown function, unsupported type
    r = chat(g, tok, {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}},
                      "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and "unknown tool: nope" in r.json()["error"]["message"]
    assert r.json()["error"]["param"] == "tool_choice"
    r = chat(g, tok, {"tools": [WEATHER], "tool_choice": {"type": "allowed_tools", "allowed_tools": {}},
                      "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tool_choice"
    assert len(fake.requests) == 3


def test_name_conflicts_are_refused(gw, fake):
    g, tok = gw
    shadow = {"type": "function", "function": {"name": "current_time", "parameters": {"type": "object"}}}
    for tools, word in (([shadow], "agent's own"), ([WEATHER, WEATHER], "twice")):
        r = chat(g, tok, {"tools": tools, "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "invalid_tools" and err["param"] == "tools" and word in err["message"], err
    assert fake.requests == []


def test_responses_function_call_and_output(gw, fake):
    """/v1/responses: the call is a function_call item; the client's
    function_call_output continues the run's session by previous_response_id.
    The stored run keeps the calls it stopped at."""
    g, tok = gw
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER["function"]["parameters"]}]
    fake.push({"tool_calls": [{"id": "call_r1", "name": "get_weather", "arguments": {"city": "Lima"}}]})
    r = http(g, "POST", "/v1/responses", token=tok, timeout=30,
             json={"model": "openclaw", "input": "Lima?", "tools": tools})
    assert r.status_code == 200, r.text
    resp = r.json()
    calls = [it for it in resp["output"] if it["type"] == "function_call"]
    assert len(calls) == 1 and calls[0]["call_id"] == "call_r1" and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Lima"}
    run = http(g, "GET", "/api/v1/runs/" + resp["id"][len("resp_"):], token=tok).json()
    assert run["status"] == "ok", run
    stored = run["result"]["clientToolCalls"]
    assert stored == [{"type": "tool_use", "id": "call_r1", "name": "get_weather", "input": {"city": "Lima"}}]
    fake.push({"text": "Lima is mild."})
    r = http(g, "POST", "/v1/responses", token=tok, timeout=30, json={
        "model": "openclaw", "tools": tools, "previous_response_id": resp["id"],
        "input": [{"type": "function_call_output", "call_id": "call_r1", "output": "18C"}]})
    assert r.status_code == 200, r.text
    assert r.json()["output"][-1]["content"][0]["text"] == "Lima is mild."
    msgs = fake.wait_requests(2)[1].json["messages"]
    assert any(m["role"] == "assistant" and m.get("tool_calls") for m in msgs)  # the session's transcript
    assert "18C" in msgs[-1]["content"]


def test_client_tools_survive_a_restart(gateway_factory, fake):
    """The client's tools are stored with the durable run: a run replayed
    after SIGKILL still offers them and stops at their call."""
    from agentlib import get_run, in_thread, sigkill_and_restart, wait_run
    cfg = config(fake)
    cfg["limits"] = {"shutdownGraceMs": 300}
    g = gateway_factory(cfg)
    tok = g.gateway_json()["localToken"]
    fake.push({"text": "late", "first_byte_delay": 8},
              {"tool_calls": [{"id": "call_k", "name": "get_weather", "arguments": {"city": "Kyiv"}}]})
    t, _ = in_thread(http, g, "POST", "/v1/chat/completions", token=tok, timeout=20,
                     headers={"x-openclaw-session-key": "ct-kill"},
                     json={"model": "openclaw", "tools": [WEATHER], "messages": [{"role": "user", "content": "Kyiv?"}]})
    assert "get_weather" in offered(fake.wait_requests(1, timeout=10)[0])
    runs = http(g, "GET", "/api/v1/runs", token=g.admin_token, params={"sessionKey": "ct-kill"}).json()["runs"]
    run_id = runs[0]["runId"]
    g2 = sigkill_and_restart(gateway_factory, g, cfg, t)
    assert wait_run(g2, run_id, timeout=15)["status"] == "ok", get_run(g2, run_id)
    assert "get_weather" in offered(fake.wait_requests(2, timeout=10)[1])
    run = http(g2, "GET", "/api/v1/runs/" + run_id, token=g2.admin_token).json()
    assert [c["name"] for c in run["result"]["clientToolCalls"]] == ["get_weather"]


@pytest.mark.parametrize("kind,api", [("anthropic", "anthropic-messages"), ("gemini", "google-generative-ai")])
def test_other_providers_carry_client_tools(gateway_factory, kind, api):
    """The client's tools reach Anthropic and Gemini in their own formats,
    and the result of the client's call goes back as the next turn."""
    with FakeLLM(kind) as f:
        g = gateway_factory({
            "gateway": {"http": {"endpoints": {"chatCompletions": {"enabled": True}}}},
            "models": {"providers": {"p": {"api": api, "baseUrl": f.base_url, "apiKey": "k",
                                           "models": [{"id": "m-1"}]}}},
            "agents": {"defaults": {"model": {"primary": "p/m-1"}}},
        })
        tok = g.gateway_json()["localToken"]
        f.push({"tool_calls": [{"id": "call_p", "name": "get_weather", "arguments": {"city": "Bern"}}]},
               {"text": "Bern: snow"})
        ask = {"role": "user", "content": "Bern?"}
        r = chat(g, tok, {"tools": [WEATHER], "user": "ct-" + kind, "messages": [ask]})
        assert r.status_code == 200, r.text
        msg = r.json()["choices"][0]["message"]
        assert msg["tool_calls"][0]["function"]["name"] == "get_weather"
        up = f.wait_requests(1)[0].json
        if kind == "anthropic":
            names = [t["name"] for t in up["tools"]]
        else:
            names = [d["name"] for t in up["tools"] for d in t["functionDeclarations"]]
        assert "get_weather" in names and "current_time" in names
        r = chat(g, tok, {"tools": [WEATHER], "user": "ct-" + kind, "messages": [
            ask, msg, {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": "snow, -3C"}]})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "Bern: snow"
        assert "snow, -3C" in json.dumps(f.wait_requests(2)[1].json)


def test_responses_stream_ends_with_the_function_call(gw, fake):
    g, tok = gw
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER["function"]["parameters"]}]
    fake.push({"text": "looking", "tool_calls": [{"id": "call_rs", "name": "get_weather", "arguments": {"city": "Rio"}}]})
    r = http(g, "POST", "/v1/responses", token=tok, timeout=30, stream=True,
             json={"model": "openclaw", "input": "Rio?", "tools": tools, "stream": True})
    assert r.status_code == 200
    evs, name = [], None
    for raw in r.iter_lines():
        line = raw.decode("utf-8")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and line != "data: [DONE]":
            evs.append((name, json.loads(line[6:])))
    names = [n for n, _ in evs]
    assert names[-1] == "response.completed", names
    assert "".join(d["delta"] for n, d in evs if n == "response.output_text.delta") == "looking"
    done = [d for n, d in evs if n == "response.function_call_arguments.done"]
    assert len(done) == 1 and json.loads(done[0]["arguments"]) == {"city": "Rio"}
    final = evs[-1][1]["response"]
    calls = [it for it in final["output"] if it["type"] == "function_call"]
    assert [(c["call_id"], c["name"]) for c in calls] == [("call_rs", "get_weather")]
