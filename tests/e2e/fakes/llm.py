#!/usr/bin/python3
"""Fake Anthropic, OpenAI and Gemini upstreams for chela's end-to-end tests.

One server speaks one provider's real wire format (JSON bodies and SSE
streams with the exact event sequences of the real APIs, usage, tool
calls, provider-shaped errors) and answers from a queue of scripted
replies.  Every request it receives is recorded so a test can assert what
the gateway sent.  Standard library only.

In process (pytest)::

    from fakes.llm import FakeLLM
    with FakeLLM("openai") as fake:
        fake.push({"text": "Hello there", "chunks": 3})
        fake.push({"status": 429, "retry_after": 1})
        ... point the gateway at fake.base_url ...
        assert fake.requests[0].json["messages"][0]["role"] == "system"

Standalone::

    python3 tests/e2e/fakes/llm.py --port 8500 --provider anthropic \\
        --script replies.json [--zero-delay] [--api-key K ...] [--strict]

A reply is a dict; every key is optional (see README.md):
  text, tool_calls [{name, arguments, id?}], chunks, usage {input, output,
  cache_read, cache_write}, stop, raw_stop, model, status, error {type,
  message} or error_kind (rate_limit|context_length|auth|overloaded|server|
  timeout), body, headers, retry_after, retry_after_ms, first_byte_delay,
  chunk_delay, malformed, stream_error {type, message}, drop_after,
  omit_done, raw, match {api_key, model, path_contains}, times.
"""

import argparse
import hashlib
import json
import socket
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

PROVIDERS = ("anthropic", "openai", "gemini")
CREATED = 1700000000  # fixed, so streams are byte-for-byte predictable

# Neutral stop reasons to each provider's own words.
STOP_WORDS = {
    "anthropic": {"end_turn": "end_turn", "tool_use": "tool_use", "max_tokens": "max_tokens",
                  "stop_sequence": "stop_sequence", "refusal": "refusal"},
    "openai": {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length",
               "stop_sequence": "stop", "refusal": "content_filter"},
    "gemini": {"end_turn": "STOP", "tool_use": "STOP", "max_tokens": "MAX_TOKENS",
               "stop_sequence": "STOP", "refusal": "SAFETY"},
}

# error_kind -> (status, anthropic type, openai type/code, gemini status, message per provider)
ERROR_KINDS = {
    "rate_limit": (429, "rate_limit_error", ("requests", "rate_limit_exceeded"), "RESOURCE_EXHAUSTED",
                   {"anthropic": "Number of request tokens has exceeded your per-minute rate limit",
                    "openai": "Rate limit reached for requests",
                    "gemini": "Resource has been exhausted (e.g. check quota)."}),
    "context_length": (400, "invalid_request_error", ("invalid_request_error", "context_length_exceeded"),
                       "INVALID_ARGUMENT",
                       {"anthropic": "prompt is too long: 210000 tokens > 200000 maximum",
                        "openai": "This model's maximum context length is 128000 tokens. However, your "
                                  "messages resulted in 130000 tokens.",
                        "gemini": "The input token count (1200000) exceeds the maximum number of tokens "
                                  "allowed (1048576)."}),
    "auth": (401, "authentication_error", ("invalid_request_error", "invalid_api_key"), "UNAUTHENTICATED",
             {"anthropic": "invalid x-api-key", "openai": "Incorrect API key provided.",
              "gemini": "API key not valid. Please pass a valid API key."}),
    "overloaded": (529, "overloaded_error", ("server_error", None), "UNAVAILABLE",
                   {"anthropic": "Overloaded", "openai": "The server is overloaded.",
                    "gemini": "The model is overloaded. Please try again later."}),
    "server": (500, "api_error", ("server_error", None), "INTERNAL",
               {"anthropic": "Internal server error", "openai": "The server had an error.",
                "gemini": "An internal error has occurred."}),
    "timeout": (504, "timeout_error", ("server_error", "timeout"), "DEADLINE_EXCEEDED",
                {"anthropic": "Request timed out", "openai": "Request timed out.",
                 "gemini": "Deadline expired before operation could complete."}),
}

