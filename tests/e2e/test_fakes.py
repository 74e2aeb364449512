"""Self-test of the fake LLM upstreams (tests/e2e/fakes/llm.py).

The gateway's provider tests are only as good as the fakes, so each fake is
exercised here with plain `requests`: JSON and SSE bodies in each
provider's real shape (one stream per provider compared byte for byte
with text written out by hand), tool calls, usage, error shapes and retry
headers, dropped connections, malformed streams, delays, per-key scripting,
key checking, the standalone script and its control endpoints.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes.llm import FakeLLM, split_text  # noqa: E402

HERE = Path(__file__).resolve().parent


def post(fake, body, *, key="k-test", stream=None, path=None, timeout=10, **kw):
    """POST a request the way the gateway would, for any provider."""
    p = fake.provider
    headers = {"content-type": "application/json"}
    if p == "anthropic":
        headers.update({"x-api-key": key, "anthropic-version": "2023-06-01"})
        url = fake.url + (path or "/v1/messages")
    elif p == "openai":
        headers["authorization"] = f"Bearer {key}"
        url = fake.base_url + (path or "/chat/completions")
    else:
        headers["x-goog-api-key"] = key
        model = body.pop("model", "gemini-test")
        verb = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
        url = fake.url + (path or f"/v1beta/models/{model}{verb}")
    return requests.post(url, data=json.dumps(body), headers=headers, stream=bool(stream), timeout=timeout, **kw)


def body_for(provider, *, stream, model=None, usage=True):
    if provider == "anthropic":
        b = {"model": model or "claude-test", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    elif provider == "openai":
        b = {"model": model or "gpt-test", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
        if stream and usage:
            b["stream_options"] = {"include_usage": True}
    else:
        return {"model": model or "gemini-test", "contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    if stream:
        b["stream"] = True
    return b


def sse_events(raw):
    """Minimal SSE split for assertions: [(event, data)] (LF or CRLF)."""
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        if not block.strip():
            continue
        ev, data = "message", []
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                ev = line[7:].decode()
            elif line.startswith(b"data: "):
                data.append(line[6:].decode())
        out.append((ev, "\n".join(data)))
    return out


@pytest.fixture(params=["anthropic", "openai", "gemini"])
def fake(request):
    with FakeLLM(request.param, strict=True) as f:
        yield f


# --------------------------------------------------------------------------
# Byte-exact streams, one per provider, written out by hand
# --------------------------------------------------------------------------

ANTHROPIC_STREAM = (
    'event: message_start\n'
    'data: {"type":"message_start","message":{"id":"msg_fake_1","type":"message","role":"assistant",'
    '"model":"claude-test","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,'
    '"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}\n\n'
    'event: content_block_start\n'
    'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    'event: ping\n'
    'data: {"type": "ping"}\n\n'
    'event: content_block_delta\n'
    'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi t"}}\n\n'
    'event: content_block_delta\n'
    'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"here"}}\n\n'
    'event: content_block_stop\n'
    'data: {"type":"content_block_stop","index":0}\n\n'
    'event: message_delta\n'
    'data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    '"usage":{"output_tokens":3}}\n\n'
    'event: message_stop\n'
    'data: {"type":"message_stop"}\n\n'
)

_OAI = '{"id":"chatcmpl-fake1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-test",' \
       '"system_fingerprint":"fp_fake","choices":['
OPENAI_STREAM = (
    'data: ' + _OAI + '{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,'
    '"finish_reason":null}],"usage":null}\n\n'
    'data: ' + _OAI + '{"index":0,"delta":{"content":"Hi t"},"logprobs":null,"finish_reason":null}],'
    '"usage":null}\n\n'
    'data: ' + _OAI + '{"index":0,"delta":{"content":"here"},"logprobs":null,"finish_reason":null}],'
    '"usage":null}\n\n'
    'data: ' + _OAI + '{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}\n\n'
    'data: ' + _OAI + '],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,'
    '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
    '"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}}}\n\n'
    'data: [DONE]\n\n'
)

GEMINI_STREAM = (
    'data: {"candidates":[{"content":{"parts":[{"text":"Hi t"}],"role":"model"},"index":0}],'
    '"usageMetadata":{"promptTokenCount":12,"totalTokenCount":12,"promptTokensDetails":'
    '[{"modality":"TEXT","tokenCount":12}]},"modelVersion":"gemini-test","responseId":"fake1"}\r\n\r\n'
    'data: {"candidates":[{"content":{"parts":[{"text":"here"}],"role":"model"},"finishReason":"STOP",'
    '"index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":3,"totalTokenCount":15,'
    '"promptTokensDetails":[{"modality":"TEXT","tokenCount":12}]},"modelVersion":"gemini-test",'
    '"responseId":"fake1"}\r\n\r\n'
)


@pytest.mark.parametrize("provider,expected", [
    ("anthropic", ANTHROPIC_STREAM), ("openai", OPENAI_STREAM), ("gemini", GEMINI_STREAM)])
def test_stream_is_byte_exact(provider, expected):
    with FakeLLM(provider) as fake:
        fake.push({"text": "Hi there", "chunks": 2, "usage": {"input": 12, "output": 3}})
        r = post(fake, body_for(provider, stream=True), stream=True)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["transfer-encoding"] == "chunked"
        assert r.raw.read() == expected.encode()


# --------------------------------------------------------------------------
# JSON replies, streams with tool calls, usage
# --------------------------------------------------------------------------

def test_json_text_and_usage(fake):
    fake.push({"text": "Hello", "usage": {"input": 7, "output": 2, "cache_read": 3, "cache_write": 4}})
    r = post(fake, body_for(fake.provider, stream=False))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    j = r.json()
    if fake.provider == "anthropic":
        assert j["type"] == "message" and j["content"] == [{"type": "text", "text": "Hello"}]
        assert j["stop_reason"] == "end_turn"
        assert j["usage"] == {"input_tokens": 7, "output_tokens": 2, "cache_read_input_tokens": 3,
                              "cache_creation_input_tokens": 4}
    elif fake.provider == "openai":
        assert j["object"] == "chat.completion"
        assert j["choices"][0]["message"]["content"] == "Hello"
        assert j["choices"][0]["finish_reason"] == "stop"
        assert j["usage"]["prompt_tokens"] == 14 and j["usage"]["prompt_tokens_details"]["cached_tokens"] == 3
        assert j["usage"]["completion_tokens"] == 2
    else:
        assert j["candidates"][0]["content"] == {"parts": [{"text": "Hello"}], "role": "model"}
        assert j["candidates"][0]["finishReason"] == "STOP"
        assert j["usageMetadata"]["promptTokenCount"] == 14  # 7 + 3 cached + 4 "written"
        assert j["usageMetadata"]["cachedContentTokenCount"] == 3
        assert j["usageMetadata"]["candidatesTokenCount"] == 2


def _tool_calls_from_stream(provider, raw):
    """Rebuild (name, arguments) pairs from a stream, as a client would."""
    calls = {}
    for ev, data in sse_events(raw):
        if data == "[DONE]":
            continue
        o = json.loads(data)
        if provider == "anthropic":
            if o["type"] == "content_block_start" and o["content_block"]["type"] == "tool_use":
                calls[o["index"]] = [o["content_block"]["name"], "", o["content_block"]["id"]]
            elif o["type"] == "content_block_delta" and o["delta"]["type"] == "input_json_delta":
                calls[o["index"]][1] += o["delta"]["partial_json"]
        elif provider == "openai":
            for c in (o["choices"][0]["delta"].get("tool_calls") or []) if o["choices"] else []:
                slot = calls.setdefault(c["index"], ["", "", None])
                slot[0] += c["function"].get("name", "")
                slot[1] += c["function"].get("arguments", "")
                slot[2] = c.get("id") or slot[2]
        else:
            for part in o["candidates"][0]["content"]["parts"]:
                if "functionCall" in part:
                    calls[len(calls)] = [part["functionCall"]["name"], json.dumps(part["functionCall"]["args"]), None]
    return [(n, json.loads(a), i) for n, a, i in (calls[k] for k in sorted(calls))]


def test_stream_parallel_tool_calls(fake):
    fake.push({"text": "Checking.", "chunks": 3,
               "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}},
                              {"name": "current_time", "arguments": {}, "id": "given_id"}]})
    r = post(fake, body_for(fake.provider, stream=True), stream=True)
    raw = r.raw.read()
    calls = _tool_calls_from_stream(fake.provider, raw)
    assert [(n, a) for n, a, _ in calls] == [("get_weather", {"city": "Paris"}), ("current_time", {})]
    if fake.provider != "gemini":
        assert calls[1][2] == "given_id" and calls[0][2]
    events = sse_events(raw)
    if fake.provider == "anthropic":
        assert json.loads(events[-2][1])["delta"]["stop_reason"] == "tool_use"
        # arguments arrive in several input_json_delta pieces, the first ""
        assert sum(1 for e, d in events if "input_json_delta" in d) >= 4
    elif fake.provider == "openai":
        assert json.loads(events[-3][1])["choices"][0]["finish_reason"] == "tool_calls"
        assert events[-1][1] == "[DONE]"
    else:
        assert json.loads(events[-1][1])["candidates"][0]["finishReason"] == "STOP"
        assert "".join(json.loads(d)["candidates"][0]["content"]["parts"][0].get("text", "")
                       for _, d in events[:-1]) == "Checking."


def test_json_tool_calls(fake):
    fake.push({"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]})
    j = post(fake, body_for(fake.provider, stream=False)).json()
    if fake.provider == "anthropic":
        assert j["content"][0]["type"] == "tool_use" and j["content"][0]["input"] == {"q": "x"}
        assert j["stop_reason"] == "tool_use"
    elif fake.provider == "openai":
        m = j["choices"][0]["message"]
        assert m["content"] is None and json.loads(m["tool_calls"][0]["function"]["arguments"]) == {"q": "x"}
        assert j["choices"][0]["finish_reason"] == "tool_calls"
    else:
        assert j["candidates"][0]["content"]["parts"] == [{"functionCall": {"name": "lookup", "args": {"q": "x"}}}]


def test_openai_usage_chunk_only_when_asked():
    with FakeLLM("openai") as fake:
        raw = post(fake, body_for("openai", stream=True, usage=False), stream=True).raw.read()
        events = sse_events(raw)
        assert all('"usage"' not in d for _, d in events)
        assert events[-1][1] == "[DONE]"


def test_gemini_stream_without_alt_sse_is_a_json_array():
    with FakeLLM("gemini") as fake:
        fake.push({"text": "abcd", "chunks": 2})
        r = post(fake, {"contents": []}, path="/v1beta/models/g:streamGenerateContent")
        assert r.status_code == 200
        arr = r.json()
        assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in arr] == ["ab", "cd"]


# --------------------------------------------------------------------------
# Errors and retry hints
# --------------------------------------------------------------------------

def test_429_with_retry_headers(fake):
    fake.push({"status": 429, "retry_after": 2}, {"status": 429, "retry_after_ms": 150})
    r = post(fake, body_for(fake.provider, stream=False))
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    j = r.json()
    if fake.provider == "anthropic":
        assert j["type"] == "error" and j["error"]["type"] == "rate_limit_error"
    elif fake.provider == "openai":
        assert j["error"]["code"] == "rate_limit_exceeded"
    else:
        assert j["error"]["status"] == "RESOURCE_EXHAUSTED" and j["error"]["code"] == 429
    r = post(fake, body_for(fake.provider, stream=True), stream=True)
    assert r.status_code == 429 and r.headers["retry-after-ms"] == "150"


@pytest.mark.parametrize("kind,status", [("context_length", 400), ("auth", 401), ("overloaded", 529),
                                         ("server", 500), ("timeout", 504)])
def test_error_kinds(fake, kind, status):
    fake.push({"error_kind": kind})
    r = post(fake, body_for(fake.provider, stream=False))
    assert r.status_code == status
    msg = json.dumps(r.json())
    if kind == "context_length":
        assert any(w in msg for w in ("prompt is too long", "maximum context length", "exceeds the maximum"))


def test_plain_statuses_and_custom_error(fake):
    fake.push({"status": 500}, {"status": 401, "error": {"message": "custom words"}},
              {"status": 502, "body": "<html>bad gateway</html>"})
    assert post(fake, body_for(fake.provider, stream=False)).status_code == 500
    r = post(fake, body_for(fake.provider, stream=False))
    assert r.status_code == 401 and "custom words" in r.text
    r = post(fake, body_for(fake.provider, stream=False))
    assert r.status_code == 502 and r.text == "<html>bad gateway</html>"


def test_stream_error_event(fake):
    fake.push({"text": "partial answer", "chunks": 4, "stream_error": {"type": "overloaded_error", "message": "Overloaded"}})
    raw = post(fake, body_for(fake.provider, stream=True), stream=True).raw.read()
    last = sse_events(raw)[-1]
    if fake.provider == "anthropic":
        assert last[0] == "error" and json.loads(last[1])["error"]["type"] == "overloaded_error"
    else:
        assert "error" in json.loads(last[1])


def test_malformed_stream(fake):
    fake.push({"text": "abc", "malformed": True})
    raw = post(fake, body_for(fake.provider, stream=True), stream=True).raw.read()
    bad = 0
    for _, d in sse_events(raw):
        try:
            json.loads(d) if d != "[DONE]" else None
        except ValueError:
            bad += 1
    assert bad == 1


def test_drop_mid_stream(fake):
    fake.push({"text": "a long answer that never ends", "chunks": 6, "drop_after": 3})
    r = post(fake, body_for(fake.provider, stream=True), stream=True)
    got = b""
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in r.iter_content(chunk_size=None):
            got += chunk
    assert len(sse_events(got)) == 3


def test_drop_mid_json_body(fake):
    # http.client, because urllib3 1.x returns a short body without complaint.
    fake.push({"text": "hello", "drop_after": 10})
    path = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions",
            "gemini": "/v1beta/models/m:generateContent"}[fake.provider]
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    conn.request("POST", path, body=json.dumps(body_for(fake.provider, stream=False)),
                 headers={"content-type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200 and int(resp.getheader("content-length")) > 10
    with pytest.raises(http.client.IncompleteRead) as e:
        resp.read()
    assert len(e.value.partial) == 10
    conn.close()


def test_raw_body(fake):
    fake.push({"raw": "data: {\"odd\": true}\n\n"})
    r = post(fake, body_for(fake.provider, stream=True), stream=True)
    assert r.raw.read() == b'data: {"odd": true}\n\n'


# --------------------------------------------------------------------------
# Delays
# --------------------------------------------------------------------------

def test_first_byte_and_chunk_delays():
    with FakeLLM("openai") as fake:
        fake.push({"text": "abcd", "chunks": 4, "first_byte_delay": 0.3, "chunk_delay": 0.05})
        t0 = time.monotonic()
        r = post(fake, body_for("openai", stream=True), stream=True)
        t_head = time.monotonic() - t0
        r.raw.read()
        t_all = time.monotonic() - t0
        assert t_head >= 0.3
        assert t_all >= 0.3 + 0.05 * 5  # 7 events, 6 gaps; keep margin for slow hosts


def test_zero_delay_mode_ignores_delays():
    with FakeLLM("anthropic", zero_delay=True) as fake:
        fake.push({"text": "abcd", "chunks": 4, "first_byte_delay": 5, "chunk_delay": 5})
        t0 = time.monotonic()
        r = post(fake, body_for("anthropic", stream=True), stream=True)
        assert sse_events(r.raw.read())[-1][0] == "message_stop"
        assert time.monotonic() - t0 < 2


# --------------------------------------------------------------------------
# Scripting: order, matching, defaults, keys; recording
# --------------------------------------------------------------------------

def test_match_by_key_and_sticky_replies(fake):
    fake.push({"status": 429, "retry_after": 30, "match": {"api_key": "key-A"}, "times": -1},
              {"text": "from B", "match": {"api_key": "key-B"}})
    for _ in range(3):
        assert post(fake, body_for(fake.provider, stream=False), key="key-A").status_code == 429
    r = post(fake, body_for(fake.provider, stream=False), key="key-B")
    assert r.status_code == 200 and "from B" in r.text
    assert fake.pending == 1  # the sticky one stays
    assert [q.api_key for q in fake.requests] == ["key-A"] * 3 + ["key-B"]


def test_times_counts_down():
    with FakeLLM("openai", strict=True) as fake:
        fake.push({"text": "x", "times": 2})
        assert post(fake, body_for("openai", stream=False)).status_code == 200
        assert post(fake, body_for("openai", stream=False)).status_code == 200
        assert post(fake, body_for("openai", stream=False)).status_code == 500  # strict: nothing left


def test_default_reply_and_strict():
    with FakeLLM("anthropic") as fake:
        assert post(fake, body_for("anthropic", stream=False)).json()["content"][0]["text"] == "ok"
    with FakeLLM("anthropic", strict=True) as fake:
        r = post(fake, body_for("anthropic", stream=False))
        assert r.status_code == 500 and "no scripted response" in r.text


def test_key_checking(fake):
    fake.api_keys = {"good"}
    fake.push({"text": "fine"})
    bad = post(fake, body_for(fake.provider, stream=False), key="bad")
    assert bad.status_code == (400 if fake.provider == "gemini" else 401)
    assert post(fake, body_for(fake.provider, stream=False), key="good").status_code == 200


def test_recording(fake):
    fake.push({"text": "x"})
    body = body_for(fake.provider, stream=False, model="the-model")
    post(fake, dict(body), key="sk-recorded")
    req = fake.wait_requests(1)[0]
    assert req.method == "POST" and req.api_key == "sk-recorded" and req.model == "the-model"
    assert req.headers["content-type"] == "application/json"
    if fake.provider == "gemini":
        assert req.path == "/v1beta/models/the-model:generateContent" and "contents" in req.json
    else:
        assert req.json["messages"][0]["content"] == "hi"
    with pytest.raises(TimeoutError):
        fake.wait_requests(2, timeout=0.2)


def test_gemini_key_in_query_is_recorded():
    with FakeLLM("gemini") as fake:
        requests.post(fake.url + "/v1beta/models/m:generateContent?key=qkey", json={"contents": []}, timeout=5)
        assert fake.last.api_key == "qkey"


def test_bad_route_and_bad_body(fake):
    r = requests.post(fake.url + "/nope", data="{}", timeout=5)
    assert r.status_code == 404
    headers = {"x-api-key": "k", "authorization": "Bearer k", "x-goog-api-key": "k"}
    path = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions",
            "gemini": "/v1beta/models/m:generateContent"}[fake.provider]
    r = requests.post(fake.url + path, data="not json", headers=headers, timeout=5)
    assert r.status_code == 400
    assert fake.requests[-1].json is None and fake.requests[-1].body == b"not json"


def test_keep_alive_reuses_the_connection():
    with FakeLLM("openai") as fake:
        s = requests.Session()
        for _ in range(3):
            r = s.post(fake.base_url + "/chat/completions", json=body_for("openai", stream=True), stream=True,
                       headers={"authorization": "Bearer k"}, timeout=5)
            r.raw.read()
            r.close()
        assert len({q.peer for q in fake.requests}) == 1
        requests.post(fake.base_url + "/chat/completions", json=body_for("openai", stream=False), timeout=5)
        assert len({q.peer for q in fake.requests}) == 2


def test_models_listing():
    with FakeLLM("openai", models=["a", "b"]) as fake:
        assert [m["id"] for m in requests.get(fake.base_url + "/models", timeout=5).json()["data"]] == ["a", "b"]


def test_split_text():
    assert split_text("abcdef", 3) == ["ab", "cd", "ef"]
    assert split_text("abcdefg", 3) == ["abc", "def", "g"]
    assert split_text("ab", 5) == ["a", "b"]
    assert split_text("", 3) == [""]
    assert "".join(split_text("é€ unicode", 4)) == "é€ unicode"


# --------------------------------------------------------------------------
# Standalone script and control endpoints
# --------------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_standalone_script(tmp_path):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"replies": [{"text": "scripted"}], "default": {"text": "fallback"}}))
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "fakes" / "llm.py"), "--provider", "anthropic",
                             "--port", str(port), "--script", str(script), "--zero-delay"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == f"fake-llm anthropic listening on http://127.0.0.1:{port}"
        url = f"http://127.0.0.1:{port}"
        hdr = {"x-api-key": "k"}
        body = body_for("anthropic", stream=False)
        assert requests.post(url + "/v1/messages", json=body, headers=hdr, timeout=5).json()["content"][0]["text"] == "scripted"
        assert requests.post(url + "/v1/messages", json=body, headers=hdr, timeout=5).json()["content"][0]["text"] == "fallback"
        assert requests.post(url + "/__fake/script", json=[{"status": 429, "retry_after": 1}], timeout=5).json() == {"queued": 1}
        assert requests.post(url + "/v1/messages", json=body, headers=hdr, timeout=5).status_code == 429
        recs = requests.get(url + "/__fake/requests", timeout=5).json()
        assert len(recs) == 3 and recs[0]["api_key"] == "k" and recs[0]["json"]["model"] == "claude-test"
        requests.post(url + "/__fake/reset", timeout=5)
        assert requests.get(url + "/__fake/requests", timeout=5).json() == []
    finally:
        proc.terminate()
        proc.wait(5)
    assert os.path.exists(HERE / "fakes" / "README.md")
