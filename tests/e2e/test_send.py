"""POST /api/v1/send and GET /api/v1/skills end to end (issue #4 item 4,
seed 002).  chela has no chat channels yet: the `webhook` channel hands
the message to the outgoing webhooks as a signed `message.sent` event; any
other channel is a 400 that lists the configured ones.
"""

import hashlib
import hmac

from e2elib import assert_error, http
from hooklib import CallbackReceiver


def _cfg(rx, events=("message.sent",)):
    return {"api": {"webhooks": {"outgoing": [{"url": rx.url, "secret": "whsec", "events": list(events),
                                                "retry": {"maxAttempts": 2, "backoffMs": 100}}]}}}


def test_send_webhook_channel(gateway_factory):
    with CallbackReceiver(path="/events", kind="django", secret="whsec") as rx:
        g = gateway_factory(_cfg(rx))
        r = http(g, "POST", "/api/v1/send", token=g.admin_token,
                 json={"channel": "webhook", "chatId": "123456789", "message": "API를 통해 전송된 메시지입니다"})
        assert r.status_code == 200, r.text
        b = r.json()
        assert b["ok"] is True and b["messageId"] and b["channel"] == "webhook" and b["chatId"] == "123456789"
        got = rx.wait(1, timeout=15)[0]
        assert got["status"] == 200, got        # the signature checked as seed 004 computes it
        ev = got["json"]
        assert ev["event"] == "message.sent" and ev["timestamp"]
        d = ev["data"]
        assert d["chatId"] == "123456789" and d["message"] == "API를 통해 전송된 메시지입니다"
        assert d["messageId"] == b["messageId"] and d["channel"] == "webhook"
        sig = hmac.new(b"whsec", got["body"], hashlib.sha256).hexdigest()
        assert got["headers"]["x-signature-256"] == f"sha256={sig}"
        # a numeric chat id (Telegram's) is fine too
        r = http(g, "POST", "/api/v1/send", token=g.admin_token,
                 json={"channel": "webhook", "chatId": 42, "message": "hi"})
        assert r.status_code == 200 and r.json()["chatId"] == "42"


def test_send_refusals(gateway_factory):
    g = gateway_factory()
    r = http(g, "POST", "/api/v1/send", token=g.admin_token,
             json={"channel": "telegram", "chatId": "1", "message": "x"})
    j = assert_error(r, 400, "unknown_channel")
    assert j["channels"] == ["webhook"] and "webhook" in j["message"] and "telegram" in j["message"]
    assert_error(http(g, "POST", "/api/v1/send", token=g.admin_token, json={"chatId": "1", "message": "x"}), 400)
    assert_error(http(g, "POST", "/api/v1/send", token=g.admin_token,
                      json={"channel": "webhook", "message": "x"}), 400)
    assert_error(http(g, "POST", "/api/v1/send", token=g.admin_token,
                      json={"channel": "webhook", "chatId": "1", "message": ""}), 400)
    assert_error(http(g, "POST", "/api/v1/send", token=g.admin_token, data="nope",
                      headers={"Content-Type": "application/json"}), 400)
    assert http(g, "POST", "/api/v1/send", json={"channel": "webhook"}).status_code == 401
    # scopes: send is needed; read is not enough
    tok = g.create_token("reader", "read")["token"]
    sender = g.create_token("sender", "send")["token"]
    import time
    deadline = time.monotonic() + 5
    while http(g, "GET", "/api/v1/skills", token=tok).status_code == 401 and time.monotonic() < deadline:
        time.sleep(0.1)
    r = http(g, "POST", "/api/v1/send", token=tok, json={"channel": "webhook", "chatId": "1", "message": "x"})
    assert r.status_code == 403 and r.json()["missingScope"] == "send"
    r = http(g, "POST", "/api/v1/send", token=sender, json={"channel": "webhook", "chatId": "1", "message": "x"})
    assert r.status_code == 200, r.text
    assert http(g, "GET", "/api/v1/skills", token=sender).status_code == 403


