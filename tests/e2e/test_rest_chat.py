"""REST chat: POST /api/v1/chat and /api/v1/chat/stream against the fake
Anthropic, OpenAI and Gemini upstreams (issue #4 item 4, seed 002 section 3).

Also home of the helpers the other agent-surface tests import
(test_sessions.py, test_agent_cli.py): a gateway pointed at a fake, the
text of a provider request's turns, a raw SSE reader with arrival times.
"""

import json
import re
import socket
import time

import pytest

from e2elib import HOST, assert_error, deep_merge, http
from fakes.llm import FakeLLM

APIS = {"anthropic": "anthropic-messages", "openai": "openai-completions", "gemini": "google-generative-ai"}

# What auto_trader-like callers send: several lines, quotes, JSON, tabs, non-ASCII.
TRICKY = ('Analyse this position:\n{"symbol": "BTC/USDT", "price": 42000.5, "note": "say \\"hi\\""}\n'
          '\tTabbed — ünïcødé ✓ 🚀 <b>&amp;</b>\r\nEnd.')

CHAT_KEYS = {"id", "conversationId", "role", "content", "model", "usage", "latency", "runId"}


# ---------------------------------------------------------------- helpers


def agent_config(fake, extra=None):
    """A config whose only provider is `fake` (id "fake", model fake-model),
    with no retries unless extra says otherwise."""
    cfg = {
        "models": {
            "providers": {"fake": {"api": APIS[fake.provider], "baseUrl": fake.base_url, "apiKey": "test-key",
                                   "models": [{"id": "fake-model"}]}},
            "retry": {"count": 0, "baseDelayMs": 1},
        },
        "agents": {"defaults": {"model": {"primary": "fake/fake-model"}}},
    }
    return deep_merge(cfg, extra or {})


def start_agent_gateway(gateway_factory, fake, extra=None, **kw):
    g = gateway_factory(agent_config(fake, extra), **kw)
    assert g.admin_token, g.stdout()
    return g


def _text_of(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type", "text") == "text")
    return ""


def turns(fake_req):
    """[(role, text)] of a recorded provider request, roles neutral
    (user/assistant), system messages left out."""
    body = fake_req.json
    if "contents" in body:  # gemini
        return [("assistant" if m["role"] == "model" else "user",
                 "".join(p.get("text", "") for p in m.get("parts", [])))
                for m in body["contents"]]
    return [(m["role"], _text_of(m.get("content"))) for m in body["messages"] if m["role"] != "system"]


def chat(gw, body, token=None, timeout=20):
    return http(gw, "POST", "/api/v1/chat", token=token or gw.admin_token, json=body, timeout=timeout)


def wait_token(gw, token, timeout=5.0):
    """A token created through the CLI is seen by the gateway within its
    refresh period: poll an authenticated route until it is not 401."""
    deadline = time.monotonic() + timeout
    while True:
        r = http(gw, "GET", "/api/v1/models", token=token)
        if r.status_code != 401 or time.monotonic() >= deadline:
            return r
        time.sleep(0.1)


def run_status(gw, run_id, want, timeout=10.0):
    """Poll GET /api/v1/runs/:id until its status is `want`; the last body."""
    deadline = time.monotonic() + timeout
    while True:
        r = http(gw, "GET", f"/api/v1/runs/{run_id}", token=gw.admin_token)
        body = r.json() if r.status_code == 200 else {}
        if body.get("status") == want or time.monotonic() >= deadline:
            return body
        time.sleep(0.05)


class SSE:
    """POST a JSON body and read the SSE answer off a raw socket, decoding
    the chunked framing itself, so each event has its own arrival time."""

    def __init__(self, gw, path, body, token, timeout=20.0):
        self.sock = socket.create_connection((HOST, gw.port), timeout=timeout)
        data = json.dumps(body).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
                f"Content-Length: {len(data)}\r\n\r\n").encode()
        self.t0 = time.monotonic()
        self.sock.sendall(head + data)
        self.buf = b""
        self.status, self.headers = self._head()
        self.events = []  # (time, kind, payload): kind "data" (parsed JSON) or "comment"
        self.done = False

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def _head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for l in lines[1:]:
            k, v = l.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        return status, headers

    def _chunk(self):
        while b"\r\n" not in self.buf:
            self._fill()
        size_line, self.buf = self.buf.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        while len(self.buf) < size + 2:
            self._fill()
        data, self.buf = self.buf[:size], self.buf[size + 2:]
        return size, data

    def next_events(self):
        """Read one chunk; returns the events it carried (with the time)."""
        size, data = self._chunk()
        now = time.monotonic()
        if size == 0:
            self.done = True
            return []
        out = []
        for block in data.decode("utf-8").split("\n\n"):
            if not block.strip():
                continue
            if block.startswith(":"):
                out.append((now, "comment", block))
                continue
            payload = "\n".join(l[5:].lstrip(" ") for l in block.split("\n") if l.startswith("data:"))
            out.append((now, "data", json.loads(payload)))
        self.events += out
        return out

    def read_all(self):
        while not self.done:
            self.next_events()
        return self.events

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------- fixtures


