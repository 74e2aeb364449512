"""Outgoing event webhooks (issue #4 item 3; seed 002 section 4, seed 004):
webhooks from api.webhooks.outgoing[] and from POST /api/v1/webhooks get
{event, timestamp, data} bodies signed the way seed 002's and seed 004's
receivers check them (plus the timestamped V2), for run.completed,
run.failed, message.received, message.sent and conversation.created;
REST CRUD with admin scope; validation of config and REST input.

Runs are started with POST /api/v1/chat against the fake Anthropic
upstream; receivers are receivers.Receiver instances on 127.0.0.1.
"""

import json
import re
import time

import pytest

from conftest import BASE_CONFIG
from e2elib import assert_error, deep_merge, http, wait_for, write_config
from fakes.llm import FakeLLM
from receivers import Receiver
from test_rest_chat import agent_config

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SECRET = "your-webhook-secret"


def gateway(gateway_factory, fake, webhooks=None, extra=None, **kw):
    cfg = agent_config(fake, deep_merge({"api": {"webhooks": {"outgoing": webhooks or []}}}, extra or {}))
    g = gateway_factory(cfg, **kw)
    assert g.admin_token, g.stdout()
    return g


def chat(gw, message, conv=None, timeout=20):
    body = {"message": message}
    if conv:
        body["conversationId"] = conv
    r = http(gw, "POST", "/api/v1/chat", token=gw.admin_token, json=body, timeout=timeout)
    assert r.status_code == 200, f"chat: {r.status_code} {r.text}"
    return r.json()


def deliveries(gw, token=None, **query):
    r = http(gw, "GET", "/api/v1/deliveries", token=token or gw.admin_token, params=query)
    assert r.status_code == 200, r.text
    return r.json()


def body_of(req):
    return json.loads(req["body"])


# ---------------------------------------------------------------- configured webhooks


def test_configured_webhook_run_completed_signed(gateway_factory):
    """A configured webhook with a secret and a ${ENV} header gets
    run.completed once, with the right body and all three signatures."""
    with FakeLLM("anthropic", default={"text": "Hi there", "usage": {"input": 12, "output": 3}}) as fake, \
            Receiver(secret=SECRET) as rx:
        gw = gateway(gateway_factory, fake, [{
            "url": rx.url("/api/openclaw/webhook/"), "secret": SECRET, "events": ["run.completed"],
            "headers": {"Authorization": "Bearer ${HOOK_TOKEN}"}}], env={"HOOK_TOKEN": "tok-123"})
        res = chat(gw, "hello")
        req = rx.wait_event("run.completed")[0]
        assert req["sig_002"] and req["sig_004"] and req["sig_v2"], req
        assert req["path"] == "/api/openclaw/webhook/"
        h = req["headers"]
        assert h["content-type"] == "application/json"
        assert h["authorization"] == "Bearer tok-123"
        assert UUID.match(h["x-openclaw-delivery"])
        assert h["x-openclaw-event"] == "run.completed"
        assert h["x-openclaw-signature"] == h["x-signature-256"][len("sha256="):]
        assert re.fullmatch(r"[0-9a-f]{64}", h["x-openclaw-signature"])
        assert abs(int(h["x-openclaw-timestamp"]) - time.time()) < 60
        doc = body_of(req)
        assert set(doc) == {"event", "timestamp", "data"}
        assert doc["event"] == "run.completed"
        assert RFC3339.match(doc["timestamp"]), doc["timestamp"]
        d = doc["data"]
        assert d["runId"] == res["runId"]
        assert d["sessionKey"] == "agent:main:" + res["conversationId"]
        assert d["status"] == "ok" and d["text"] == "Hi there"
        assert d["usage"]["inputTokens"] == 12 and d["usage"]["outputTokens"] == 3
        assert d["model"] == "fake-model" and d["error"] is None
        assert RFC3339.match(d["finishedAt"])
        # Only the subscribed event, exactly once.
        time.sleep(0.3)
        assert [r["headers"]["x-openclaw-event"] for r in rx.received] == ["run.completed"]
        rows = deliveries(gw, runId=res["runId"])["deliveries"]
        assert len(rows) == 1
        row = rows[0]
        assert row["id"] == h["x-openclaw-delivery"]
        assert row["status"] == "done" and row["attempts"] == 1 and row["lastStatus"] == 200
        assert row["kind"] == "webhook" and row["event"] == "run.completed" and row["webhookId"] == "cfg:0"
        assert row["signed"] is True and row["headers"] == ["Authorization"]
        assert "tok-123" not in json.dumps(rows)  # header values are never echoed
        # The full record carries the exact body that was signed.
        one = http(gw, "GET", f"/api/v1/deliveries/{row['id']}", token=gw.admin_token).json()
        assert one["body"].encode() == req["body"]
        m = http(gw, "GET", "/metrics", token=gw.admin_token).text
        assert 'chela_deliveries_total{outcome="done"} 1' in m
        assert 'chela_delivery_attempts_total{result="2xx"} 1' in m