STATUS_DEFAULTS = {
    # status -> (anthropic type, openai (type, code), gemini status)
    400: ("invalid_request_error", ("invalid_request_error", None), "INVALID_ARGUMENT"),
    401: ("authentication_error", ("invalid_request_error", "invalid_api_key"), "UNAUTHENTICATED"),
    403: ("permission_error", ("invalid_request_error", None), "PERMISSION_DENIED"),
    404: ("not_found_error", ("invalid_request_error", "model_not_found"), "NOT_FOUND"),
    408: ("timeout_error", ("server_error", "timeout"), "DEADLINE_EXCEEDED"),
    413: ("request_too_large", ("invalid_request_error", None), "INVALID_ARGUMENT"),
    429: ("rate_limit_error", ("requests", "rate_limit_exceeded"), "RESOURCE_EXHAUSTED"),
    500: ("api_error", ("server_error", None), "INTERNAL"),
    502: ("api_error", ("server_error", None), "UNAVAILABLE"),
    503: ("overloaded_error", ("server_error", None), "UNAVAILABLE"),
    504: ("timeout_error", ("server_error", "timeout"), "DEADLINE_EXCEEDED"),
    529: ("overloaded_error", ("server_error", None), "UNAVAILABLE"),
}


def _j(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def split_text(s, n):
    """s in n nearly equal, in-order pieces (fewer when s is short)."""
    n = max(1, int(n or 1))
    if n == 1 or len(s) <= 1:
        return [s]
    size = -(-len(s) // n)
    return [s[i:i + size] for i in range(0, len(s), size)]


class Recorded:
    """One request as the fake received it."""

    def __init__(self, method, path, query, headers, body, provider, when, peer=None):
        self.method = method
        self.peer = peer                      # client (host, port): one per connection
        self.path = path                      # without the query string
        self.query = query                    # {name: first value}
        self.headers = headers                # {lower-case name: value}
        self.body = body                      # raw bytes
        self.time = when                      # time.monotonic() at arrival
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None
        self.api_key = self._key(provider)
        self.model = self._model(provider)

    def _key(self, provider):
        h = self.headers
        if provider == "anthropic":
            return h.get("x-api-key")
        if provider == "openai":
            auth = h.get("authorization", "")
            return auth[7:] if auth.lower().startswith("bearer ") else None
        return h.get("x-goog-api-key") or self.query.get("key")

    def _model(self, provider):
        if provider == "gemini":
            seg = self.path.rsplit("/", 1)[-1]
            return unquote(seg.split(":", 1)[0]) if "/models/" in self.path else None
        return self.json.get("model") if isinstance(self.json, dict) else None

    @property
    def stream(self):
        if ":streamGenerateContent" in self.path:
            return self.query.get("alt") == "sse"  # without it Google sends a JSON array
        return isinstance(self.json, dict) and self.json.get("stream") is True

    def as_dict(self):
        return {"method": self.method, "path": self.path, "query": self.query, "headers": self.headers,
                "json": self.json, "body": None if self.json is not None else self.body.decode("utf-8", "replace"),
                "api_key": self.api_key, "model": self.model, "time": self.time, "peer": list(self.peer or ())}

    def __repr__(self):
        return f"<Recorded {self.method} {self.path} key={self.api_key!r} model={self.model!r}>"


# ---------------------------------------------------------------------------
# Wire rendering: a reply dict -> the provider's bytes
# ---------------------------------------------------------------------------

class Render:
    """Turns one scripted reply into a provider's JSON body or SSE events."""

    def __init__(self, provider, reply, req, serial):
        self.p = provider
        self.r = reply
        self.req = req
        self.n = serial
        self.model = reply.get("model") or req.model or "fake-model"
        self.text = reply.get("text", "" if reply.get("tool_calls") else "ok")
        self.calls = []
        for i, c in enumerate(reply.get("tool_calls") or []):
            cid = c.get("id") or {"anthropic": f"toolu_fake_{serial}_{i}",
                                   "openai": f"call_fake_{serial}_{i}", "gemini": None}[provider]
            self.calls.append({"id": cid, "name": c["name"], "arguments": c.get("arguments", {})})
        u = reply.get("usage") or {}
        self.usage = {"input": u.get("input", 10), "output": u.get("output", 5),
                      "cache_read": u.get("cache_read", 0), "cache_write": u.get("cache_write", 0)}
        stop = reply.get("stop") or ("tool_use" if self.calls else "end_turn")
        self.stop = stop
        self.raw_stop = reply.get("raw_stop") or STOP_WORDS[provider].get(stop, stop)
        self.chunks = reply.get("chunks", 1)

    # -- Anthropic ---------------------------------------------------------
    def anthropic_usage(self, output):
        u = self.usage
        return {"input_tokens": u["input"], "cache_creation_input_tokens": u["cache_write"],
                "cache_read_input_tokens": u["cache_read"], "output_tokens": output}

    def anthropic_json(self):
        content = []
        if self.text:
            content.append({"type": "text", "text": self.text})
        for c in self.calls:
            content.append({"type": "tool_use", "id": c["id"], "name": c["name"], "input": c["arguments"]})
        return {"id": f"msg_fake_{self.n}", "type": "message", "role": "assistant", "model": self.model,
                "content": content, "stop_reason": self.raw_stop, "stop_sequence": None,
                "usage": self.anthropic_usage(self.usage["output"])}

    def anthropic_events(self):
        def ev(name, data):
            return f"event: {name}\ndata: {data if isinstance(data, str) else _j(data)}\n\n".encode()
        out = [ev("message_start", {"type": "message_start", "message": {
            "id": f"msg_fake_{self.n}", "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": self.anthropic_usage(1)}})]
        index = 0
        if self.text or not self.calls:
            out.append(ev("content_block_start", {"type": "content_block_start", "index": 0,
                                                  "content_block": {"type": "text", "text": ""}}))
            out.append(ev("ping", '{"type": "ping"}'))
            for piece in split_text(self.text, self.chunks):
                out.append(ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                      "delta": {"type": "text_delta", "text": piece}}))
            out.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
            index = 1
        for c in self.calls:
            out.append(ev("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": c["id"], "name": c["name"], "input": {}}}))
            for piece in [""] + split_text(_j(c["arguments"]), self.chunks):
                out.append(ev("content_block_delta", {"type": "content_block_delta", "index": index,
                                                      "delta": {"type": "input_json_delta", "partial_json": piece}}))
            out.append(ev("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1
        out.append(ev("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": self.raw_stop, "stop_sequence": None}, "usage": {"output_tokens": self.usage["output"]}}))
        out.append(ev("message_stop", {"type": "message_stop"}))
        return out

    def anthropic_stream_error(self, err):
        return [f"event: error\ndata: {_j({'type': 'error', 'error': err})}\n\n".encode()]

    # -- OpenAI ------------------------------------------------------------
    def openai_usage(self):
        u = self.usage
        prompt = u["input"] + u["cache_read"] + u["cache_write"]
        return {"prompt_tokens": prompt, "completion_tokens": u["output"], "total_tokens": prompt + u["output"],
                "prompt_tokens_details": {"cached_tokens": u["cache_read"], "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}

    def openai_json(self):
        msg = {"role": "assistant", "content": self.text or None, "refusal": None}
        if self.calls:
            msg["tool_calls"] = [{"id": c["id"], "type": "function", "function": {
                "name": c["name"], "arguments": _j(c["arguments"])}} for c in self.calls]
        return {"id": f"chatcmpl-fake{self.n}", "object": "chat.completion", "created": CREATED, "model": self.model,
                "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": self.raw_stop}],
                "usage": self.openai_usage(), "system_fingerprint": "fp_fake"}

    def openai_events(self):
        include_usage = bool(((self.req.json or {}).get("stream_options") or {}).get("include_usage"))

        def chunk(delta, finish=None, choices=True, usage=None):
            o = {"id": f"chatcmpl-fake{self.n}", "object": "chat.completion.chunk", "created": CREATED,
                 "model": self.model, "system_fingerprint": "fp_fake",
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else []}
            if include_usage:
                o["usage"] = usage
            return f"data: {_j(o)}\n\n".encode()
        out = [chunk({"role": "assistant", "content": "", "refusal": None})]
        if self.text:
            for piece in split_text(self.text, self.chunks):
                out.append(chunk({"content": piece}))
        for i, c in enumerate(self.calls):
            out.append(chunk({"tool_calls": [{"index": i, "id": c["id"], "type": "function",
                                              "function": {"name": c["name"], "arguments": ""}}]}))
            for piece in split_text(_j(c["arguments"]), self.chunks):
                out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
        out.append(chunk({}, self.raw_stop))
        if include_usage:
            out.append(chunk(None, choices=False, usage=self.openai_usage()))
        if not self.r.get("omit_done"):
            out.append(b"data: [DONE]\n\n")
        return out

    def openai_stream_error(self, err):
        return [f"data: {_j({'error': {'message': err.get('message', 'error'), 'type': err.get('type', 'server_error'), 'param': None, 'code': err.get('code')}})}\n\n".encode()]

    # -- Gemini ------------------------------------------------------------
    def gemini_usage(self, final):
        u = self.usage
        prompt = u["input"] + u["cache_read"] + u["cache_write"]  # no cache writes in Gemini
        md = {"promptTokenCount": prompt}
        if final:
            md["candidatesTokenCount"] = u["output"]
        md["totalTokenCount"] = prompt + (u["output"] if final else 0)
        if u["cache_read"]:
            md["cachedContentTokenCount"] = u["cache_read"]
        md["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
        return md

    def gemini_chunk(self, parts, final):
        cand = {"content": {"parts": parts, "role": "model"}}
        if final:
            cand["finishReason"] = self.raw_stop
        cand["index"] = 0
        return {"candidates": [cand], "usageMetadata": self.gemini_usage(final),
                "modelVersion": self.model, "responseId": f"fake{self.n}"}

    def gemini_call_parts(self):
        parts = []
        for c in self.calls:
            fc = {"name": c["name"], "args": c["arguments"]}
            if c["id"]:
                fc["id"] = c["id"]
            parts.append({"functionCall": fc})
        return parts

    def gemini_json(self):
        parts = ([{"text": self.text}] if self.text else []) + self.gemini_call_parts()
        return self.gemini_chunk(parts, True)

    def gemini_chunks(self):
        pieces = split_text(self.text, self.chunks) if self.text else []
        chunks = [[{"text": p}] for p in pieces]
        if self.calls:
            chunks.append(self.gemini_call_parts())
        if not chunks:
            chunks = [[]]
        return [self.gemini_chunk(parts, i == len(chunks) - 1) for i, parts in enumerate(chunks)]

    def gemini_events(self):
        # Google frames its SSE with CRLF line ends.
        return [f"data: {_j(c)}\r\n\r\n".encode() for c in self.gemini_chunks()]

    def gemini_stream_error(self, err):
        e = {"code": err.get("code", 503), "message": err.get("message", "error"), "status": err.get("type", "UNAVAILABLE")}
        return [f"data: {_j({'error': e})}\r\n\r\n".encode()]

    # -- dispatch ----------------------------------------------------------
    def json_body(self):
        if self.p == "gemini" and ":streamGenerateContent" in self.req.path:
            return self.gemini_chunks()  # without alt=sse Google streams one JSON array
        return getattr(self, f"{self.p}_json")()

    def events(self):
        return getattr(self, f"{self.p}_events")()

    def stream_error(self, err):
        return getattr(self, f"{self.p}_stream_error")(err)


def error_body(provider, status, err=None, kind=None):
    """A provider-shaped error body for `status`."""
    if kind:
        status, a_type, (o_type, o_code), g_status, msgs = ERROR_KINDS[kind]
        msg = msgs[provider]
    else:
        a_type, (o_type, o_code), g_status = STATUS_DEFAULTS.get(
            status, ("api_error", ("server_error", None), "UNKNOWN"))
        msg = f"fake error {status}"
    err = err or {}
    msg = err.get("message", msg)
    if provider == "anthropic":
        return status, {"type": "error", "error": {"type": err.get("type", a_type), "message": msg}}
    if provider == "openai":
        return status, {"error": {"message": msg, "type": err.get("type", o_type), "param": None,
                                  "code": err.get("code", o_code)}}
    return status, {"error": {"code": status, "message": msg, "status": err.get("type", g_status)}}


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------

def _matches(reply, req):
    m = reply.get("match") or {}
    if "api_key" in m and req.api_key != m["api_key"]:
        return False
    if "model" in m and req.model != m["model"]:
        return False
    if "path_contains" in m and m["path_contains"] not in req.path:
        return False
    return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, chunked streams
    server_version = "fake-llm/1"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet: tests read the records instead
        pass

    def setup(self):
        super().setup()
        # Events must leave as soon as they are written (no Nagle delay).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def fake(self):
        return self.server.fake

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send_json(self, status, obj, headers=None):
        body = obj if isinstance(obj, bytes) else (obj if isinstance(obj, str) else _j(obj)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method):
        url = urlsplit(self.path)
        body = self._read_body()
        if url.path.startswith("/__fake/"):
            return self._control(method, url.path, body)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = Recorded(method, url.path, query, headers, body, self.fake.provider, time.monotonic(),
                       tuple(self.client_address))
        if method == "GET" and url.path in ("/v1/models", "/models", "/v1beta/models"):
            return self._send_json(200, self._models())
        if not self._route_ok(method, url.path):
            status, err = error_body(self.fake.provider, 404, {"message": f"fake: no route {method} {url.path}"})
            return self._send_json(status, err)
        self.fake._record(req)
        if self.fake.api_keys is not None and req.api_key not in self.fake.api_keys:
            # Google answers a bad key with 400 INVALID_ARGUMENT, the others 401.
            status, err = error_body(self.fake.provider, 401, kind="auth")
            if self.fake.provider == "gemini":
                status, err = error_body("gemini", 400, {"message": ERROR_KINDS["auth"][4]["gemini"],
                                                         "type": "INVALID_ARGUMENT"})
            return self._send_json(status, err)
        if req.json is None or not isinstance(req.json, dict):
            status, err = error_body(self.fake.provider, 400, {"message": "fake: the body is not a JSON object"})
            return self._send_json(status, err)
        if url.path.endswith("embeddings") or url.path.endswith(":batchEmbedContents"):
            return self._embeddings(url.path, req.json)
        reply, serial = self.fake._take(req)
        if reply is None:
            status, err = error_body(self.fake.provider, 500, {"message": "fake: no scripted response"})
            return self._send_json(status, err)
        self._reply(req, reply, serial)

    def _route_ok(self, method, path):
        p = self.fake.provider
        if method != "POST":
            return False
        if p == "anthropic":
            return path == "/v1/messages"
        if p == "openai":
            return path in ("/v1/chat/completions", "/chat/completions", "/v1/embeddings", "/embeddings")
        return path.startswith("/v1beta/models/") and (
            path.endswith(":generateContent") or path.endswith(":streamGenerateContent")
            or path.endswith(":batchEmbedContents"))

    def _embeddings(self, path, body):
        """OpenAI's /embeddings and Gemini's batchEmbedContents: a vector
        per input, derived from its text (the same text, the same vector)."""
        def vec(text, dims):
            h = hashlib.sha256(text.encode()).digest()
            return [round((h[i % 32] - 128) / 128, 6) for i in range(dims)]
        if self.fake.provider == "gemini":
            reqs = body.get("requests")
            if not isinstance(reqs, list) or not reqs:
                status, err = error_body("gemini", 400, {"message": "requests must be a non-empty list"})
                return self._send_json(status, err)
            out = [{"values": vec("".join(p.get("text", "") for p in r["content"]["parts"]),
                                  r.get("outputDimensionality", 8))} for r in reqs]
            return self._send_json(200, {"embeddings": out})
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not inputs:
            status, err = error_body("openai", 400, {"message": "'input' is required"})
            return self._send_json(status, err)
        dims = body.get("dimensions", 8)
        data = [{"object": "embedding", "index": i, "embedding": vec(str(t), dims)} for i, t in enumerate(inputs)]
        tokens = sum(len(str(t).split()) for t in inputs)
        return self._send_json(200, {"object": "list", "data": data, "model": body.get("model"),
                                     "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _models(self):
        ids = self.fake.models
        if self.fake.provider == "gemini":
            return {"models": [{"name": f"models/{m}"} for m in ids]}
        if self.fake.provider == "anthropic":
            return {"data": [{"type": "model", "id": m} for m in ids], "has_more": False}
        return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake"} for m in ids]}

    def _sleep(self, seconds):
        if seconds and not self.fake.zero_delay:
            time.sleep(seconds)

    def _drop(self):
        # Abrupt end: no chunked terminator, no Content-Length satisfied.
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _reply(self, req, reply, serial):
        prov = self.fake.provider
        self._sleep(reply.get("first_byte_delay", reply.get("delay", 0)))
        headers = {}
        if "retry_after" in reply:
            headers["Retry-After"] = reply["retry_after"]
        if "retry_after_ms" in reply:
            headers["retry-after-ms"] = reply["retry_after_ms"]
        headers.update(reply.get("headers") or {})
        headers.setdefault("request-id" if prov == "anthropic" else "x-request-id", f"req_fake_{serial}")

        status = reply.get("status", 200)
        if reply.get("error_kind") or status >= 300:
            if "body" in reply:
                return self._send_json(status, reply["body"], headers)
            status, body = error_body(prov, status, reply.get("error"), reply.get("error_kind"))
            return self._send_json(status, body, headers)

        render = Render(prov, reply, req, serial)
        if not req.stream:
            body = reply.get("raw")
            if body is None:
                body = _j(render.json_body()).encode()
            elif isinstance(body, str):
                body = body.encode()
            if "drop_after" in reply:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:int(reply["drop_after"])])
                return self._drop()
            return self._send_json(status, body, headers)

        if reply.get("raw") is not None:
            raw = reply["raw"]
            events = [raw.encode() if isinstance(raw, str) else raw]
        else:
            events = render.events()
        if reply.get("malformed"):
            bad = b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_del\n\n'
            events.insert(min(2, len(events)), bad)
        if reply.get("stream_error"):
            events = events[:min(3, len(events))] + render.stream_error(reply["stream_error"])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.end_headers()
        delay = 0 if self.fake.zero_delay else reply.get("chunk_delay", 0)
        drop_after = reply.get("drop_after")
        if drop_after is not None:
            events = events[:int(drop_after)]
        if not delay:
            # One write for the whole stream: the benchmark path.
            self.wfile.write(b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events))
        else:
            for i, e in enumerate(events):
                if i:
                    time.sleep(delay)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(e), e))
                self.wfile.flush()
        if drop_after is not None:
            return self._drop()
        self.wfile.write(b"0\r\n\r\n")

    # -- control endpoints for a standalone fake ---------------------------
    def _control(self, method, path, body):
        try:
            data = json.loads(body) if body else None
        except ValueError:
            return self._send_json(400, {"error": "bad JSON"})
        if method == "POST" and path == "/__fake/script":
            replies = data if isinstance(data, list) else [data]
            self.fake.push(*replies)
            return self._send_json(200, {"queued": len(self.fake._queue)})
        if method == "POST" and path == "/__fake/default":
            self.fake.default = data
            return self._send_json(200, {"ok": True})
        if method == "POST" and path == "/__fake/reset":
            self.fake.clear()
            return self._send_json(200, {"ok": True})
        if method == "GET" and path == "/__fake/requests":
            return self._send_json(200, [r.as_dict() for r in self.fake.requests])
        return self._send_json(404, {"error": "no such control endpoint"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # benchmarks open many connections at once

    def handle_error(self, request, client_address):
        # A client that gives up (timeouts, aborts: what the tests provoke)
        # is normal here, not worth a traceback on stderr.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class FakeLLM:
    """A scriptable fake of one provider, on 127.0.0.1 (port 0: any free).

    provider: "anthropic" | "openai" | "gemini".
    default: reply used when the queue has no match (None: answer 500).
    zero_delay: ignore every scripted delay (benchmarks).
    api_keys: accepted keys (None: any key, or none, is accepted).
    max_records: how many requests are kept (oldest dropped first).
    """

    def __init__(self, provider="openai", *, host="127.0.0.1", port=0, default=None, strict=False,
                 zero_delay=False, api_keys=None, models=("fake-model",), max_records=10000):
        if provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}")
        self.provider = provider
        self.default = None if strict else (default if default is not None else {"text": "ok"})
        self.zero_delay = zero_delay
        self.api_keys = set(api_keys) if api_keys is not None else None
        self.models = list(models)
        self._queue = []
        self._records = deque(maxlen=max_records)
        self._lock = threading.Condition()
        self._serial = 0
        self._server = _Server((host, port), _Handler)
        self._server.fake = self
        self._thread = None

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-{self.provider}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._thread:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self):
        """The baseUrl a gateway config wants for this provider."""
        return self.url + "/v1" if self.provider == "openai" else self.url

    # -- scripting ---------------------------------------------------------
    def push(self, *replies):
        """Queue replies, served in order to the first request each matches."""
        with self._lock:
            for r in replies:
                if not isinstance(r, dict):
                    raise TypeError("a reply is a dict")
                self._queue.append(dict(r))
        return self

    def clear(self):
        with self._lock:
            self._queue.clear()
            self._records.clear()

    @property
    def pending(self):
        with self._lock:
            return len(self._queue)

    def _take(self, req):
        with self._lock:
            self._serial += 1
            for i, r in enumerate(self._queue):
                if not _matches(r, req):
                    continue
                times = r.get("times", 1)
                if times != -1:
                    if times <= 1:
                        del self._queue[i]
                    else:
                        r["times"] = times - 1
                return r, self._serial
            return self.default, self._serial

    # -- recording ---------------------------------------------------------
    def _record(self, req):
        with self._lock:
            self._records.append(req)
            self._lock.notify_all()

    @property
    def requests(self):
        with self._lock:
            return list(self._records)

    @property
    def last(self):
        with self._lock:
            return self._records[-1] if self._records else None

    def wait_requests(self, n, timeout=10.0):
        """Block until at least n requests arrived; returns them."""
        end = time.monotonic() + timeout
        with self._lock:
            while len(self._records) < n:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fake {self.provider}: {len(self._records)} of {n} requests")
                self._lock.wait(left)
            return list(self._records)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake LLM upstream (Anthropic, OpenAI or Gemini wire format).")
    ap.add_argument("--provider", choices=PROVIDERS, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--script", help="JSON file: a list of replies, or {replies: [...], default: {...}}")
    ap.add_argument("--zero-delay", action="store_true", help="ignore scripted delays (benchmarks)")
    ap.add_argument("--strict", action="store_true", help="answer 500 when no reply is queued")
    ap.add_argument("--api-key", action="append", dest="api_keys", help="accepted key (repeatable)")
    args = ap.parse_args(argv)
    fake = FakeLLM(args.provider, host=args.host, port=args.port, strict=args.strict,
                   zero_delay=args.zero_delay, api_keys=args.api_keys, max_records=1000)
    if args.script:
        with open(args.script, encoding="utf-8") as f:
            script = json.load(f)
        if isinstance(script, dict):
            if "default" in script:
                fake.default = script["default"]
            script = script.get("replies", [])
        fake.push(*script)
    print(f"fake-llm {args.provider} listening on {fake.url}", flush=True)
    try:
        fake._server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        fake._server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