@pytest.fixture(params=["anthropic", "openai", "gemini"])
def any_fake(request):
    with FakeLLM(request.param) as f:
        yield f


@pytest.fixture
def openai_fake():
    with FakeLLM("openai") as f:
        yield f


@pytest.fixture
def anthropic_fake():
    with FakeLLM("anthropic") as f:
        yield f


# ---------------------------------------------------------------- round trips


def test_chat_round_trip_each_provider(gateway_factory, any_fake):
    gw = start_agent_gateway(gateway_factory, any_fake)
    any_fake.push({"text": f"Reply from the {any_fake.provider} fake", "chunks": 3,
                   "usage": {"input": 42, "output": 7}})
    r = chat(gw, {"message": TRICKY})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    j = r.json()
    assert CHAT_KEYS <= set(j), j
    assert j["role"] == "assistant"
    assert j["content"] == f"Reply from the {any_fake.provider} fake"
    assert j["usage"]["inputTokens"] == 42 and j["usage"]["outputTokens"] == 7
    assert j["conversationId"].startswith("conv_") and len(j["conversationId"]) > 10
    assert j["id"] == "msg_" + j["runId"]
    # A time-ordered run id (UUID version 7): the runs index grows at its right edge.
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", j["runId"]), j
    assert j["model"] == "fake-model"
    assert isinstance(j["latency"], int) and j["latency"] >= 0
    # The message reached the provider byte for byte, in its own format.
    req = any_fake.wait_requests(1)[-1]
    assert turns(req) == [("user", TRICKY)]
    assert req.api_key == "test-key"
    # The run is on record.
    run = run_status(gw, j["runId"], "ok")
    assert run["status"] == "ok" and run["source"] == "api"
    assert run["sessionKey"] == "agent:main:" + j["conversationId"]
    assert run["result"]["text"] == j["content"]


def test_multi_turn_context_each_provider(gateway_factory, any_fake):
    gw = start_agent_gateway(gateway_factory, any_fake)
    any_fake.push({"text": "First answer."}, {"text": "Second answer."})
    r1 = chat(gw, {"message": "First question?", "conversationId": "conv-multi-1"})
    assert r1.status_code == 200, r1.text
    assert r1.json()["conversationId"] == "conv-multi-1"
    r2 = chat(gw, {"message": "Second question?", "conversationId": "conv-multi-1"})
    assert r2.status_code == 200, r2.text
    assert r2.json()["content"] == "Second answer."
    reqs = any_fake.wait_requests(2)
    assert turns(reqs[0]) == [("user", "First question?")]
    assert turns(reqs[1]) == [("user", "First question?"), ("assistant", "First answer."),
                              ("user", "Second question?")]
    if any_fake.provider == "gemini":
        assert [c["role"] for c in reqs[1].json["contents"]] == ["user", "model", "user"]
    # Another conversation does not see this one.
    any_fake.push({"text": "Other."})
    assert chat(gw, {"message": "Unrelated", "conversationId": "conv-multi-2"}).status_code == 200
    assert turns(any_fake.wait_requests(3)[-1]) == [("user", "Unrelated")]


