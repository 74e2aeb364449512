"""Limits on the OpenAI-compatible API, answered in OpenAI's shape instead of
silently: an agent turn or context text past what a run takes is a 400
context_length_exceeded naming the limit (nothing is dropped); a run the
gateway cannot take now is a 503 with Retry-After; absurd upstream token
counts saturate instead of wrapping."""

import json
import threading
import time

import pytest

from e2elib import http
from fakes.llm import FakeLLM

TURN_LIMIT = 2 * 1024 * 1024  # a run's message
CONTEXT_LIMIT = 1024 * 1024  # system messages and earlier turns


def config(fake, agents=None):
    cfg = {
        "gateway": {"http": {"endpoints": {"chatCompletions": {"enabled": True}, "responses": {"enabled": True}}}},
        "models": {"providers": {"f": {"api": "openai-completions", "baseUrl": fake.base_url,
                                       "apiKey": "sk-test-limits", "models": [{"id": "fake-model"}]}}},
        "agents": {"defaults": {"model": {"primary": "f/fake-model"}}},
    }
    cfg["agents"]["defaults"].update(agents or {})
    return cfg


@pytest.fixture
def fake():
    with FakeLLM("openai") as f:
        yield f


@pytest.fixture
def oa(gateway_factory, fake):
    g = gateway_factory(config(fake))
    return g, g.gateway_json()["localToken"]


def chat(g, tok, body, **kw):
    kw.setdefault("timeout", 30)
    return http(g, "POST", "/v1/chat/completions", token=tok, json=body, **kw)


def oa_error(resp, status, code):
    assert resp.status_code == status, resp.text[:500]
    err = resp.json()["error"]
    assert err["code"] == code and err["type"] and err["message"], err
    return err


def tool_turns(*results):
    """A user turn, the assistant's calls, and the client's results."""
    calls = [{"id": f"call_{i}", "type": "function", "function": {"name": "dump", "arguments": "{}"}}
             for i in range(len(results))]
    return [{"role": "user", "content": "dump both"}, {"role": "assistant", "content": None, "tool_calls": calls}] + \
        [{"role": "tool", "tool_call_id": c["id"], "content": r} for c, r in zip(calls, results)]


def test_tool_results_past_the_turn_limit_are_refused_not_dropped(oa, fake):
    g, tok = oa
    big = tool_turns("a" * 1_900_000, "b" * 2_500_000)
    err = oa_error(chat(g, tok, {"model": "openclaw", "messages": big}), 400, "context_length_exceeded")
    assert str(TURN_LIMIT) in err["message"] and err["param"] == "messages", err
    r = http(g, "POST", "/v1/responses", token=tok, timeout=30, json={"model": "openclaw", "input": [
        {"type": "function_call", "call_id": "c1", "name": "dump", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "c" * (TURN_LIMIT + 10)}]})
    err = oa_error(r, 400, "context_length_exceeded")
    assert err["param"] == "input", err
    assert fake.requests == []
    # under the limit, both results reach the model whole
    fake.push({"text": "got both"})
    r = chat(g, tok, {"model": "openclaw", "messages": tool_turns("a" * 900_000, "b" * 900_000)})
    assert r.status_code == 200, r.text[:500]
    sent = json.dumps(fake.wait_requests(1)[0].json["messages"])
    assert "a" * 900_000 in sent and "b" * 900_000 in sent


def test_earlier_turns_past_the_context_limit_are_refused_not_dropped(oa, fake):
    g, tok = oa
    msgs = [{"role": "user", "content": "A" * (CONTEXT_LIMIT + 1)}, {"role": "assistant", "content": "noted"},
            {"role": "user", "content": "and now?"}]
    err = oa_error(chat(g, tok, {"model": "openclaw", "messages": msgs}), 400, "context_length_exceeded")
    assert str(CONTEXT_LIMIT) in err["message"], err
    # system messages and earlier turns together
    both = [{"role": "system", "content": "S" * 600_000}, {"role": "user", "content": "B" * 600_000},
            {"role": "assistant", "content": "noted"}, {"role": "user", "content": "and now?"}]
    oa_error(chat(g, tok, {"model": "openclaw", "messages": both}), 400, "context_length_exceeded")
    assert fake.requests == []
    # under it, every earlier turn travels as context
    fake.push({"text": "fine"})
    msgs[0]["content"] = "A" * 500_000
    r = chat(g, tok, {"model": "openclaw", "messages": msgs})
    assert r.status_code == 200, r.text[:500]
    sent = json.dumps(fake.wait_requests(1)[0].json["messages"])
    assert "A" * 500_000 in sent and "noted" in sent