def test_unsigned_webhook_and_every_event(gateway_factory):
    """No secret: no signature headers.  Empty events: every event, in the
    order message.received/conversation.created, message.sent,
    run.completed; a second turn of the same conversation is not a new
    conversation."""
    with FakeLLM("anthropic", default={"text": "Reply text"}) as fake, Receiver() as rx:
        gw = gateway(gateway_factory, fake, [{"url": rx.url()}])
        res = chat(gw, "first message")
        conv = res["conversationId"]
        for ev in ("conversation.created", "message.received", "message.sent", "run.completed"):
            rx.wait_event(ev)
        for r in rx.received:
            assert not any(k.startswith("x-openclaw-signature") or k == "x-signature-256" for k in r["headers"])
            assert "x-openclaw-timestamp" not in r["headers"]
        created = body_of(rx.events("conversation.created")[0])["data"]
        assert created["conversationId"] == conv and created["runId"] == res["runId"]
        assert created["sessionKey"] == "agent:main:" + conv
        got = body_of(rx.events("message.received")[0])["data"]
        assert got["content"] == "first message" and got["role"] == "user"
        assert got["conversationId"] == conv and got["channel"] == "api" and got["runId"] == res["runId"]
        sent = body_of(rx.events("message.sent")[0])["data"]
        assert sent["content"] == "Reply text" and sent["role"] == "assistant"
        assert sent["messageId"] != got["messageId"]
        # Second turn: message events again, no conversation.created.
        res2 = chat(gw, "second", conv)
        rx.wait_event("run.completed", 2)
        rx.wait_event("message.received", 2)
        time.sleep(0.3)
        assert len(rx.events("conversation.created")) == 1
        assert body_of(rx.events("message.received")[1])["data"]["runId"] == res2["runId"]
        # A new conversation is one.
        chat(gw, "elsewhere")
        rx.wait_event("conversation.created", 2)


def test_run_failed_event(gateway_factory):
    with FakeLLM("anthropic", default={"status": 400, "error": {"type": "invalid_request_error",
                                                                 "message": "bad request"}}) as fake, \
            Receiver(secret=SECRET) as rx:
        gw = gateway(gateway_factory, fake, [{"url": rx.url(), "secret": SECRET,
                                              "events": ["run.completed", "run.failed"]}])
        r = http(gw, "POST", "/api/v1/chat", token=gw.admin_token, json={"message": "x"}, timeout=20)
        assert r.status_code >= 400
        req = rx.wait_event("run.failed")[0]
        assert req["sig_ok"]
        d = body_of(req)["data"]
        assert d["status"] == "error" and d["error"] and d["errorClass"]
        time.sleep(0.2)
        assert not rx.events("run.completed")


# ---------------------------------------------------------------- REST-managed webhooks