def test_chat_options_reach_the_provider(gateway_factory, anthropic_fake):
    gw = start_agent_gateway(gateway_factory, anthropic_fake)
    anthropic_fake.push({"text": "fine"})
    r = chat(gw, {"message": "hello", "systemPrompt": "You are terse.", "maxTokens": 123, "temperature": 0.25,
                  "model": "fake/fake-model"})
    assert r.status_code == 200, r.text
    body = anthropic_fake.wait_requests(1)[-1].json
    assert body["max_tokens"] == 123
    assert body["temperature"] == pytest.approx(0.25)
    system = body.get("system")
    system_text = system if isinstance(system, str) else "".join(b.get("text", "") for b in system or [])
    assert "You are terse." in system_text
    assert body["model"] == "fake-model" and body["stream"] is True


# ---------------------------------------------------------------- streaming


def test_stream_events_and_headers(gateway_factory, openai_fake):
    gw = start_agent_gateway(gateway_factory, openai_fake)
    openai_fake.push({"text": "Streaming works fine, ✓ really.", "chunks": 5, "usage": {"input": 11, "output": 9}})
    s = SSE(gw, "/api/v1/chat/stream", {"message": "stream please", "conversationId": "conv-stream-1"},
            gw.admin_token)
    try:
        assert s.status == 200
        assert s.headers["content-type"].startswith("text/event-stream")
        assert s.headers["cache-control"] == "no-cache"
        assert s.headers.get("transfer-encoding") == "chunked"
        evs = [p for _, k, p in s.read_all() if k == "data"]
    finally:
        s.close()
    assert evs[0]["type"] == "start" and evs[0]["conversationId"] == "conv-stream-1" and evs[0]["runId"]
    deltas = [e for e in evs if e["type"] == "delta"]
    assert len(deltas) >= 2, evs
    assert "".join(d["content"] for d in deltas) == "Streaming works fine, ✓ really."
    assert evs[-1]["type"] == "done", evs
    assert evs[-1]["usage"]["inputTokens"] == 11 and evs[-1]["usage"]["outputTokens"] == 9
    assert evs[-1]["model"] == "fake-model"
    assert [e["type"] for e in evs].count("done") == 1


def test_stream_first_delta_arrives_before_upstream_finishes(gateway_factory, openai_fake):
    gw = start_agent_gateway(gateway_factory, openai_fake)
    # Four text chunks 0.4 s apart: the upstream needs well over a second.
    openai_fake.push({"text": "alpha beta gamma delta", "chunks": 4, "chunk_delay": 0.4})
    s = SSE(gw, "/api/v1/chat/stream", {"message": "go"}, gw.admin_token)
    try:
        events = s.read_all()
    finally:
        s.close()
    req_time = openai_fake.wait_requests(1)[-1].time
    first_delta = next(t for t, k, p in events if k == "data" and p["type"] == "delta")
    done = next(t for t, k, p in events if k == "data" and p["type"] == "done")
    deltas = [t for t, k, p in events if k == "data" and p["type"] == "delta"]
    assert len(deltas) >= 3
    # The first delta was out long before the upstream had sent its last
    # chunk, and the deltas arrived spread out, not in one burst.
    assert done - first_delta >= 1.0, (first_delta - req_time, done - req_time)
    assert deltas[-1] - deltas[0] >= 0.7
    assert first_delta - req_time < 0.6


@pytest.mark.slow
def test_stream_keepalive_comment(gateway_factory, openai_fake):
    gw = start_agent_gateway(gateway_factory, openai_fake)
    openai_fake.push({"text": "late", "first_byte_delay": 16.5})
    s = SSE(gw, "/api/v1/chat/stream", {"message": "slow"}, gw.admin_token, timeout=30)
    try:
        events = s.read_all()
    finally:
        s.close()
    comments = [(t, p) for t, k, p in events if k == "comment"]
    assert comments and comments[0][1].strip() == ": keepalive", events
    assert 14.0 <= comments[0][0] - s.t0 <= 17.0
    assert events[-1][2]["type"] == "done"


