"""OpenAI-compatible API (issue #4 item 5): /v1/chat/completions in agent
mode (`openclaw`) and pass-through (`provider/model`), streaming with
`data: [DONE]` and include_usage, /v1/models, OpenAI-shaped errors."""

import json
import time

import pytest

from e2elib import http
from fakes.llm import FakeLLM


def oa_config(fake, enabled=True):
    return {
        "gateway": {"http": {"endpoints": {"chatCompletions": {"enabled": enabled}}}},
        "models": {"providers": {"f": {"api": "openai-completions", "baseUrl": fake.base_url,
                                       "apiKey": "sk-test-oa", "models": [
                                           {"id": "fake-model", "pricing": {"input": 1.0, "output": 2.0}}]}}},
        "agents": {"defaults": {"model": {"primary": "f/fake-model"}}},
    }


@pytest.fixture
def fake():
    with FakeLLM("openai") as f:
        yield f


@pytest.fixture
def oa(gateway_factory, fake):
    g = gateway_factory(oa_config(fake))
    return g, g.gateway_json()["localToken"]


def oa_error(resp, status, code=None):
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert isinstance(err, dict) and err["message"] and err["type"], err
    if code:
        assert err["code"] == code, err
    return err


def sse_events(resp):
    out = []
    for line in resp.iter_lines(decode_unicode=True):
        if line.startswith("data: "):
            out.append(line[6:])
    return out