def test_a_turn_too_large_to_store_escaped_is_a_400(oa, fake):
    """A turn within the 2 MiB of text a run takes, but made of control
    characters that JSON escapes six times over, does not fit the stored
    request (8 MiB): a 400 that says so, where the request used to be
    stored cut short (or refused as not JSON)."""
    g, tok = oa
    r = chat(g, tok, {"model": "openclaw", "messages": [{"role": "user", "content": "\x01" * 1_500_000}]},
             timeout=60)
    err = oa_error(r, 400, "invalid_request")
    assert "too large to store" in err["message"], err
    assert fake.requests == []
    fake.push({"text": "still fine"})
    r = chat(g, tok, {"model": "openclaw", "messages": [{"role": "user", "content": "\x01" * 1000}]}, timeout=30)
    assert r.status_code == 200, r.text


def test_system_prompt_and_instructions_past_the_limit_are_refused(gateway_factory, fake):
    """The configured system prompt plus a request's system messages past
    the 1 MiB a call's system prompt holds: a 400 at submission, where the
    request's instructions used to be left out of every call."""
    g = gateway_factory(config(fake, agents={"systemPrompt": "p" * 600_000}))
    tok = g.gateway_json()["localToken"]
    msgs = [{"role": "system", "content": "s" * 600_000}, {"role": "user", "content": "hi"}]
    err = oa_error(chat(g, tok, {"model": "openclaw", "messages": msgs}), 400, "invalid_request")
    assert "system prompt" in err["message"], err
    assert fake.requests == []
    fake.push({"text": "fits"})
    msgs[0]["content"] = "s" * 400_000
    r = chat(g, tok, {"model": "openclaw", "messages": msgs})
    assert r.status_code == 200, r.text
    system = fake.wait_requests(1)[0].json["messages"][0]
    assert system["role"] == "system" and system["content"].endswith("s" * 400_000)


def test_full_run_queue_is_503_with_retry_after(gateway_factory):
    with FakeLLM("openai", default={"text": "slow ok", "first_byte_delay": 1.5}) as fake:
        g = gateway_factory(config(fake, {"queueSize": 1, "maxConcurrent": 1}))
        tok = g.gateway_json()["localToken"]
        out = {}

        def run(name):
            out[name] = chat(g, tok, {"model": "openclaw", "messages": [{"role": "user", "content": name}]})

        threads = [threading.Thread(target=run, args=("one",))]
        threads[0].start()
        fake.wait_requests(1, timeout=5)  # the first run is running
        threads.append(threading.Thread(target=run, args=("two",)))
        threads[1].start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if http(g, "GET", "/health/detail", token=tok).json()["agent"]["queued"] >= 1:
                break
            time.sleep(0.02)
        r = chat(g, tok, {"model": "openclaw", "messages": [{"role": "user", "content": "three"}]}, timeout=5)
        err = oa_error(r, 503, "queue_full")
        assert err["type"] == "api_error" and r.headers.get("retry-after") == "1", (err, dict(r.headers))
        for t in threads:
            t.join(15)
        assert [out[k].status_code for k in ("one", "two")] == [200, 200]


BIG = 1 << 62
SATURATED = (1 << 63) - 1


def test_absurd_upstream_token_counts_saturate(gateway_factory):
    # Anthropic's wire has no total of its own (the fake's would overflow)
    with FakeLLM("anthropic") as fake:
        cfg = config(fake)
        cfg["models"]["providers"]["f"]["api"] = "anthropic-messages"
        g = gateway_factory(cfg)
        check_saturated(g, g.gateway_json()["localToken"], fake)


def check_saturated(g, tok, fake):
    fake.push({"text": "x", "usage": {"input": BIG, "output": BIG}, "times": 3})
    r = chat(g, tok, {"model": "f/fake-model", "messages": [{"role": "user", "content": "count"}]})
    assert r.status_code == 200, r.text
    assert r.json()["usage"] == {"prompt_tokens": BIG, "completion_tokens": BIG, "total_tokens": SATURATED}
    r = chat(g, tok, {"model": "f/fake-model", "stream": True, "stream_options": {"include_usage": True},
                      "messages": [{"role": "user", "content": "count"}]})
    chunks = [json.loads(line[6:]) for line in r.text.splitlines()
              if line.startswith("data: {")]
    assert chunks[-1]["usage"]["total_tokens"] == SATURATED, chunks[-1]
    r = http(g, "POST", "/v1/responses", token=tok, timeout=30,
             json={"model": "f/fake-model", "input": "count"})
    assert r.status_code == 200, r.text
    u = r.json()["usage"]
    assert (u["input_tokens"], u["output_tokens"], u["total_tokens"]) == (BIG, BIG, SATURATED), u