def test_stream_error_event_keeps_class(gateway_factory, openai_fake):
    gw = start_agent_gateway(gateway_factory, openai_fake)
    openai_fake.push({"error_kind": "auth"})
    s = SSE(gw, "/api/v1/chat/stream", {"message": "x"}, gw.admin_token)
    try:
        evs = [p for _, k, p in s.read_all() if k == "data"]
    finally:
        s.close()
    assert evs[0]["type"] == "start"
    assert evs[-1]["type"] == "error", evs
    assert evs[-1]["error"] == "auth" and evs[-1]["message"]
    assert run_status(gw, evs[0]["runId"], "error")["errorClass"] == "auth"


@pytest.mark.parametrize("kind,cls,status", [("rate_limit", "rate_limit", 502), ("auth", "auth", 502),
                                             ("context_length", "context_length", 502)])
def test_chat_provider_errors_keep_their_class(gateway_factory, openai_fake, kind, cls, status):
    gw = start_agent_gateway(gateway_factory, openai_fake)
    openai_fake.push({"error_kind": kind, "times": -1})
    r = chat(gw, {"message": "x"})
    j = assert_error(r, status)
    assert j["errorClass"] == cls, j
    assert j["runId"] and j["conversationId"]


def test_provider_error_message_cut_between_characters(gateway_factory, openai_fake):
    """An upstream's error message longer than the 255 bytes kept, in a
    script of two-byte characters, is cut between characters: the answer
    still quotes it (it used to fail to render, or the field vanished)."""
    gw = start_agent_gateway(gateway_factory, openai_fake)
    openai_fake.push({"status": 400, "error": {"message": "\u00e9" * 300, "type": "invalid_request_error"},
                      "times": -1})
    j = assert_error(chat(gw, {"message": "x"}), 502)
    assert "\u00e9" * 100 in j["message"] and "\ufffd" not in j["message"], j
    run = run_status(gw, j["runId"], "error")
    assert run["error"].endswith("\u00e9") or run["error"].endswith("\u00e9)"), run


def test_chat_timeout_is_504(gateway_factory, openai_fake):
    gw = start_agent_gateway(gateway_factory, openai_fake,
                             {"agents": {"defaults": {"timeoutSeconds": 1}}})
    openai_fake.push({"text": "too late", "first_byte_delay": 3})
    r = chat(gw, {"message": "x"})
    j = assert_error(r, 504, "timeout")
    assert j["errorClass"] == "timeout"


# ---------------------------------------------------------------- disconnects


def test_stream_client_disconnect_aborts_the_run(gateway_factory, openai_fake):
    gw = start_agent_gateway(gateway_factory, openai_fake)
    openai_fake.push({"text": "one two three four five six seven eight", "chunks": 8, "chunk_delay": 0.5})
    s = SSE(gw, "/api/v1/chat/stream", {"message": "long one"}, gw.admin_token)
    run_id = None
    while True:
        for _, k, p in s.next_events():
            if k == "data" and p["type"] == "start":
                run_id = p["runId"]
            if k == "data" and p["type"] == "delta":
                break
        else:
            continue
        break
    s.close()
    t_close = time.monotonic()
    run = run_status(gw, run_id, "aborted", timeout=5)
    assert run["status"] == "aborted", run
    # Aborted promptly, not after the upstream finished on its own (~3.5 s).
    assert time.monotonic() - t_close < 2.5
    assert http(gw, "GET", "/health").status_code == 200