def test_rest_webhooks_crud_and_delivery(gateway_factory):
    with FakeLLM("anthropic", default={"text": "from rest"}) as fake, Receiver() as cfg_rx, Receiver() as rx:
        gw = gateway(gateway_factory, fake, [{"url": cfg_rx.url(), "secret": "cfg-secret-1", "events": ["status"]}])
        tok = gw.admin_token
        r = http(gw, "POST", "/api/v1/webhooks", token=tok,
                 json={"url": rx.url("/rest"), "events": ["run.completed"], "description": "test hook",
                       "headers": {"X-Env": "ci"}, "retry": {"maxAttempts": 5, "backoffMs": 100}})
        assert r.status_code == 201, r.text
        wh = r.json()
        assert wh["id"].startswith("wh_") and wh["url"] == rx.url("/rest")
        assert wh["secret"].startswith("whsec_") and len(wh["secret"]) > 40  # generated, shown once
        assert wh["events"] == ["run.completed"] and wh["retry"] == {"maxAttempts": 5, "backoffMs": 100}
        rx.secret = wh["secret"]  # now the receiver checks every signature with it
        listed = http(gw, "GET", "/api/v1/webhooks", token=tok).json()["webhooks"]
        assert [w["id"] for w in listed] == [wh["id"], "cfg:0"]
        assert all("secret" not in w for w in listed)
        assert listed[1]["source"] == "config" and listed[1]["signed"] is True
        assert listed[0]["headers"] == ["X-Env"]
        res = chat(gw, "hi")
        req = rx.wait_event("run.completed")[0]
        assert req["sig_ok"], req
        assert req["headers"]["x-env"] == "ci"
        assert body_of(req)["data"]["runId"] == res["runId"]
        row = deliveries(gw, runId=res["runId"])["deliveries"][0]
        assert row["webhookId"] == wh["id"] and row["maxAttempts"] == 5
        assert not cfg_rx.received  # the configured one wants only `status`
        # Delete: later events do not reach it.
        assert http(gw, "DELETE", f"/api/v1/webhooks/{wh['id']}", token=tok).json() == {"ok": True, "id": wh["id"]}
        assert_error(http(gw, "DELETE", f"/api/v1/webhooks/{wh['id']}", token=tok), 404, "not_found")
        chat(gw, "after delete")
        time.sleep(0.5)
        assert len(rx.received) == 1
        assert [w["id"] for w in http(gw, "GET", "/api/v1/webhooks", token=tok).json()["webhooks"]] == ["cfg:0"]


def test_rest_webhook_given_secret_survives_restart(gateway_factory):
    """A REST webhook is stored: after a restart it still receives events."""
    with FakeLLM("anthropic") as fake, Receiver(secret="given-secret-123") as rx:
        gw = gateway(gateway_factory, fake)
        tok = gw.admin_token
        r = http(gw, "POST", "/api/v1/webhooks", token=tok,
                 json={"url": rx.url(), "secret": "given-secret-123", "events": ["run.completed"]})
        assert r.status_code == 201 and r.json()["secret"] == "given-secret-123"
        assert gw.stop() == 0
        gw2 = gateway_factory(state=gw.state, config=None, base=False)
        r = http(gw2, "POST", "/api/v1/chat", token=tok, json={"message": "again"}, timeout=20)
        assert r.status_code == 200, r.text
        assert rx.wait_event("run.completed")[0]["sig_ok"]


def test_webhooks_scopes(gateway_factory):
    with FakeLLM("anthropic") as fake, Receiver() as rx:
        gw = gateway(gateway_factory, fake)
        r = http(gw, "POST", "/api/v1/tokens", token=gw.admin_token, json={"name": "reader", "scope": ["read"]})
        assert r.status_code == 201, r.text
        reader = r.json()["token"]
        for method, path, body in (("GET", "/api/v1/webhooks", None),
                                   ("POST", "/api/v1/webhooks", {"url": rx.url()}),
                                   ("DELETE", "/api/v1/webhooks/wh_x", None),
                                   ("GET", "/api/v1/deliveries", None),
                                   ("GET", "/api/v1/deliveries/x", None),
                                   ("POST", "/api/v1/deliveries/x/retry", None)):
            resp = http(gw, method, path, token=reader, json=body)
            assert resp.status_code == 403, (method, path, resp.status_code, resp.text)
            assert resp.json()["missingScope"] == "admin"
            assert http(gw, method, path, json=body).status_code == 401
        assert http(gw, "GET", "/api/v1/webhooks", token=gw.admin_token).status_code == 200


