"""/v1/chat/completions pass-through: the request parameters beyond the
conversation (top_p, stop, seed, response_format, tool_choice, ...) reach
an OpenAI-compatible upstream as the client sent them, with any server
extension key; Anthropic and Gemini get their equivalents, also after a
fallback across APIs; bad or unsupported values are a 400 naming the
parameter, and nothing goes upstream."""

import json

import pytest

from e2elib import http
from fakes.llm import FakeLLM

TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "find",
                                            "parameters": {"type": "object",
                                                           "properties": {"q": {"type": "string"}}}}}]
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
PARAMS = {
    "top_p": 0.9, "stop": ["END", "STOP"], "seed": 42, "presence_penalty": 0.5, "frequency_penalty": -0.5,
    "response_format": {"type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA}},
    "tool_choice": {"type": "function", "function": {"name": "lookup"}}, "parallel_tool_calls": False,
    "user": "u-1", "logit_bias": {"50256": -100}, "top_k": 40,
    "min_p": 0.05, "provider": {"order": ["a", "b"]},  # extensions of vLLM and OpenRouter
}
# the defaults of n and logprobs are accepted and not sent; null means "not given"
DEFAULTS = {"n": 1, "logprobs": False, "temperature": None, "service_tier": None}


@pytest.fixture
def fakes():
    with FakeLLM("openai") as o, FakeLLM("anthropic") as a, FakeLLM("gemini") as g:
        yield o, a, g


def config(o, a, g, fallbacks=()):
    def prov(api, fake, model):
        return {"api": api, "baseUrl": fake.base_url, "apiKey": "k-" + model, "models": [{"id": model}]}
    return {
        "gateway": {"http": {"endpoints": {"chatCompletions": {"enabled": True}}}},
        "models": {"providers": {"o": prov("openai-completions", o, "gpt-x"),
                                 "a": prov("anthropic-messages", a, "claude-x"),
                                 "g": prov("google-generative-ai", g, "gemini-x")}},
        "agents": {"defaults": {"model": {"primary": "o/gpt-x", "fallbacks": list(fallbacks)}}},
    }


def gw(gateway_factory, cfg):
    g = gateway_factory(cfg)
    return g, g.gateway_json()["localToken"]


def chat(g, tok, model, extra, stream=False):
    body = {"model": model, "messages": [{"role": "user", "content": "find x"}], "tools": TOOLS, **extra}
    if stream:
        body.update(stream=True, stream_options={"include_usage": False})
    r = http(g, "POST", "/v1/chat/completions", token=tok, json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r


@pytest.mark.parametrize("stream", [False, True])
def test_openai_upstream_gets_every_parameter_as_sent(gateway_factory, fakes, stream):
    o, a, g_ = fakes
    g, tok = gw(gateway_factory, config(o, a, g_))
    o.push({"text": '{"answer": "x"}', "usage": {"input": 3, "output": 2}})
    r = chat(g, tok, "o/gpt-x", {**PARAMS, **DEFAULTS}, stream=stream)
    sent = o.wait_requests(1)[0].json
    for k, v in PARAMS.items():
        assert sent[k] == v, k
    for k in DEFAULTS:
        assert k not in sent, k
    assert sent["model"] == "gpt-x"
    if stream:
        # the gateway still asks for usage (it accounts for it) but the client said no
        assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
        lines = [ln[6:] for ln in r.text.splitlines() if ln.startswith("data: ")]
        assert lines[-1] == "[DONE]"
        assert not any(json.loads(ln).get("usage") for ln in lines[:-1])
    else:
        assert not sent.get("stream")
        assert r.json()["choices"][0]["message"]["content"] == '{"answer": "x"}'


def test_anthropic_and_gemini_get_their_equivalents(gateway_factory, fakes):
    o, a, g_ = fakes
    g, tok = gw(gateway_factory, config(o, a, g_))
    a.push({"text": "ok"})
    chat(g, tok, "a/claude-x", PARAMS)
    sent = a.wait_requests(1)[0].json
    assert (sent["top_p"], sent["top_k"], sent["stop_sequences"]) == (0.9, 40, ["END", "STOP"])
    assert sent["tool_choice"] == {"type": "tool", "name": "lookup", "disable_parallel_tool_use": True}
    assert sent["metadata"] == {"user_id": "u-1"}
    for k in ("seed", "presence_penalty", "response_format", "logit_bias", "min_p", "provider", "stop", "user"):
        assert k not in sent, k

    g_.push({"text": '{"answer": "x"}'})
    chat(g, tok, "g/gemini-x", PARAMS)
    sent = g_.wait_requests(1)[0].json
    cfg = sent["generationConfig"]
    assert (cfg["topP"], cfg["topK"], cfg["stopSequences"], cfg["seed"]) == (0.9, 40, ["END", "STOP"], 42)
    assert (cfg["presencePenalty"], cfg["frequencyPenalty"]) == (0.5, -0.5)
    assert cfg["responseMimeType"] == "application/json" and cfg["responseJsonSchema"] == SCHEMA
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}}

    # the string forms of tool_choice, and a lone string stop
    a.push({"text": "ok"})
    g_.push({"text": "ok"})
    chat(g, tok, "a/claude-x", {"tool_choice": "required", "stop": "END"})
    chat(g, tok, "g/gemini-x", {"tool_choice": "none", "response_format": {"type": "json_object"}})
    sent_a, sent_g = a.wait_requests(2)[1].json, g_.wait_requests(2)[1].json
    assert sent_a["tool_choice"] == {"type": "any"} and sent_a["stop_sequences"] == ["END"]
    assert sent_g["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    assert sent_g["generationConfig"]["responseMimeType"] == "application/json"
    assert "responseJsonSchema" not in sent_g["generationConfig"]


def test_a_fallback_across_apis_keeps_the_parameters(gateway_factory, fakes):
    o, a, g_ = fakes
    g, tok = gw(gateway_factory, config(o, a, g_, fallbacks=["a/claude-x"]))
    o.push({"error_kind": "auth", "times": -1})  # not retried: straight to the fallback
    a.push({"text": "from the fallback"})
    r = chat(g, tok, "o/gpt-x", {"stop": ["END"], "top_p": 0.5, "tool_choice": "auto"})
    assert r.json()["choices"][0]["message"]["content"] == "from the fallback"
    assert o.wait_requests(1)[0].json["stop"] == ["END"]
    sent = a.wait_requests(1)[0].json
    assert (sent["stop_sequences"], sent["top_p"], sent["tool_choice"]) == (["END"], 0.5, {"type": "auto"})


BAD = [
    ("top_p", 1.5), ("top_p", "high"), ("stop", ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m",
                                                  "n", "o", "p", "q"]),
    ("stop", [""]), ("stop", 5), ("seed", 1.5), ("presence_penalty", 3), ("frequency_penalty", -2.5),
    ("response_format", {"type": "xml"}), ("response_format", {"type": "json_schema", "json_schema": {}}),
    ("response_format", "json"), ("tool_choice", "sometimes"), ("tool_choice", {"type": "function"}),
    ("parallel_tool_calls", "yes"), ("logit_bias", {"1": 500}), ("user", 7), ("top_k", 0.5),
    ("temperature", 3), ("temperature", "warm"),
    # answers this gateway cannot carry: refused rather than half-honoured
    ("n", 2), ("logprobs", True), ("top_logprobs", 3), ("functions", [{"name": "f"}]), ("function_call", "auto"),
    ("modalities", ["text", "audio"]), ("audio", {"voice": "alloy", "format": "wav"}),
]


def test_bad_or_unsupported_parameters_are_a_400_naming_them(gateway_factory, fakes):
    o, a, g_ = fakes
    g, tok = gw(gateway_factory, config(o, a, g_))
    for key, value in BAD:
        r = http(g, "POST", "/v1/chat/completions", token=tok,
                 json={"model": "o/gpt-x", "messages": [{"role": "user", "content": "x"}], key: value})
        assert r.status_code == 400, (key, value, r.text)
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["code"] == "invalid_parameter", (key, err)
        assert err["param"] == key and key in err["message"], (key, err)
    assert o.requests == []