def test_plain_chat_client_disconnect_aborts_the_run(gateway_factory, openai_fake):
    gw = start_agent_gateway(gateway_factory, openai_fake)
    openai_fake.push({"text": "never delivered", "first_byte_delay": 5})
    conn = socket.create_connection((HOST, gw.port), timeout=5)
    body = b'{"message":"wait for me","conversationId":"conv-leave"}'
    conn.sendall(b"POST /api/v1/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + gw.admin_token.encode() +
                 b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() +
                 b"\r\n\r\n" + body)
    openai_fake.wait_requests(1, timeout=5)
    conn.close()
    deadline = time.monotonic() + 5
    runs = []
    while time.monotonic() < deadline:
        runs = http(gw, "GET", "/api/v1/runs?sessionKey=conv-leave", token=gw.admin_token).json()["runs"]
        if runs and runs[0]["status"] == "aborted":
            break
        time.sleep(0.05)
    assert runs and runs[0]["status"] == "aborted", runs


def test_abort_route(gateway_factory, openai_fake):
    gw = start_agent_gateway(gateway_factory, openai_fake)
    openai_fake.push({"text": "slow", "first_byte_delay": 5})
    s = SSE(gw, "/api/v1/chat/stream", {"message": "abort me"}, gw.admin_token)
    try:
        start = s.next_events()[0][2]
        assert start["type"] == "start"
        r = http(gw, "POST", f"/api/v1/runs/{start['runId']}/abort", token=gw.admin_token)
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True and r.json()["aborted"] is True
        evs = [p for _, k, p in s.read_all() if k == "data"]
    finally:
        s.close()
    assert evs[-1]["type"] == "error" and evs[-1]["status"] == "aborted", evs
    # Finished now: a second abort says so; an unknown id is 404.
    r = http(gw, "POST", f"/api/v1/runs/{start['runId']}/abort", token=gw.admin_token)
    assert r.status_code == 200 and r.json()["aborted"] is False and r.json()["status"] == "aborted"
    assert_error(http(gw, "POST", "/api/v1/runs/no-such-run/abort", token=gw.admin_token), 404, "not_found")


# ---------------------------------------------------------------- input checks


def test_chat_rejects_bad_input(gateway_factory, openai_fake):
    gw = start_agent_gateway(gateway_factory, openai_fake)
    t = gw.admin_token
    for body in ({}, {"message": ""}, {"message": 5}, {"message": "x", "maxTokens": 0},
                 {"message": "x", "maxTokens": "100"}, {"message": "x", "temperature": 3},
                 {"message": "x", "conversationId": "has space"}, {"message": "x", "conversationId": ""},
                 {"message": "x", "systemPrompt": 7}):
        assert_error(chat(gw, body), 400, "invalid_request")
    assert_error(http(gw, "POST", "/api/v1/chat", token=t, data="not json",
                      headers={"Content-Type": "application/json"}), 400, "invalid_request")
    assert_error(http(gw, "POST", "/api/v1/chat", token=t, data='{"message":"x"}',
                      headers={"Content-Type": "text/plain"}), 415)
    j = assert_error(chat(gw, {"message": "x", "model": "nosuch/model-x"}), 400, "invalid_model")
    assert "fake" in j["message"]
    assert_error(http(gw, "GET", "/api/v1/chat", token=t), 405)
    # Nothing reached the provider.
    assert openai_fake.requests == []


def test_reserved_session_keys_need_admin(gateway_factory, openai_fake):
    gw = start_agent_gateway(gateway_factory, openai_fake)
    tok = gw.create_token("chatter", "chat")["token"]
    wait_token(gw, tok)
    j = assert_error(chat(gw, {"message": "x", "conversationId": "agent:main:main"}, token=tok), 400)
    assert "reserved" in j["message"]
    openai_fake.push({"text": "admin ok"})
    r = chat(gw, {"message": "x", "conversationId": "agent:main:main"})
    assert r.status_code == 200, r.text


def test_no_provider_is_503(gateway_factory):
    gw = gateway_factory({})
    j = assert_error(chat(gw, {"message": "x"}), 503, "no_provider")
    assert "models.providers" in j["message"]


# ---------------------------------------------------------------- scopes

