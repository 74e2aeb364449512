"""Helpers for the agent runtime end-to-end tests (test_agent_*.py).

- configs: `llm_config()` builds models/agents/tools config around FakeLLM
  instances (fakes/llm.py);
- REST: `chat()`, `ChatStream` (SSE of /api/v1/chat/stream), `get_run()`,
  `wait_run()`, `session()`, `health_detail()`;
- upstream bodies: `turns()`, `tool_calls()`, `tool_results()` and
  `offered_tools()` read a recorded request in any of the three provider
  formats and give a neutral view of it; `wire_problems()` lists what the
  real API would refuse (a tool call without its result...);
- `LocalServer`: a tiny HTTP receiver on 127.0.0.1 (records requests,
  answers scripted responses, redirects) for the http_request and
  web_fetch tools.

Everything is 127.0.0.1 and every wait is bounded.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from e2elib import HOST, http

API = {"anthropic": "anthropic-messages", "openai": "openai-completions",
       "gemini": "google-generative-ai"}
PROVIDERS = tuple(API)
MODEL = "fake-model"
TERMINAL = ("ok", "error", "aborted", "timeout")


# ---------------------------------------------------------------- config


def provider_entry(fake, *, key="sk-test", keys=None, models=None, pricing=None):
    """models.providers.<id> for a FakeLLM."""
    p = {"api": API[fake.provider], "baseUrl": fake.base_url}
    if keys is not None:
        p["apiKeys"] = list(keys)
    elif key is not None:
        p["apiKey"] = key
    m = {"id": MODEL, "contextWindow": 200000, "maxTokens": 4096}
    if pricing:
        m["pricing"] = pricing
    p["models"] = models if models is not None else [m]
    return p


def llm_config(providers, *, primary=None, fallbacks=(), retry=0, base_delay_ms=10,
               breaker=None, agents=None, tools=None, timeouts=None):
    """A config dict.  providers: {id: FakeLLM or (FakeLLM, {provider_entry kw})}.
    primary defaults to the first provider's fake-model."""
    provs = {}
    for pid, v in providers.items():
        fake, kw = (v if isinstance(v, tuple) else (v, {}))
        provs[pid] = provider_entry(fake, **kw)
    primary = primary or f"{next(iter(providers))}/{MODEL}"
    cfg = {
        "models": {"providers": provs, "retry": {"count": retry, "baseDelayMs": base_delay_ms,
                                                  "maxDelayMs": max(base_delay_ms, 200)}},
        "agents": {"defaults": {"model": {"primary": primary, "fallbacks": list(fallbacks)}}},
    }
    if breaker:
        cfg["models"]["circuitBreaker"] = breaker
    if timeouts:
        cfg["models"]["timeouts"] = timeouts
    if agents:
        cfg["agents"]["defaults"].update(agents)
    if tools:
        cfg["tools"] = tools
    return cfg


def start(gateway_factory, config, **kw):
    """A running gateway on config; the admin token is on g.admin_token."""
    g = gateway_factory(config, **kw)
    assert g.admin_token, f"no admin token banner:\n{g.stdout()}"
    return g


# ---------------------------------------------------------------- REST


def chat(gw, message, conv=None, *, token=None, timeout=20, **extra):
    body = {"message": message}
    if conv is not None:
        body["conversationId"] = conv
    body.update(extra)
    return http(gw, "POST", "/api/v1/chat", token=token or gw.admin_token, json=body, timeout=timeout)


def chat_ok(gw, message, conv=None, **kw):
    r = chat(gw, message, conv, **kw)
    assert r.status_code == 200, f"chat failed: {r.status_code} {r.text}\nstderr tail:\n{gw.stderr()[-3000:]}"
    return r.json()


def get_run(gw, run_id, token=None):
    r = http(gw, "GET", f"/api/v1/runs/{run_id}", token=token or gw.admin_token)
    assert r.status_code == 200, f"GET run {run_id}: {r.status_code} {r.text}"
    return r.json()


