"""The agent's transcript cache (agents.defaults.transcriptCacheBytes, issue
#3): a turn appends to its session's cached history instead of reloading
it, and whatever else writes the transcript (chat.inject, sessions.compact,
reset, delete) is seen by the next turn because the run's start job checks
the stored transcript's ends.  Every test reads what the model was sent."""

import pytest

from e2elib import http
from fakes.llm import FakeLLM
from test_rest_chat import turns
from test_ws_protocol import TOKEN, connected, ws_config


@pytest.fixture
def fake():
    with FakeLLM("anthropic", default={"text": "ok"}) as f:
        yield f


def gateway(gateway_factory, fake, cache_bytes=None):
    cfg = ws_config(fake)
    if cache_bytes is not None:
        cfg.setdefault("agents", {}).setdefault("defaults", {})["transcriptCacheBytes"] = cache_bytes
    return gateway_factory(cfg)


def ask(c, key, message):
    fin = c.call("agent", {"message": message, "sessionKey": key, "idempotencyKey": f"{key}-{message}"},
                 skip_accepted=True)
    assert fin["payload"]["status"] == "ok", fin


def sent(fake):
    """The conversation of the last upstream request, without the system prompt."""
    return [t for t in turns(fake.requests[-1]) if t[0] != "system"]


@pytest.mark.parametrize("cache_bytes", [None, 0])
def test_history_grows_turn_by_turn(gateway_factory, fake, cache_bytes):
    gw = gateway(gateway_factory, fake, cache_bytes)
    c = connected(gw)
    for i in range(1, 5):
        ask(c, "tc1", f"q{i}")
    assert sent(fake) == [("user", "q1"), ("assistant", "ok"), ("user", "q2"), ("assistant", "ok"),
                          ("user", "q3"), ("assistant", "ok"), ("user", "q4")]
    c.close()


def test_other_writers_are_seen(gateway_factory, fake):
    gw = gateway(gateway_factory, fake)
    c = connected(gw)
    ask(c, "tc2", "first")
    # A message stored by someone else between two turns.
    assert c.call("chat.inject", {"sessionKey": "tc2", "message": "injected note"})["payload"]["ok"] is True
    ask(c, "tc2", "second")
    conv = sent(fake)
    assert conv[0] == ("user", "first") and conv[-1][0] == "user" and conv[-1][1].endswith("second")
    assert any("injected note" in text for _, text in conv), conv

    # Compaction replaces the older turns by a summary entry.
    assert c.call("sessions.compact", {"key": "tc2", "maxLines": 1})["payload"]["compacted"] is True
    ask(c, "tc2", "third")
    conv = sent(fake)
    assert ("user", "first") not in conv, conv
    assert conv[-1] == ("user", "third") or conv[-1][1].endswith("third"), conv

    # A reset starts a new transcript; so does a delete.
    c.call("sessions.reset", {"key": "tc2"})
    ask(c, "tc2", "after reset")
    assert sent(fake) == [("user", "after reset")]
    assert c.call("sessions.delete", {"key": "tc2"})["payload"]["deleted"] is True
    ask(c, "tc2", "after delete")
    assert sent(fake) == [("user", "after delete")]
    c.close()


def test_rest_reset_between_turns(gateway_factory, fake):
    gw = gateway(gateway_factory, fake)
    c = connected(gw)
    ask(c, "tc3", "one")
    ask(c, "tc3", "two")
    r = http(gw, "POST", "/api/v1/sessions/tc3/reset", token=TOKEN)
    assert r.status_code == 200, r.text
    ask(c, "tc3", "three")
    assert sent(fake) == [("user", "three")]
    c.close()