# Every route of this surface and the scope it needs.
ROUTES = [
    ("POST", "/api/v1/chat", "chat", {"message": "x"}),
    ("POST", "/api/v1/chat/stream", "chat", {"message": "x"}),
    ("POST", "/api/v1/runs/r1/abort", "chat", None),
    ("GET", "/api/v1/sessions", "read", None),
    ("GET", "/api/v1/sessions/k1", "read", None),
    ("GET", "/api/v1/conversations", "read", None),
    ("GET", "/api/v1/conversations/k1", "read", None),
    ("GET", "/api/v1/models", "read", None),
    ("GET", "/api/v1/runs", "read", None),
    ("GET", "/api/v1/runs/r1", "read", None),
    ("POST", "/api/v1/sessions/k1/reset", "admin", None),
    ("DELETE", "/api/v1/sessions/k1", "admin", None),
    ("DELETE", "/api/v1/conversations/k1", "admin", None),
]


def test_scopes_enforced_on_every_route(gateway_factory, openai_fake):
    gw = start_agent_gateway(gateway_factory, openai_fake)
    toks = {s: gw.create_token(f"only-{s}", s)["token"] for s in ("chat", "read", "send")}
    toks["chat+read+send"] = gw.create_token("nonadmin", "chat,read,send")["token"]
    for t in toks.values():
        wait_token(gw, t)
    for method, path, need, body in ROUTES:
        for name, tok in toks.items():
            kw = {"json": body} if body is not None else {}
            r = http(gw, method, path, token=tok, **kw)
            if need in name.split("+"):
                assert r.status_code != 403, (method, path, name, r.text)
            else:
                j = assert_error(r, 403, "forbidden")
                assert j["missingScope"] == need, (method, path, name, j)
        # No token at all: 401.
        assert_error(http(gw, method, path), 401, "unauthorized")


# ---------------------------------------------------------------- limits and shutdown


def test_full_queue_is_503(gateway_factory, openai_fake):
    gw = start_agent_gateway(gateway_factory, openai_fake,
                             {"agents": {"defaults": {"maxConcurrent": 1, "queueSize": 1}}})
    openai_fake.push({"text": "slow", "first_byte_delay": 2}, {"text": "queued"})
    s1 = SSE(gw, "/api/v1/chat/stream", {"message": "one"}, gw.admin_token)
    s2 = SSE(gw, "/api/v1/chat/stream", {"message": "two"}, gw.admin_token)
    try:
        assert s1.status == 200 and s2.status == 200
        r = chat(gw, {"message": "three"})
        j = assert_error(r, 503, "queue_full")
        assert r.headers.get("retry-after") == "1" and "queueSize" in j["message"]
        ends = [[p for _, k, p in s.read_all() if k == "data"][-1]["type"] for s in (s1, s2)]
    finally:
        s1.close()
        s2.close()
    assert ends == ["done", "done"]


@pytest.mark.signals
def test_shutdown_lets_a_stream_finish(gateway_factory, openai_fake):
    gw = start_agent_gateway(gateway_factory, openai_fake)
    openai_fake.push({"text": "finished in time", "first_byte_delay": 1})
    s = SSE(gw, "/api/v1/chat/stream", {"message": "x"}, gw.admin_token)
    try:
        assert s.next_events()[0][2]["type"] == "start"
        gw.signal(15)
        evs = [p for _, k, p in s.read_all() if k == "data"]
    finally:
        s.close()
    assert evs[-1]["type"] == "done"
    assert gw.wait(20) == 0


@pytest.mark.signals
def test_shutdown_grace_over_closes_the_stream(gateway_factory, openai_fake):
    gw = start_agent_gateway(gateway_factory, openai_fake, {"limits": {"shutdownGraceMs": 300}})
    openai_fake.push({"text": "too slow", "first_byte_delay": 4})
    s = SSE(gw, "/api/v1/chat/stream", {"message": "x"}, gw.admin_token)
    try:
        assert s.next_events()[0][2]["type"] == "start"
        t = time.monotonic()
        gw.signal(15)
        with pytest.raises((EOFError, ConnectionError)):
            s.read_all()
    finally:
        s.close()
    assert gw.wait(20) == 0
    assert time.monotonic() - t < 4