def test_rest_webhook_validation(gateway_factory):
    with FakeLLM("anthropic") as fake:
        gw = gateway(gateway_factory, fake, [{"url": "http://127.0.0.1:9/x"}])
        tok = gw.admin_token
        bad = [
            {},
            {"url": "ftp://example.com/x"},
            {"url": "http://"},
            {"url": "http://h/", "events": ["run.started"]},
            {"url": "http://h/", "events": "run.completed"},
            {"url": "http://h/", "secret": "short"},
            {"url": "http://h/", "secret": 42},
            {"url": "http://h/", "secret": "long enough but\nwith a newline"},  # was a 500 (random seed 12)
            {"url": "http://h/", "description": "tab\there"},
            {"url": "http://h/", "headers": {"Bad Header": "x"}},
            {"url": "http://h/", "headers": {"X-A": "a\r\nInjected: 1"}},
            {"url": "http://h/", "headers": {"X-OpenClaw-Signature": "forged"}},
            {"url": "http://h/", "headers": {"X-A": 5}},
            {"url": "http://h/", "retry": {"maxAttempts": 0}},
            {"url": "http://h/", "retry": {"backoffMs": 1}},
        ]
        for b in bad:
            assert_error(http(gw, "POST", "/api/v1/webhooks", token=tok, json=b), 400, "invalid_request")
        assert http(gw, "POST", "/api/v1/webhooks", token=tok, data="{",
                    headers={"Content-Type": "application/json"}).status_code == 400
        assert http(gw, "POST", "/api/v1/webhooks", token=tok, data="url=x",
                    headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 415
        assert_error(http(gw, "DELETE", "/api/v1/webhooks/cfg:0", token=tok), 409, "configured")
        assert http(gw, "GET", "/api/v1/webhooks", token=tok).json()["webhooks"][0]["id"] == "cfg:0"


@pytest.mark.parametrize("hook, needle", [
    ({"secret": "x"}, "url"),
    ({"url": "http://h/", "events": ["run.started"]}, "events"),
    ({"url": "http://h/", "retry": {"maxAttempts": 0}}, "maxAttempts"),
    ({"url": "http://h/", "colour": "blue"}, "colour"),
])
def test_config_validation(gateway_factory, hook, needle):
    """Bad api.webhooks.outgoing[] entries stop the gateway at start (exit 2)
    with a message naming the key."""
    g = gateway_factory.new({"api": {"webhooks": {"outgoing": [hook]}}})
    g.spawn()
    assert g.wait(10) == 2
    err = g.stderr()
    assert "api.webhooks.outgoing" in err and needle in err, err


# ---------------------------------------------------------------- headers, logs


def send(gw, chat_id="1", text="hello"):
    r = http(gw, "POST", "/api/v1/send", token=gw.admin_token,
             json={"channel": "webhook", "chatId": chat_id, "message": text})
    assert r.status_code == 200, r.text
    return r.json()


def test_configured_content_type_is_sent_once(gateway_factory):
    """A Content-Type among a webhook's headers replaces application/json,
    once, for configured and REST webhooks alike (it was sent twice: the
    default, then the configured one)."""
    with Receiver() as rx:
        gw = gateway_factory({"api": {"webhooks": {"outgoing": [{
            "url": rx.url("/cfg"), "events": ["message.sent"],
            "headers": {"Content-Type": "application/vnd.acme+json", "X-Env": "ci"}}]}}})
        r = http(gw, "POST", "/api/v1/webhooks", token=gw.admin_token,
                 json={"url": rx.url("/rest"), "events": ["message.sent"],
                       "headers": {"content-type": "text/plain; charset=utf-8"}})
        assert r.status_code == 201, r.text
        assert r.json()["headers"] == ["content-type"]
        send(gw)
        got = {q["path"]: q for q in rx.wait(2)}
        for path, want in (("/cfg", "application/vnd.acme+json"), ("/rest", "text/plain; charset=utf-8")):
            values = [ln.split(":", 1)[1].strip() for ln in got[path]["header_lines"]
                      if ln.lower().startswith("content-type:")]
            assert values == [want], (path, got[path]["header_lines"])
        assert got["/cfg"]["headers"]["x-env"] == "ci"
        rows = {d["url"]: d for d in deliveries(gw)["deliveries"]}
        assert rows[rx.url("/cfg")]["contentType"] == "application/vnd.acme+json"
        assert rows[rx.url("/cfg")]["headers"] == ["X-Env"]
        assert rows[rx.url("/rest")]["contentType"] == "text/plain; charset=utf-8"


def test_webhook_url_credentials_never_logged(gateway_factory):
    """Userinfo and query string of a webhook URL stay out of the log (the
    create line printed them whole)."""
    with Receiver() as rx:
        gw = gateway_factory()
        url = f"http://hookuser:hunter2@127.0.0.1:{rx.port}/x?token=SEKRIT"
        r = http(gw, "POST", "/api/v1/webhooks", token=gw.admin_token, json={"url": url, "events": ["message.sent"]})
        assert r.status_code == 201, r.text
        send(gw)
        assert rx.wait(1)[0]["path"] == "/x?token=SEKRIT"
        assert wait_for(lambda: deliveries(gw)["counts"]["done"] == 1, 10)
        assert http(gw, "DELETE", f"/api/v1/webhooks/{r.json()['id']}", token=gw.admin_token).status_code == 200
        err = gw.wait_stderr(lambda t: "webhooks: created" in t and "webhooks: deleted" in t and t)
        assert err and f"127.0.0.1:{rx.port}/x" in err, err
        for secret in ("hunter2", "SEKRIT", "hookuser"):
            assert secret not in err, f"{secret} in the log:\n{err}"


def test_oversized_webhook_headers_are_a_400(gateway_factory):
    """32 headers of 8 KiB pass the per-header checks but not the store's
    16 KiB for all of them: a 400 naming that limit, not 409
    too_many_webhooks."""
    gw = gateway_factory()
    big = {f"X-Big-{i}": "v" * 8000 for i in range(3)}
    r = http(gw, "POST", "/api/v1/webhooks", token=gw.admin_token,
             json={"url": "http://127.0.0.1:9/x", "headers": big})
    j = assert_error(r, 400, "invalid_request")
    assert "16384" in j["message"] and "headers" in j["message"], j
    assert http(gw, "GET", "/api/v1/webhooks", token=gw.admin_token).json()["webhooks"] == []
    # Just under the limit is fine.
    ok = {f"X-Big-{i}": "v" * 5000 for i in range(3)}
    assert http(gw, "POST", "/api/v1/webhooks", token=gw.admin_token,
                json={"url": "http://127.0.0.1:9/x", "headers": ok}).status_code == 201


def test_configured_webhook_with_oversized_headers_is_refused(gateway_factory):
    """A configured webhook whose headers can never be stored stops the
    gateway at start with the limit named (instead of every event failing
    to queue), and a SIGHUP that brings one in is refused, keeping the
    running configuration."""
    import signal

    with Receiver() as rx:
        big = {f"X-Big-{i}": "v" * 8000 for i in range(3)}
        bad = {"api": {"webhooks": {"outgoing": [
            {"url": rx.url("/big"), "events": ["message.sent"], "headers": big},
            {"url": rx.url("/ok"), "events": ["message.sent"]}]}}}
        g = gateway_factory.new(bad)
        g.spawn()
        assert g.wait(10) not in (None, 0)
        assert "api.webhooks.outgoing[0]" in g.stderr() and "16384" in g.stderr(), g.stderr()
        gw = gateway_factory({"api": {"webhooks": {"outgoing": [
            {"url": rx.url("/ok"), "events": ["message.sent"]}]}}})
        write_config(gw.config_path, deep_merge(BASE_CONFIG, bad))
        gw.signal(signal.SIGHUP)
        assert gw.wait_stderr(lambda t: "keeping the running configuration" in t)
        send(gw)
        assert [q["path"] for q in rx.wait(1)] == ["/ok"]
