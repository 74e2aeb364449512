"""/hooks intake edge cases from a review: request bytes that are not
UTF-8 in mapping templates, requests counted when the client leaves or
hooks are disabled, the exact size caps of a rendered mapping, optional
mapping fields that render empty, and whose credentials a callback gets.
"""

import hashlib
import hmac
import json
import socket
import time

import requests

from agentlib import get_run, start, turns, wait_run
from e2elib import RawConn, http
from fakes.llm import FakeLLM
from hooklib import CALLBACK_TOKEN, HOOK_TOKEN, CallbackReceiver, hook, hooks_config, metric

MAX_MESSAGE = 2 * 1024 * 1024   # a direct message's cap (CH_STORE_MAX_CONTENT_BYTES / 2)
MAX_FIELD = 1280                # a rendered mapping field before the field's own bound


def _metrics(g):
    r = http(g, "GET", "/metrics", token=g.admin_token)
    assert r.status_code == 200, r.text
    return r.text


def _wait_metric(g, want, timeout=5.0, **labels):
    deadline = time.monotonic() + timeout
    while True:
        v = metric(_metrics(g), "chela_hook_requests_total", **labels)
        if v == want or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def _last_user_text(fake):
    users = [t for r, t in turns(fake.provider, fake.requests[-1].json) if r == "user"]
    return users[-1]


def _raw_post(port, target, extra_head, body):
    head = (f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {HOOK_TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n").encode() + extra_head
    return head + b"\r\n" + body


def test_request_bytes_render_as_utf8(gateway_factory):
    # header and query bytes that are not UTF-8 become U+FFFD, one per
    # ill-formed sequence (TextDecoder's count); valid UTF-8 stays as sent,
    # and no rendered field vanishes
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok", "times": -1})
        mappings = [{"id": "gh", "match": {"path": "gh"}, "sessionKey": "hook:{{headers.x-who}}",
                     "messageTemplate": "from {{query.x}} {{headers.x-who}} [{{query.y}}] {{query.z}}"}]
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"mappings": mappings}))
        with RawConn(g.port) as c:
            c.send(_raw_post(g.port, "/hooks/gh?x=%FF%FE&y=%E2%82A%C0&z=%C3%A9%F0%9F%98%80",
                             b"X-Who: \xff\xfe\r\nConnection: close\r\n", b"{}"))
            r = c.read_response()
        assert r.status_code == 202, r.text
        run = wait_run(g, r.json()["runId"])
        assert run["status"] == "ok", run
        assert run["sessionKey"] == "agent:main:hook:\ufffd\ufffd"
        assert _last_user_text(fake) == "from \ufffd\ufffd \ufffd\ufffd [\ufffdA\ufffd] \u00e9\U0001F600"


def test_wake_next_heartbeat_counted_when_client_leaves(gateway_factory):
    with FakeLLM("openai") as fake:
        g = start(gateway_factory, hooks_config({"p": fake}))
        body = json.dumps({"text": "check later", "mode": "next-heartbeat"}).encode()
        with RawConn(g.port) as c:
            c.send(_raw_post(g.port, "/hooks/wake", b"", body))
            c.sock.shutdown(socket.SHUT_WR)   # gone before the event is stored
            c.wait_closed()
        assert _wait_metric(g, 1, outcome="accepted", reason="wake") == 1
        assert g.wait_stderr(lambda t: "left before the answer" in t)


def test_replay_waiting_for_completion_counted_when_client_leaves(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "slow", "first_byte_delay": 3, "times": -1})
        g = start(gateway_factory, hooks_config({"p": fake}))
        body = {"message": "m", "idempotencyKey": "k-wait"}
        assert hook(g, body=body).status_code == 202
        try:
            hook(g, body=dict(body, waitForCompletion=True), timeout=0.5)
            raise AssertionError("the replay answered before the run ended")
        except requests.exceptions.Timeout:
            pass
        assert _wait_metric(g, 1, outcome="accepted", reason="replay") == 1
        text = _metrics(g)
        total = sum(float(line.split()[-1]) for line in text.splitlines()
                    if line.startswith("chela_hook_requests_total{"))
        assert total == 2, text


def test_disabled_hooks_are_counted(gateway_factory):
    with FakeLLM("openai") as fake:
        cfg = hooks_config({"p": fake})
        cfg["hooks"]["enabled"] = False
        g = start(gateway_factory, cfg)
        assert hook(g, body={"message": "x"}).status_code == 404
        assert hook(g, path="/hooks/github", body={}).status_code == 404
        assert http(g, "GET", "/hooks/wake").status_code == 404
        assert metric(_metrics(g), "chela_hook_requests_total", outcome="refused", reason="disabled") == 3