def wait_run(gw, run_id, statuses=TERMINAL, timeout=15.0, token=None):
    """Poll GET /api/v1/runs/:id until its status is one of statuses."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        r = http(gw, "GET", f"/api/v1/runs/{run_id}", token=token or gw.admin_token)
        if r.status_code == 200:
            last = r.json()
            if last.get("status") in statuses:
                return last
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} not in {statuses} within {timeout}s; last: {last}")


def list_runs(gw, **query):
    r = http(gw, "GET", "/api/v1/runs", token=gw.admin_token, params=query)
    assert r.status_code == 200, r.text
    return r.json()["runs"]


def session(gw, key):
    r = http(gw, "GET", f"/api/v1/sessions/{key}", token=gw.admin_token)
    assert r.status_code == 200, f"GET session {key}: {r.status_code} {r.text}"
    return r.json()


def health_detail(gw):
    r = http(gw, "GET", "/health/detail", token=gw.admin_token)
    assert r.status_code == 200, r.text
    return r.json()


def abort_run(gw, run_id):
    return http(gw, "POST", f"/api/v1/runs/{run_id}/abort", token=gw.admin_token, json={})


class ChatStream:
    """POST /api/v1/chat/stream read event by event (data: JSON lines)."""

    def __init__(self, gw, message, conv=None, timeout=20, **extra):
        body = {"message": message}
        if conv is not None:
            body["conversationId"] = conv
        body.update(extra)
        self.s = requests.Session()
        self.s.trust_env = False
        self.resp = self.s.post(f"http://{HOST}:{gw.port}/api/v1/chat/stream", json=body, stream=True,
                                headers={"Authorization": f"Bearer {gw.admin_token}"}, timeout=timeout)
        self.events = []
        self._lines = self.resp.iter_lines(decode_unicode=False) if self.resp.status_code == 200 else iter(())

    def next_event(self):
        """The next event (a dict), or None at the end of the stream."""
        data = []
        for raw in self._lines:
            line = raw.decode("utf-8")
            if line == "":
                if data:
                    ev = json.loads("\n".join(data))
                    self.events.append(ev)
                    return ev
                continue
            if line.startswith(":"):
                continue
            if line.startswith("data:"):
                v = line[5:]
                data.append(v[1:] if v.startswith(" ") else v)
        return None

    def until(self, kind):
        """Events up to and including the first of type kind (None: the end)."""
        while True:
            ev = self.next_event()
            if ev is None or ev.get("type") == kind:
                return ev

    def rest(self):
        while self.next_event() is not None:
            pass
        return self.events

    def text(self):
        return "".join(e.get("content", "") for e in self.events if e.get("type") == "delta")

    def close(self):
        self.resp.close()
        self.s.close()


def in_thread(fn, *args, **kw):
    """Run fn in a daemon thread; returns (thread, box) where box['r'] or
    box['exc'] is set when it ends."""
    box = {}

    def body():
        try:
            box["r"] = fn(*args, **kw)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["exc"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, box


# ---------------------------------------------------------------- upstream bodies


def _text_of_parts(parts):
    return "".join(p.get("text", "") for p in parts if isinstance(p, dict) and "text" in p)


def turns(provider, body):
    """[(role, text)] of the conversation in an upstream request body,
    roles normalised to user/assistant/system/tool.  Tool calls and results
    show as text '' (see tool_calls/tool_results)."""
    out = []
    if provider == "anthropic":
        sysp = body.get("system")
        if sysp:
            out.append(("system", sysp if isinstance(sysp, str) else _text_of_parts(sysp)))
        for m in body["messages"]:
            c = m["content"]
            out.append((m["role"], c if isinstance(c, str) else _text_of_parts(c)))
    elif provider == "openai":
        for m in body["messages"]:
            c = m.get("content")
            if isinstance(c, list):
                c = _text_of_parts(c)
            out.append((m["role"], c or ""))
    else:
        si = body.get("systemInstruction")
        if si:
            out.append(("system", _text_of_parts(si.get("parts", []))))
        for c in body["contents"]:
            role = {"model": "assistant"}.get(c.get("role"), c.get("role"))
            out.append((role, _text_of_parts(c.get("parts", []))))
    return out


def tool_calls(provider, body):
    """[{id, name, args}] of the assistant tool calls in a request body."""
    out = []
    if provider == "anthropic":
        for m in body["messages"]:
            if m["role"] == "assistant" and isinstance(m["content"], list):
                out += [{"id": b["id"], "name": b["name"], "args": b.get("input")}
                        for b in m["content"] if b.get("type") == "tool_use"]
    elif provider == "openai":
        for m in body["messages"]:
            for tc in m.get("tool_calls") or []:
                out.append({"id": tc["id"], "name": tc["function"]["name"],
                            "args": json.loads(tc["function"]["arguments"] or "{}")})
    else:
        for c in body["contents"]:
            for p in c.get("parts", []):
                if "functionCall" in p:
                    fc = p["functionCall"]
                    out.append({"id": fc.get("id"), "name": fc["name"], "args": fc.get("args")})
    return out


def _content_text(c):
    if isinstance(c, str):
        return c
    if isinstance(c, list):
        return "".join(b.get("text", "") for b in c if isinstance(b, dict))
    return json.dumps(c)


def tool_results(provider, body):
    """[{id, name, content, is_error}] of the tool results in a request body
    (id None for Gemini, which matches by name; name None for the others)."""
    out = []
    if provider == "anthropic":
        for m in body["messages"]:
            if m["role"] == "user" and isinstance(m["content"], list):
                for b in m["content"]:
                    if b.get("type") == "tool_result":
                        out.append({"id": b["tool_use_id"], "name": None, "content": _content_text(b.get("content")),
                                    "is_error": bool(b.get("is_error")), "role": m["role"]})
    elif provider == "openai":
        for m in body["messages"]:
            if m["role"] == "tool":
                c = _content_text(m.get("content"))
                out.append({"id": m.get("tool_call_id"), "name": None, "content": c,
                            "is_error": c.startswith("Error:"), "role": "tool"})
    else:
        for c in body["contents"]:
            for p in c.get("parts", []):
                if "functionResponse" in p:
                    fr = p["functionResponse"]
                    resp = fr.get("response") or {}
                    is_err = "error" in resp
                    text = resp.get("error", resp.get("content"))
                    out.append({"id": fr.get("id"), "name": fr.get("name"), "content": _content_text(text),
                                "is_error": is_err, "role": c.get("role")})
    return out


def offered_tools(provider, body):
    """Names of the tools offered in a request body."""
    tools = body.get("tools") or []
    if provider == "anthropic":
        return [t["name"] for t in tools]
    if provider == "openai":
        return [t["function"]["name"] for t in tools]
    return [d["name"] for t in tools for d in t.get("functionDeclarations", [])]


# ---------------------------------------------------------------- local server


class _LocalHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else b""
        srv = self.server.owner
        rec = {"method": self.command, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
               "body": body, "time": time.monotonic()}
        with srv.lock:
            srv.received.append(rec)
            srv.lock.notify_all()
            status, headers, out, *rest = srv.route(self.command, self.path)
        if rest and rest[0]:
            time.sleep(rest[0])  # a slow endpoint (delay in seconds)
        if isinstance(out, str):
            out = out.encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any


class LocalServer:
    """An HTTP server on 127.0.0.1 (free port) that records requests.
    routes: {path: (status, headers, body[, delay_s])}; others answer 404."""

    def __init__(self, routes=None):
        self.routes = dict(routes or {})
        self.received = []
        self.lock = threading.Condition()
        self._srv = ThreadingHTTPServer((HOST, 0), _LocalHandler)
        self._srv.daemon_threads = True
        self._srv.owner = self
        self._t = threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def route(self, method, path):
        return self.routes.get(path.split("?")[0], (404, {"Content-Type": "text/plain"}, "not found"))

    @property
    def port(self):
        return self._srv.server_address[1]

    @property
    def origin(self):
        return f"http://{HOST}:{self.port}"

    def wait(self, n, timeout=10.0):
        end = time.monotonic() + timeout
        with self.lock:
            while len(self.received) < n:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"local server: {len(self.received)} of {n} requests")
                self.lock.wait(left)
            return list(self.received)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._srv.shutdown()
        self._srv.server_close()


def wire_problems(provider, body):
    """What the real API would refuse in a request body's conversation:
    a tool call without its result right after it, a result without its
    call, a conversation not opening with the user.  [] when well formed."""
    probs = []
    if provider == "anthropic":
        msgs = body["messages"]
        if not msgs or msgs[0]["role"] != "user":
            probs.append("the first message is not from the user")
        for i, m in enumerate(msgs):
            blocks = m["content"] if isinstance(m["content"], list) else []
            if m["role"] == "assistant":
                ids = [b["id"] for b in blocks if b.get("type") == "tool_use"]
                if not ids:
                    continue
                nxt = msgs[i + 1] if i + 1 < len(msgs) else None
                got = [b["tool_use_id"] for b in (nxt["content"] if nxt and isinstance(nxt["content"], list) else [])
                       if b.get("type") == "tool_result"]
                missing = [x for x in ids if x not in got]
                if missing:
                    probs.append(f"messages[{i}]: tool_use {missing} without a tool_result in the next message")
            else:
                res = [b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"]
                prev = msgs[i - 1] if i else None
                calls = [b["id"] for b in (prev["content"] if prev and isinstance(prev["content"], list) else [])
                         if b.get("type") == "tool_use"]
                stray = [x for x in res if x not in calls]
                if stray:
                    probs.append(f"messages[{i}]: tool_result {stray} without its tool_use just before")
    elif provider == "openai":
        msgs = [m for m in body["messages"] if m["role"] != "system"]
        for i, m in enumerate(msgs):
            if m["role"] == "assistant" and m.get("tool_calls"):
                ids = [tc["id"] for tc in m["tool_calls"]]
                j, got = i + 1, []
                while j < len(msgs) and msgs[j]["role"] == "tool":
                    got.append(msgs[j].get("tool_call_id"))
                    j += 1
                missing = [x for x in ids if x not in got]
                if missing:
                    probs.append(f"messages[{i}]: tool_calls {missing} not answered by role tool messages")
            if m["role"] == "tool":
                j = i - 1
                while j >= 0 and msgs[j]["role"] == "tool":
                    j -= 1
                if j < 0 or not msgs[j].get("tool_calls") or \
                        m.get("tool_call_id") not in [tc["id"] for tc in msgs[j]["tool_calls"]]:
                    probs.append(f"messages[{i}]: tool message without its assistant tool_calls")
    else:
        cs = body["contents"]
        if not cs or cs[0].get("role") != "user":
            probs.append("the first content is not from the user")
        for i, c in enumerate(cs):
            calls = [p["functionCall"]["name"] for p in c.get("parts", []) if "functionCall" in p]
            if calls:
                nxt = cs[i + 1] if i + 1 < len(cs) else {"parts": []}
                got = [p["functionResponse"]["name"] for p in nxt.get("parts", []) if "functionResponse" in p]
                if len(got) != len(calls):
                    probs.append(f"contents[{i}]: {len(calls)} functionCall parts, {len(got)} functionResponse next")
    return probs


def sigkill_and_restart(gateway_factory, g, cfg, thread=None):
    """SIGKILL g with a run in flight, then start a gateway on its state
    dir (the same config); returns it, carrying g's admin token.  thread:
    the caller blocked on g (from in_thread), joined once g is gone."""
    import signal
    g.signal(signal.SIGKILL)
    assert g.wait(15) is not None
    if thread is not None:
        thread.join(10)
    g2 = gateway_factory.new(cfg, state=g.state).start()
    g2.admin_token = g.admin_token
    return g2
