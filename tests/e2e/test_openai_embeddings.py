"""POST /v1/embeddings (OpenClaw v4): a provider model's embeddings in
OpenAI's shape, through an OpenAI-compatible server or Gemini's
batchEmbedContents (both fakes speak the real wire formats); agent targets
with x-openclaw-model; base64; key rotation past a rejected key; bad input
answered with a 400 naming the field."""

import base64
import struct

import pytest

from e2elib import http
from fakes.llm import FakeLLM


@pytest.fixture
def fakes():
    with FakeLLM("openai", api_keys=["k-good"]) as o, FakeLLM("gemini") as g:
        yield o, g


def config(o, g, enabled=True):
    return {
        "gateway": {"http": {"endpoints": {"chatCompletions": {"enabled": enabled}}}},
        "models": {"providers": {
            # the first key is refused: the call moves on to the next one
            "o": {"api": "openai-completions", "baseUrl": o.base_url, "apiKeys": ["k-bad", "k-good"],
                  "models": [{"id": "text-embedding-3-small", "pricing": {"input": 0.02, "output": 0}}]},
            "g": {"api": "google-generative-ai", "baseUrl": g.base_url, "apiKey": "k-g",
                  "models": [{"id": "text-embedding-004"}]},
            "a": {"api": "anthropic-messages", "baseUrl": "http://127.0.0.1:9", "apiKey": "k-a",
                  "models": [{"id": "claude-x"}]}}},
        "agents": {"defaults": {"model": {"primary": "a/claude-x"}}},
    }


def embed(g, tok, body, **kw):
    return http(g, "POST", "/v1/embeddings", token=tok, json=body, timeout=20, **kw)


def test_openai_compatible_embeddings(gateway_factory, fakes):
    o, g_ = fakes
    g = gateway_factory(config(o, g_))
    tok = g.gateway_json()["localToken"]
    r = embed(g, tok, {"model": "o/text-embedding-3-small", "input": ["hello world", "bye", "hello world"],
                       "dimensions": 6, "user": "u1"})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["object"] == "list" and b["model"] == "o/text-embedding-3-small"
    assert [d["index"] for d in b["data"]] == [0, 1, 2] and all(d["object"] == "embedding" for d in b["data"])
    vecs = [d["embedding"] for d in b["data"]]
    assert len(vecs[0]) == 6 and vecs[0] == vecs[2] and vecs[0] != vecs[1]
    assert b["usage"] == {"prompt_tokens": 5, "total_tokens": 5}  # the fake counts words
    sent = [q for q in o.requests if q.path.endswith("/embeddings")]
    assert [q.api_key for q in sent] == ["k-bad", "k-good"]  # rotated past the refused key
    assert sent[-1].json == {"model": "text-embedding-3-small", "input": ["hello world", "bye", "hello world"],
                             "dimensions": 6, "user": "u1"}
    # a lone string, and base64 as OpenAI encodes it (float32 little-endian)
    r = embed(g, tok, {"model": "o/text-embedding-3-small", "input": "bye", "encoding_format": "base64"})
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    floats = struct.unpack("<%df" % (len(raw) // 4), raw)
    plain = embed(g, tok, {"model": "o/text-embedding-3-small", "input": "bye"}).json()["data"][0]["embedding"]
    assert len(floats) == len(plain) == 8 and all(abs(a - b) < 1e-6 for a, b in zip(floats, plain))
    # the tokens count with the gateway's usage (the fake counts a word per token: 5 + 1 + 1)
    usage = http(g, "GET", "/health/detail", token=tok).json()["usage"]
    assert usage["inputTokens"] == 7, usage


def test_gemini_embeddings_and_agent_targets(gateway_factory, fakes):
    o, g_ = fakes
    g = gateway_factory(config(o, g_))
    tok = g.gateway_json()["localToken"]
    r = embed(g, tok, {"model": "openclaw/default", "input": ["a", "b"], "dimensions": 4},
              headers={"x-openclaw-model": "g/text-embedding-004"})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["model"] == "openclaw/default" and [len(d["embedding"]) for d in b["data"]] == [4, 4]
    req = g_.wait_requests(1)[0]
    assert req.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert req.headers["x-goog-api-key"] == "k-g"
    assert req.json == {"requests": [
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": t}]}, "outputDimensionality": 4}
        for t in ("a", "b")]}
    # an agent target without the header: nothing to embed with
    r = embed(g, tok, {"model": "openclaw", "input": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"


def test_refusals(gateway_factory, fakes):
    o, g_ = fakes
    g = gateway_factory(config(o, g_))
    tok = g.gateway_json()["localToken"]
    bad = [
        ({"input": "x"}, "model"),
        ({"model": "o/text-embedding-3-small"}, "input"),
        ({"model": "o/text-embedding-3-small", "input": ""}, "input"),
        ({"model": "o/text-embedding-3-small", "input": [1, 2, 3]}, "input"),  # token arrays
        ({"model": "o/text-embedding-3-small", "input": ["x"] * 2049}, "input"),
        ({"model": "o/text-embedding-3-small", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "o/text-embedding-3-small", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "a/claude-x", "input": "x"}, "model"),  # Anthropic has no embeddings
    ]
    for body, param in bad:
        r = embed(g, tok, body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["param"] == param, (body, r.json())
    r = embed(g, tok, {"model": "nope/none", "input": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert not [q for q in o.requests if q.path.endswith("/embeddings")]
    assert http(g, "POST", "/v1/embeddings", json={"model": "o/x", "input": "x"}).status_code == 401
    # off with both switches off
    g2 = gateway_factory(config(o, g_, enabled=False))
    assert embed(g2, g2.gateway_json()["localToken"], {"model": "o/text-embedding-3-small",
                                                       "input": "x"}).status_code == 404


def test_provider_failure_is_an_openai_error(gateway_factory):
    with FakeLLM("openai", api_keys=["only-this"]) as o, FakeLLM("gemini") as g_:
        cfg = config(o, g_)
        cfg["models"]["providers"]["o"]["apiKeys"] = ["wrong-1", "wrong-2"]
        g = gateway_factory(cfg)
        tok = g.gateway_json()["localToken"]
        r = embed(g, tok, {"model": "o/text-embedding-3-small", "input": "x"})
        assert r.status_code == 502, r.text
        assert r.json()["error"]["code"] == "auth" and r.json()["error"]["message"]
        assert len([q for q in o.requests if q.path.endswith("/embeddings")]) == 2  # each key tried once