def test_chunked_body_over_the_cap_is_refused_in_the_hooks_shape(gateway_factory):
    """A chunked body that grows past hooks.maxBodyBytes while it is read
    gets the hooks' 413 ({ok: false, error}), counted and logged, as a
    declared Content-Length over the cap does; nothing is queued."""
    from e2elib import raw_request, request_bytes

    with FakeLLM("openai") as fake:
        cfg = hooks_config({"p": fake})
        cfg["hooks"]["maxBodyBytes"] = 1024
        g = start(gateway_factory, cfg)
        chunk = b'{"message": "' + b"x" * 600
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (chunk, b"y" * 600, b'"}')) + b"0\r\n\r\n"
        r = raw_request(g.port, request_bytes("POST", "/hooks/agent", {
            "Authorization": f"Bearer {HOOK_TOKEN}", "Content-Type": "application/json",
            "Transfer-Encoding": "chunked"}, body))
        assert r.status_code == 413, r.raw
        doc = r.json()
        assert doc["ok"] is False and "hooks.maxBodyBytes" in doc["error"], doc
        assert (r.header("connection") or "").lower() == "close"
        assert metric(_metrics(g), "chela_hook_requests_total", outcome="refused", reason="too_large") == 1
        assert "payload too large" in g.stdout() + g.stderr()
        assert fake.requests == []


def test_mapping_caps_are_exact(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok", "times": -1})
        mappings = [{"id": "big", "match": {"path": "big"}, "messageTemplate": "{{payload.m}}"},
                    {"id": "to", "match": {"path": "to"}, "messageTemplate": "x", "to": "{{payload.to}}"}]
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"mappings": mappings,
                                                                     "maxBodyBytes": 3 * 1024 * 1024}))
        # a rendered message of exactly the cap is taken, like a direct one
        assert hook(g, body={"message": "d" * MAX_MESSAGE}, timeout=30).status_code == 202
        r = hook(g, path="/hooks/big", body={"m": "m" * MAX_MESSAGE}, timeout=30)
        assert r.status_code == 202, r.text
        assert get_run(g, r.json()["runId"])["runId"] == r.json()["runId"]
        r = hook(g, path="/hooks/big", body={"m": "m" * (MAX_MESSAGE + 1)}, timeout=30)
        assert r.status_code == 400, r.text
        assert r.json()["error"] == f"the mapping's rendered message is longer than {MAX_MESSAGE} bytes"
        # a field of exactly its render cap is not dropped: `to`'s own bound refuses it
        r = hook(g, path="/hooks/to", body={"to": "t" * MAX_FIELD})
        assert r.status_code == 400 and "longer than chela allows" in r.json()["error"], r.text
        r = hook(g, path="/hooks/to", body={"to": "t" * (MAX_FIELD + 1)})
        assert r.status_code == 400, r.text
        assert r.json()["error"] == f"the mapping's rendered to is longer than {MAX_FIELD} bytes"


def test_optional_mapping_field_rendering_empty_is_absent(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok", "times": -1})
        mappings = [{"id": "m", "match": {"path": "m"}, "messageTemplate": "hello {{payload.who}}",
                     "model": "{{payload.model}}", "name": " {{payload.name}} "}]
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"mappings": mappings}))
        r = hook(g, path="/hooks/m", body={"who": "x"})
        assert r.status_code == 202, r.text
        assert wait_run(g, r.json()["runId"])["status"] == "ok"
        r = hook(g, path="/hooks/m", body={"who": "x", "model": "no-such-model"})
        assert r.status_code == 400 and "no-such-model" in r.json()["error"], r.text


def test_callback_credentials_only_for_the_configured_origin(gateway_factory):
    with FakeLLM("openai") as fake, CallbackReceiver() as mine, CallbackReceiver(path="/steal") as other:
        fake.push({"text": "done", "times": -1})
        hooks = {"callback": {"url": mine.url, "secret": "cfg-secret",
                              "headers": {"Authorization": f"Bearer {CALLBACK_TOKEN}"}},
                 "retry": {"maxAttempts": 1}}
        g = start(gateway_factory, hooks_config({"p": fake}, hooks=hooks))
        # another origin (another port), also hidden behind userinfo: nothing configured goes there
        for url in (other.url, f"http://127.0.0.1:{mine.url.split(':')[2].split('/')[0]}@{other.hostport}/steal"):
            r = hook(g, body={"message": "m", "callback": {"url": url}})
            assert r.status_code == 202, r.text
        got = other.wait(2, timeout=15)
        for x in got:   # (the userinfo is the URL's own Basic credential)
            assert CALLBACK_TOKEN not in x["headers"].get("authorization", ""), x["headers"]
            assert not any(k.startswith("x-openclaw-signature") or k == "x-signature-256" for k in x["headers"])
        # another origin with its own credentials: only those
        r = hook(g, body={"message": "m", "callback": {"url": other.url, "secret": "own",
                                                        "headers": {"X-Own": "1"}}})
        assert r.status_code == 202, r.text
        x = other.wait(3, timeout=15)[2]
        assert x["headers"]["x-own"] == "1" and "authorization" not in x["headers"]
        assert x["headers"]["x-openclaw-signature"] == hmac.new(b"own", x["body"], hashlib.sha256).hexdigest()
        # the configured origin, another path: the configured credentials
        r = hook(g, body={"message": "m", "callback": {"url": mine.url + "?via=body"}})
        assert r.status_code == 202, r.text
        x = mine.wait(1, timeout=15)[0]
        assert x["headers"]["authorization"] == f"Bearer {CALLBACK_TOKEN}"
        want = hmac.new(b"cfg-secret", x["body"], hashlib.sha256).hexdigest()
        assert x["headers"]["x-openclaw-signature"] == want
        assert g.stderr().count("configured callback headers and secret are withheld") == 3
        assert CALLBACK_TOKEN not in g.stderr() and "cfg-secret" not in g.stderr()