def test_skills(gateway_factory):
    g = gateway_factory()
    r = http(g, "GET", "/api/v1/skills", token=g.admin_token)
    assert r.status_code == 200 and r.json() == {"skills": [], "count": 0, "truncated": False}
    skills = g.state / "workspace" / "skills"
    (skills / "weather").mkdir(parents=True)
    (skills / "weather" / "SKILL.md").write_text(
        "---\nname: weather\ndescription: \"Get the weather: now, or a forecast\"  \nmetadata: {x: 1}\n---\n# Weather\n")
    (skills / "notes").mkdir()
    (skills / "notes" / "SKILL.md").write_text(
        "---\r\nname: 'note''s taker'\r\ndescription: >\r\n  Takes notes\r\n  and files them.\r\n---\r\nbody\r\n")
    (skills / "bare").mkdir()
    (skills / "bare" / "SKILL.md").write_text("# no frontmatter here\n")
    (skills / "empty-dir").mkdir()
    (skills / "README.md").write_text("not a folder")
    (skills / ".hidden").mkdir()
    (skills / ".hidden" / "SKILL.md").write_text("---\nname: hidden\n---\n")
    r = http(g, "GET", "/api/v1/skills", token=g.admin_token)
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["count"] == 3 and not b["truncated"]
    by = {s["folder"]: s for s in b["skills"]}
    assert by["weather"] == {"name": "weather", "description": "Get the weather: now, or a forecast",
                             "folder": "weather", "path": "skills/weather/SKILL.md"}
    assert by["notes"]["name"] == "note's taker" and by["notes"]["description"] == "Takes notes and files them."
    assert by["bare"]["name"] == "bare" and by["bare"]["description"] is None
    # a huge SKILL.md is read only up to its cap
    (skills / "big").mkdir()
    (skills / "big" / "SKILL.md").write_text("---\nname: big\ndescription: d\n---\n" + "x" * 300000)
    r = http(g, "GET", "/api/v1/skills", token=g.admin_token)
    assert {s["folder"] for s in r.json()["skills"]} == {"weather", "notes", "bare", "big"}


def test_broadcast_total_size_cap(gateway_factory):
    """recipients x text bytes is capped (api.broadcast.maxTotalBytes,
    16 MiB by default): each recipient is one full-size event stored once
    per subscribed webhook, all queued by the one request."""
    with CallbackReceiver(path="/events", kind="django", secret="whsec") as rx:
        g = gateway_factory(_cfg(rx))
        text = "y" * (100 * 1024)
        r = http(g, "POST", "/api/messages/broadcast", token=g.admin_token, timeout=30,
                 json={"platform": "webhook", "recipients": [str(i) for i in range(200)], "text": text})
        j = assert_error(r, 413, "payload_too_large")
        assert "api.broadcast.maxTotalBytes" in j["message"] and "16777216" in j["message"], j
        # Nothing was queued for the refused broadcast.
        d = http(g, "GET", "/api/v1/deliveries", token=g.admin_token).json()
        assert d["total"] == 0, d
        # Within the cap it still sends one event per recipient.
        r = http(g, "POST", "/api/messages/broadcast", token=g.admin_token,
                 json={"platform": "webhook", "recipients": ["a", "b", 3], "text": text})
        assert r.status_code == 200, r.text
        assert r.json()["sent"] == 3
        got = rx.wait(3, timeout=15)
        assert sorted(x["json"]["data"]["chatId"] for x in got) == ["3", "a", "b"]


def test_broadcast_total_size_cap_is_configurable(gateway_factory):
    g = gateway_factory({"api": {"broadcast": {"maxTotalBytes": "64KB"}}})
    body = {"platform": "webhook", "recipients": [str(i) for i in range(7)], "text": "z" * 10000}
    j = assert_error(http(g, "POST", "/api/messages/broadcast", token=g.admin_token, json=body), 413,
                     "payload_too_large")
    assert "70000" in j["message"] and "65536" in j["message"], j
    body["recipients"] = body["recipients"][:6]
    r = http(g, "POST", "/api/messages/broadcast", token=g.admin_token, json=body)
    assert r.status_code == 200 and r.json()["sent"] == 6, r.text
