"""Seed 004's Django client against chela (issue #4 item 4): the paths its
OpenClawClient calls, with its own `requests.Session` setup (Bearer gateway
token, JSON content type, its timeouts), and its signed webhook receiver
(X-OpenClaw-Signature: bare hex HMAC-SHA256 of the raw body).

Semantics chela gives them (docs/compatibility.md): a session id is a
session key; send records the text as the bot's turn of that session and
emits `message.sent` on the session's channel (`webhook` today); broadcast
emits one `message.sent` per recipient on `platform`; reset starts a new
transcript and emits seed 004's `status` event with status `reset`.
"""

import time

import requests

from agentlib import chat_ok, llm_config, session
from e2elib import http
from fakes.llm import FakeLLM
from hooklib import CallbackReceiver

GATEWAY_TOKEN = "django-gateway-token"
SECRET = "django-webhook-secret"


class OpenClawClient:
    """chatbot/openclaw_client.py of the seed, minus logging."""

    def __init__(self, gateway_url, token):
        self.gateway_url = gateway_url
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/json"})

    def send_message(self, session_id, text, attachments=None):
        payload = {"sessionId": session_id, "text": text}
        if attachments:
            payload["attachments"] = attachments
        response = self.session.post(f"{self.gateway_url}/api/messages/send", json=payload, timeout=10)
        response.raise_for_status()
        return response.json()

    def broadcast_message(self, platform, user_ids, text):
        payload = {"platform": platform, "recipients": user_ids, "text": text}
        response = self.session.post(f"{self.gateway_url}/api/messages/broadcast", json=payload, timeout=30)
        response.raise_for_status()
        return response.json()

    def get_session_info(self, session_id):
        response = self.session.get(f"{self.gateway_url}/api/sessions/{session_id}", timeout=5)
        response.raise_for_status()
        return response.json()

    def reset_session(self, session_id):
        response = self.session.post(f"{self.gateway_url}/api/sessions/{session_id}/reset", timeout=5)
        response.raise_for_status()
        return response.json()

    def get_health(self):
        try:
            response = self.session.get(f"{self.gateway_url}/api/health", timeout=3)
            response.raise_for_status()
            return response.json()
        except requests.exceptions.RequestException as e:
            return {"status": "error", "message": str(e)}


def _wait_event(rx, pred, timeout=15.0, g=None):
    """The first received webhook whose JSON event satisfies pred."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for x in list(rx.received):
            if x["status"] is not None and isinstance(x["json"], dict) and pred(x["json"]):
                return x
        time.sleep(0.05)
    outbox = http(g, "GET", "/api/v1/deliveries?limit=50", token=GATEWAY_TOKEN).text if g else ""
    raise AssertionError(f"no matching webhook event; got {[x['json'] for x in rx.received]}\noutbox: {outbox}"
                         f"\ngateway log: {g.stderr()[-4000:] if g else ''}")


def _gateway(gateway_factory, fake, rx):
    cfg = llm_config({"p": fake})
    cfg["gateway"] = {"auth": {"token": GATEWAY_TOKEN}}
    cfg["api"] = {"webhooks": {"outgoing": [{"url": rx.url, "secret": SECRET,
                                              "events": ["message.sent", "status"]}]}}
    g = gateway_factory(cfg)
    g.admin_token = g.admin_token or GATEWAY_TOKEN
    return g, OpenClawClient(f"http://127.0.0.1:{g.port}", GATEWAY_TOKEN)


def test_django_client_paths(gateway_factory):
    with FakeLLM("openai") as fake, CallbackReceiver(path="/api/openclaw/webhook/", kind="django",
                                                     secret=SECRET) as rx:
        fake.push({"text": "안녕하세요! 무엇을 도와드릴까요?", "times": -1})
        g, client = _gateway(gateway_factory, fake, rx)
        assert client.get_health().get("status") != "error"
        sid = "telegram:user-1"
        chat_ok(g, "hello", sid, token=GATEWAY_TOKEN)   # the run's own events go to the receiver too

        info = client.get_session_info(sid)
        assert info["key"] == sid and info["sessionId"]
        old_transcript = info["sessionId"]

        res = client.send_message(sid, "FAQ 답변입니다", attachments=[{"url": "https://x/y.png", "type": "image"}])
        assert res["ok"] is True and res["status"] == "sent" and res["sessionId"] == sid and res["messageId"]
        got = _wait_event(rx, lambda e: e["data"].get("messageId") == res["messageId"], g=g)
        assert got["status"] == 200, got        # signature verified as the Django view does
        ev = got["json"]
        assert ev["event"] == "message.sent"
        assert ev["data"]["sessionId"] == sid and ev["data"]["message"] == "FAQ 답변입니다"
        assert ev["data"]["attachments"] == [{"url": "https://x/y.png", "type": "image"}]
        # the operator's message is the bot's turn of the session
        msgs = session(g, sid)["messages"]
        assert msgs[-1]["role"] == "assistant" and "FAQ 답변입니다" in str(msgs[-1])

        res = client.broadcast_message("webhook", ["u1", "u2", "u3"], "공지: 22:00 점검")
        assert res["ok"] is True and res["sent"] == 3
        assert [x["recipient"] for x in res["results"]] == ["u1", "u2", "u3"]
        for x in res["results"]:
            got = _wait_event(rx, lambda e, x=x: e["data"].get("messageId") == x["messageId"], g=g)
            assert got["json"]["data"]["chatId"] == x["recipient"]
            assert got["json"]["data"]["message"] == "공지: 22:00 점검"

        res = client.reset_session(sid)
        assert res["ok"] is True and res["status"] == "reset" and res["previousTranscriptId"] == old_transcript
        got = _wait_event(rx, lambda e: e["event"] == "status", g=g)
        assert got["json"]["data"]["sessionId"] == sid and got["json"]["data"]["status"] == "reset"
        assert client.get_session_info(sid)["sessionId"] != old_transcript


def test_django_client_errors(gateway_factory):
    with FakeLLM("openai") as fake, CallbackReceiver(path="/hook", kind="django", secret=SECRET) as rx:
        g, client = _gateway(gateway_factory, fake, rx)
        for call in (lambda: client.send_message("no-such-session", "x"),
                     lambda: client.get_session_info("no-such-session"),
                     lambda: client.reset_session("no-such-session")):
            try:
                call()
                raise AssertionError("expected 404")
            except requests.HTTPError as e:
                assert e.response.status_code == 404
        try:
            client.broadcast_message("telegram", ["u1"], "x")
            raise AssertionError("expected 400")
        except requests.HTTPError as e:
            assert e.response.status_code == 400 and e.response.json()["channels"] == ["webhook"]
        for bad in ({"sessionId": "s"}, {"text": "x"}, {"sessionId": "has space", "text": "x"},
                    {"sessionId": "s", "text": "x", "attachments": "nope"}):
            r = client.session.post(f"{client.gateway_url}/api/messages/send", json=bad, timeout=5)
            assert r.status_code == 400, bad
        r = client.session.post(f"{client.gateway_url}/api/messages/broadcast",
                                json={"platform": "webhook", "recipients": [], "text": "x"}, timeout=5)
        assert r.status_code == 400
        r = requests.post(f"{client.gateway_url}/api/messages/send", json={"sessionId": "s", "text": "x"},
                          timeout=5, proxies={"http": None})
        assert r.status_code == 401