def test_pass_through_non_streaming(oa, fake):
    g, tok = oa
    fake.push({"text": "pong", "usage": {"input": 12, "output": 3}})
    r = http(g, "POST", "/v1/chat/completions", token=tok, json={
        "model": "f/fake-model",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "ping"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "f/fake-model"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "pong"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    up = fake.wait_requests(1)[0]
    # the gateway's own key and format, the system prompt first
    assert up.api_key == "sk-test-oa"
    assert up.json["messages"][0] == {"role": "system", "content": "be brief"}
    assert up.json["messages"][-1]["content"] in ("ping", [{"type": "text", "text": "ping"}])


def test_pass_through_tool_calls_round_trip(oa, fake):
    g, tok = oa
    fake.push({"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]})
    tools = [{"type": "function", "function": {"name": "lookup", "description": "find",
                                                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
    r = http(g, "POST", "/v1/chat/completions", token=tok, json={
        "model": "f/fake-model", "tools": tools, "messages": [{"role": "user", "content": "find x"}]})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "lookup"
    assert json.loads(call["function"]["arguments"]) == {"q": "x"}
    # the client sends the result back in OpenAI's shape
    fake.push({"text": "found it"})
    r = http(g, "POST", "/v1/chat/completions", token=tok, json={
        "model": "f/fake-model", "tools": tools, "messages": [
            {"role": "user", "content": "find x"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "x=42"}]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "found it"
    up = fake.wait_requests(2)[1].json
    tool_msg = [m for m in up["messages"] if m["role"] == "tool"][0]
    assert tool_msg["tool_call_id"] == call["id"] and "x=42" in json.dumps(tool_msg["content"])


def test_streaming_chunks_done_and_usage(oa, fake):
    g, tok = oa
    fake.push({"text": "one two three", "chunks": 3, "usage": {"input": 7, "output": 3}})
    r = http(g, "POST", "/v1/chat/completions", token=tok, stream=True, json={
        "model": "f/fake-model", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "count"}]})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    ev = sse_events(r)
    assert ev[-1] == "[DONE]"
    chunks = [json.loads(e) for e in ev[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "one two three"
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finals and finals[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


AWKWARD = 'quote " back \\ slash / nl\n tab\t ctl\x01 é€ 😀 </script> \u2028 end'


def sse_events_utf8(resp):
    """The data of each event, decoded as UTF-8 and split on blank lines
    only (iter_lines would take U+2028 for a line end, and requests reads
    text/event-stream as Latin-1)."""
    return [ev[6:] for ev in resp.content.decode("utf-8").split("\n\n") if ev.startswith("data: ")]


def test_pass_through_awkward_text_both_ways(oa, fake):
    """Text with escapes, controls, non-ASCII and astral characters comes
    through the stream decoder's fast path and the hand-written reply and
    chunk rendering unchanged, and every chunk shares one id/created/model."""
    g, tok = oa
    fake.push({"text": AWKWARD, "chunks": 4, "usage": {"input": 5, "output": 4}})
    r = http(g, "POST", "/v1/chat/completions", token=tok, json={
        "model": "f/fake-model", "messages": [{"role": "user", "content": AWKWARD}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "f/fake-model"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": AWKWARD}
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
    # the upstream got the user's text unchanged
    up = fake.requests[-1].json
    assert up["messages"][-1] == {"role": "user", "content": AWKWARD}
    # a non-streaming client's call asks the upstream for one body
    assert up.get("stream") is not True and "stream_options" not in up

    fake.push({"text": AWKWARD, "chunks": 4})
    r = http(g, "POST", "/v1/chat/completions", token=tok, stream=True, json={
        "model": "f/fake-model", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    chunks = [json.loads(e) for e in sse_events_utf8(r)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == AWKWARD
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    assert chunks[0]["id"].startswith("chatcmpl-") and chunks[0]["model"] == "f/fake-model"
    assert all("usage" not in c for c in chunks)  # include_usage was not asked
    up = fake.requests[-1].json
    assert up["stream"] is True and up["stream_options"] == {"include_usage": True}


def test_pass_through_streamed_tool_call(oa, fake):
    g, tok = oa
    args = {"q": "x \"y\" é", "n": [1, 2]}
    fake.push({"tool_calls": [{"name": "lookup", "arguments": args}]})
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    r = http(g, "POST", "/v1/chat/completions", token=tok, stream=True, json={
        "model": "f/fake-model", "stream": True, "tools": tools,
        "messages": [{"role": "user", "content": "find"}]})
    chunks = [json.loads(e) for e in sse_events_utf8(r)[:-1]]
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["type"] == "function" and calls[0]["function"]["name"] == "lookup" and calls[0]["id"]
    assert all(tc["index"] == 0 for tc in calls)
    assert json.loads("".join(tc["function"]["arguments"] for tc in calls)) == args
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    up = fake.requests[-1].json
    assert up["tools"][0]["function"]["name"] == "lookup"


def test_agent_mode_runs_the_agent_with_a_session(oa, fake):
    g, tok = oa
    fake.push({"text": "first answer"})
    fake.push({"text": "second answer"})
    for m in ("openclaw", "openclaw/main"):
        assert http(g, "GET", f"/v1/models/{m}", token=tok).json()["id"] == m
    h = {"x-openclaw-session-key": "oa-test-session"}
    r = http(g, "POST", "/v1/chat/completions", token=tok, headers=h, json={
        "model": "openclaw", "messages": [{"role": "user", "content": "remember 7"}]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "first answer"
    r = http(g, "POST", "/v1/chat/completions", token=tok, headers=h, json={
        "model": "openclaw", "messages": [{"role": "user", "content": "what number?"}]})
    assert r.json()["choices"][0]["message"]["content"] == "second answer"
    # the second upstream call carries the first exchange: the session is real
    second = fake.wait_requests(2)[1].json["messages"]
    flat = json.dumps(second)
    assert "remember 7" in flat and "first answer" in flat and "what number?" in flat


def test_agent_mode_streaming(oa, fake):
    g, tok = oa
    fake.push({"text": "streamed agent reply", "chunks": 3})
    r = http(g, "POST", "/v1/chat/completions", token=tok, stream=True, json={
        "model": "agent:main", "stream": True, "messages": [{"role": "user", "content": "go"}]})
    ev = sse_events(r)
    assert ev[-1] == "[DONE]"
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in ev[:-1]
                   if json.loads(e)["choices"])
    assert text == "streamed agent reply"


def test_models_list_and_get(oa):
    g, tok = oa
    r = http(g, "GET", "/v1/models", token=tok)
    assert r.status_code == 200
    ids = [m["id"] for m in r.json()["data"]]
    assert "openclaw" in ids and "f/fake-model" in ids
    assert all(m["object"] == "model" for m in r.json()["data"])
    assert http(g, "GET", "/v1/models/f/fake-model", token=tok).json()["owned_by"] == "f"
    assert http(g, "GET", "/v1/models/openclaw/default", token=tok).json()["id"] == "openclaw/default"
    oa_error(http(g, "GET", "/v1/models/openclaw/ops", token=tok), 404, "model_not_found")  # one agent: main
    oa_error(http(g, "GET", "/v1/models/nope/nothing", token=tok), 404, "model_not_found")


def test_errors_in_openai_shape(oa, fake):
    g, tok = oa
    oa_error(http(g, "POST", "/v1/chat/completions", json={"model": "x", "messages": []}), 401)
    oa_error(http(g, "POST", "/v1/chat/completions", token=tok, json={"model": "f/fake-model"}), 400,
             "invalid_messages")
    oa_error(http(g, "POST", "/v1/chat/completions", token=tok,
                  json={"model": "nope/none", "messages": [{"role": "user", "content": "x"}]}), 404, "model_not_found")
    oa_error(http(g, "POST", "/v1/chat/completions", token=tok, data="{not json",
                  headers={"Content-Type": "application/json"}), 400)
    read = g.create_token("reader", "read")["token"]
    time.sleep(1.2)  # the CLI wrote it to the db: the cache picks it up within a second
    oa_error(http(g, "POST", "/v1/chat/completions", token=read,
                  json={"model": "f/fake-model", "messages": [{"role": "user", "content": "x"}]}), 403)
    # an upstream that keeps failing: the class survives as an OpenAI error
    fake.push({"error_kind": "auth", "times": -1})
    err = oa_error(http(g, "POST", "/v1/chat/completions", token=tok, timeout=30,
                        json={"model": "f/fake-model", "messages": [{"role": "user", "content": "x"}]}), 502)
    assert err["code"] == "auth"


def test_disabled_by_default(gateway_factory, fake):
    g = gateway_factory(oa_config(fake, enabled=False))
    tok = g.gateway_json()["localToken"]
    oa_error(http(g, "POST", "/v1/chat/completions", token=tok,
                  json={"model": "openclaw", "messages": [{"role": "user", "content": "x"}]}), 404)
    oa_error(http(g, "GET", "/v1/models", token=tok), 404)


def test_openclaw_routing_headers(gateway_factory, fake):
    cfg = oa_config(fake)
    cfg["models"]["providers"]["f"]["models"].append({"id": "other-model"})
    g = gateway_factory(cfg)
    tok = g.gateway_json()["localToken"]
    ids = [m["id"] for m in http(g, "GET", "/v1/models", token=tok).json()["data"]]
    assert "openclaw/default" in ids  # what Open WebUI setups pick
    # x-openclaw-model: the agent's backend model for this request
    fake.push({"text": "from the other model"})
    r = http(g, "POST", "/v1/chat/completions", token=tok, headers={"x-openclaw-model": "f/other-model"},
             json={"model": "openclaw/default", "messages": [{"role": "user", "content": "x"}]}, timeout=30)
    assert r.status_code == 200, r.text
    assert fake.wait_requests(1)[0].json["model"] == "other-model"
    oa_error(http(g, "POST", "/v1/chat/completions", token=tok, headers={"x-openclaw-model": "nope/none"},
                  json={"model": "openclaw", "messages": [{"role": "user", "content": "x"}]}), 400, "invalid_model")
    # x-openclaw-agent-id selects the agent of a bare `openclaw`
    oa_error(http(g, "POST", "/v1/chat/completions", token=tok, headers={"x-openclaw-agent-id": "ops"},
                  json={"model": "openclaw", "messages": [{"role": "user", "content": "x"}]}), 404, "model_not_found")
    fake.push({"text": "main here"})
    r = http(g, "POST", "/v1/chat/completions", token=tok, headers={"x-openclaw-agent-id": "main"},
             json={"model": "openclaw", "messages": [{"role": "user", "content": "x"}]}, timeout=30)
    assert r.json()["choices"][0]["message"]["content"] == "main here"
    assert fake.wait_requests(2)[1].json["model"] == "fake-model"


def test_reserved_session_namespaces_are_refused(oa, fake):
    g, tok = oa
    for key in ("cron:nightly", "subagent:x", "acp:y"):
        err = oa_error(http(g, "POST", "/v1/chat/completions", token=tok, headers={"x-openclaw-session-key": key},
                            json={"model": "openclaw", "messages": [{"role": "user", "content": "x"}]}), 400,
                       "invalid_session")
        assert "reserved" in err["message"]
    assert fake.requests == []
    # the main session stays reachable
    fake.push({"text": "main"})
    r = http(g, "POST", "/v1/chat/completions", token=tok, headers={"x-openclaw-session-key": "agent:main:main"},
             json={"model": "openclaw", "messages": [{"role": "user", "content": "x"}]}, timeout=30)
    assert r.status_code == 200, r.text


def test_message_channel_header(gateway_factory, fake):
    """x-openclaw-message-channel, OpenClaw's routing header: normalized as
    OpenClaw does (trimmed, lowercased, an alias to its channel), kept with
    the run, given to the session it starts, and reported as `channel` in
    the run's webhook events.  A later run does not move an existing
    session's channel; a name with spaces inside is a 400; without the
    header the events keep the source, `openai`."""
    from receivers import Receiver

    with Receiver() as rx:
        cfg = oa_config(fake)
        cfg["api"] = {"webhooks": {"outgoing": [{"url": rx.url("/ev"), "events": [
            "message.received", "message.sent", "run.completed"]}]}}
        g = gateway_factory(cfg)
        tok = g.gateway_json()["localToken"]
        body = {"model": "openclaw", "messages": [{"role": "user", "content": "hi"}]}
        fake.push({"text": "one"})
        r = http(g, "POST", "/v1/chat/completions", token=tok, json=body, timeout=30, headers={
            "x-openclaw-session-key": "chan-a", "x-openclaw-message-channel": "Teams "})
        assert r.status_code == 200, r.text
        s = http(g, "GET", "/api/v1/sessions/chan-a", token=tok).json()
        assert s["channel"] == "msteams", s
        runs = http(g, "GET", "/api/v1/runs", token=tok, params={"sessionKey": "chan-a"}).json()["runs"]
        run = http(g, "GET", f"/api/v1/runs/{runs[0]['runId']}", token=tok).json()
        assert run["channel"] == "msteams" and run["source"] == "openai", run
        assert "Channel:     msteams" in g.cli("runs", "show", run["runId"]).stdout
        got = {e: json.loads(rx.wait_event(e)[0]["body"])["data"] for e in
               ("message.received", "message.sent", "run.completed")}
        assert got["message.received"]["channel"] == "msteams"
        assert got["message.sent"]["channel"] == "msteams"
        assert got["run.completed"]["channel"] == "msteams" and got["run.completed"]["source"] == "openai"
        # a later run on another channel: the session keeps its first one
        fake.push({"text": "two"})
        r = http(g, "POST", "/v1/chat/completions", token=tok, json=body, timeout=30, headers={
            "x-openclaw-session-key": "chan-a", "x-openclaw-message-channel": "kakao"})
        assert r.status_code == 200, r.text
        assert http(g, "GET", "/api/v1/sessions/chan-a", token=tok).json()["channel"] == "msteams"
        assert json.loads(rx.wait_event("message.sent", n=2)[1]["body"])["data"]["channel"] == "kakao"
        # no header: no channel; the events name the source
        fake.push({"text": "three"})
        r = http(g, "POST", "/v1/chat/completions", token=tok, json=body, timeout=30,
                 headers={"x-openclaw-session-key": "chan-b"})
        assert r.status_code == 200, r.text
        assert http(g, "GET", "/api/v1/sessions/chan-b", token=tok).json()["channel"] is None
        sent = json.loads(rx.wait_event("message.sent", n=3)[2]["body"])["data"]
        assert sent["sessionKey"] == "agent:main:chan-b" and sent["channel"] == "openai"
        # bad names are refused before anything runs
        n = len(fake.requests)
        for bad in ("two words", "x" * 65, "tab\there"):
            oa_error(http(g, "POST", "/v1/chat/completions", token=tok, json=body,
                          headers={"x-openclaw-message-channel": bad}), 400, "invalid_channel")
        assert len(fake.requests) == n


@pytest.mark.signals
def test_message_channel_survives_a_restart(gateway_factory, fake):
    """The channel is part of the run's durable request: a run replayed
    after SIGKILL still reports it."""
    import signal

    from agentlib import in_thread
    from receivers import Receiver

    with Receiver() as rx:
        cfg = oa_config(fake)
        cfg["api"] = {"webhooks": {"outgoing": [{"url": rx.url("/ev"), "events": ["message.sent"]}]}}
        g = gateway_factory(cfg)
        tok = g.gateway_json()["localToken"]
        fake.push({"text": "never delivered", "first_byte_delay": 8}, {"text": "after the restart"})
        t, _ = in_thread(http, g, "POST", "/v1/chat/completions", token=tok, timeout=20, headers={
            "x-openclaw-session-key": "chan-crash", "x-openclaw-message-channel": "gchat"},
            json={"model": "openclaw", "messages": [{"role": "user", "content": "survive"}]})
        fake.wait_requests(1, timeout=5)
        g.signal(signal.SIGKILL)
        assert g.wait(15) is not None
        t.join(10)
        g2 = gateway_factory.new(cfg, state=g.state).start()
        d = json.loads(rx.wait_event("message.sent")[0]["body"])["data"]
        assert d["content"] == "after the restart" and d["channel"] == "googlechat", d
        s = http(g2, "GET", "/api/v1/sessions/chan-crash", token=g2.gateway_json()["localToken"]).json()
        assert s["channel"] == "googlechat", s
