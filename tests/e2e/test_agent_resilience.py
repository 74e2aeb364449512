"""LLM client resilience end to end: key rotation on 429, Retry-After,
fallback along the model chain, the circuit breaker opening and closing,
error classes in the REST answer, abort and the per-run timeout.  The
gateway binary talks to the fakes of fakes/llm.py over loopback.
"""

import time

import pytest

from agentlib import (MODEL, PROVIDERS, ChatStream, abort_run, chat, chat_ok, get_run, health_detail, in_thread,
                      list_runs, llm_config, start, wait_run)
from e2elib import http
from fakes.llm import FakeLLM

# ---------------------------------------------------------------- keys


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_on_one_key_moves_the_call_to_the_other(gateway_factory, provider):
    with FakeLLM(provider, strict=True) as fake:
        # Whichever key goes first gets a 429 asking for 30 s: the call must
        # not wait for it, the other key serves at once.
        fake.push({"status": 429, "retry_after": 30}, {"text": "served by the other key"},
                  {"text": "still the other key"})
        g = start(gateway_factory, llm_config({"p": (fake, {"keys": ["key-A", "key-B"]})}, retry=2))
        t0 = time.monotonic()
        a = chat_ok(g, "hello", "rot-1")
        assert time.monotonic() - t0 < 5, "the call waited for the rate-limited key"
        assert a["content"] == "served by the other key"
        reqs = fake.wait_requests(2)
        assert len(reqs) == 2
        k1, k2 = reqs[0].api_key, reqs[1].api_key
        assert {k1, k2} == {"key-A", "key-B"}, f"keys used: {k1!r} then {k2!r}"
        # the rate-limited key is cooling down: the next call uses the other
        b = chat_ok(g, "again", "rot-2")
        assert b["content"] == "still the other key"
        assert fake.wait_requests(3)[2].api_key == k2
        h = health_detail(g)["llm"]
        assert h["keyRotations"] >= 1, h
        keys = h["keys"]["p"]
        assert sum(k["rateLimits"] for k in keys) == 1, keys
        assert "key-A" not in str(h) and "key-B" not in str(h), "health/detail must not show key values"
        assert "key-A" not in g.stderr() and "key-B" not in g.stderr(), "a key value reached the log"


def test_429_retry_after_is_honoured_with_one_key(gateway_factory):
    with FakeLLM("anthropic", strict=True) as fake:
        fake.push({"status": 429, "retry_after_ms": 400}, {"text": "after the wait"})
        g = start(gateway_factory, llm_config({"p": fake}, retry=2))
        a = chat_ok(g, "hi", "ra-1")
        assert a["content"] == "after the wait"
        r1, r2 = fake.wait_requests(2)
        assert r2.time - r1.time >= 0.38, f"retried {r2.time - r1.time:.3f}s after a 400 ms retry-after-ms"
        assert r2.time - r1.time < 3


def test_all_keys_rate_limited_reports_rate_limit(gateway_factory):
    # Retry-After 1 s: with every key cooling down and no other model, the
    # client waits for the hint (bounded by models.retry.count), then reports.
    with FakeLLM("openai", default={"status": 429, "retry_after": 1}) as fake:
        g = start(gateway_factory, llm_config({"p": (fake, {"keys": ["k1", "k2"]})}, retry=1))
        t0 = time.monotonic()
        r = chat(g, "hi", "rl-all")
        assert time.monotonic() - t0 < 10
        assert r.status_code == 502, r.text
        assert {q.api_key for q in fake.requests} == {"k1", "k2"}
        j = r.json()
        assert j["errorClass"] == "rate_limit", j
        run = get_run(g, j["runId"])
        assert run["status"] == "error" and run["errorClass"] == "rate_limit"


# ---------------------------------------------------------------- fallback


def test_fallback_model_serves_after_primary_fails(gateway_factory):
    with FakeLLM("openai", default={"status": 500}) as primary, FakeLLM("anthropic", strict=True) as backup:
        backup.push({"text": "answer from the fallback", "usage": {"input": 9, "output": 3}})
        cfg = llm_config({"main": primary, "backup": backup}, primary=f"main/{MODEL}",
                         fallbacks=[f"backup/{MODEL}"], retry=1)
        g = start(gateway_factory, cfg)
        a = chat_ok(g, "who answers?", "fb-1")
        assert a["content"] == "answer from the fallback"
        assert a.get("provider") == "backup", a
        # the primary got its first attempt plus models.retry.count retries
        assert len(primary.requests) == 2, [r.path for r in primary.requests]
        assert len(backup.requests) == 1
        assert backup.last.json["messages"][0]["content"][0]["text"] == "who answers?"
        run = get_run(g, a["runId"])
        assert run["status"] == "ok" and run["provider"] == "backup"
        assert health_detail(g)["llm"]["fallbacks"] >= 1


def test_fallback_not_used_when_primary_recovers_on_retry(gateway_factory):
    with FakeLLM("gemini", strict=True) as primary, FakeLLM("openai", strict=True) as backup:
        primary.push({"status": 503}, {"text": "primary after one retry"})
        cfg = llm_config({"main": primary, "backup": backup}, fallbacks=[f"backup/{MODEL}"], retry=2)
        g = start(gateway_factory, cfg)
        a = chat_ok(g, "hi", "fb-2")
        assert a["content"] == "primary after one retry"
        assert len(backup.requests) == 0


@pytest.mark.parametrize("kind,cls,attempts", [
    ("server", "unknown", 3),          # 500: retried (count 2), then reported
    ("context_length", "context_length", 1),
    ("auth", "auth", 1),
    ("timeout", "timeout", 3),          # 504
])
def test_error_classes_reach_the_caller(gateway_factory, kind, cls, attempts):
    with FakeLLM("anthropic", default={"error_kind": kind}) as fake:
        # a breaker that stays closed: this test is about classes
        g = start(gateway_factory, llm_config({"p": fake}, retry=2, breaker={"failureThreshold": 1000}))
        r = chat(g, "fail", f"cls-{kind}")
        assert r.status_code in (502, 504), r.text
        j = r.json()
        assert j["errorClass"] == cls, j
        assert j.get("message"), j
        assert len(fake.requests) == attempts, f"{kind}: {len(fake.requests)} upstream attempts"
        run = get_run(g, j["runId"])
        assert run["status"] == "error" and run["errorClass"] == cls, run
        # a streamed chat reports the same class in its error event
        st = ChatStream(g, "fail again", f"cls-{kind}-s")
        try:
            evs = st.rest()
        finally:
            st.close()
        assert evs and evs[-1]["type"] == "error" and evs[-1]["error"] == cls, evs


def test_dropped_stream_before_any_text_is_retried(gateway_factory):
    with FakeLLM("anthropic", strict=True) as fake:
        # message_start then the connection drops: nothing reached the caller
        fake.push({"text": "lost", "drop_after": 1}, {"text": "whole answer"})
        g = start(gateway_factory, llm_config({"p": fake}, retry=1))
        a = chat_ok(g, "hi", "drop-1")
        assert a["content"] == "whole answer"
        assert len(fake.requests) == 2


def test_dropped_stream_after_text_fails_without_duplicating(gateway_factory):
    with FakeLLM("openai", strict=True) as fake:
        fake.push({"text": "alpha beta gamma delta", "chunks": 4, "drop_after": 3},
                  {"text": "alpha beta gamma delta"})
        g = start(gateway_factory, llm_config({"p": fake}, retry=1))
        r = chat(g, "hi", "drop-2")
        if r.status_code == 200:
            # a retry is acceptable only if the caller does not see the
            # first attempt's text twice
            assert r.json()["content"] == "alpha beta gamma delta", r.json()
        else:
            assert r.status_code == 502, r.text
            assert r.json()["errorClass"] in ("unknown", "timeout"), r.json()


# ---------------------------------------------------------------- breaker


def test_circuit_breaker_opens_and_closes(gateway_factory):
    threshold, cooldown_ms = 3, 500
    with FakeLLM("openai", default={"status": 500}) as fake:
        g = start(gateway_factory, llm_config({"p": fake}, retry=0,
                                              breaker={"failureThreshold": threshold, "cooldownMs": cooldown_ms}))
        for i in range(threshold):
            r = chat(g, f"fail {i}", f"cb-{i}")
            assert r.status_code == 502, r.text
        assert len(fake.requests) == threshold
        br = health_detail(g)["llm"]["breakers"]
        assert br and br[0]["state"] == "open", br
        # open: calls fail fast and never reach the upstream
        for i in range(3):
            t0 = time.monotonic()
            r = chat(g, f"fast {i}", f"cb-open-{i}")
            assert r.status_code in (502, 503), r.text
            assert time.monotonic() - t0 < 1.0
            assert "circuit" in r.json()["message"].lower(), r.json()
        assert len(fake.requests) == threshold, "a call went through an open circuit"
        assert health_detail(g)["llm"]["breakerRejections"] >= 3
        # the upstream recovers; after the cooldown one probe closes it
        fake.default = {"text": "back"}
        time.sleep(cooldown_ms / 1000 + 0.2)
        a = chat_ok(g, "probe", "cb-probe")
        assert a["content"] == "back"
        assert len(fake.requests) == threshold + 1
        br = health_detail(g)["llm"]["breakers"]
        assert br[0]["state"] == "closed", br
        for i in range(3):
            assert chat_ok(g, f"after {i}", f"cb-after-{i}")["content"] == "back"
        assert len(fake.requests) == threshold + 4


def test_breaker_probe_failure_reopens(gateway_factory):
    with FakeLLM("anthropic", default={"status": 500}) as fake:
        g = start(gateway_factory, llm_config({"p": fake}, retry=0,
                                              breaker={"failureThreshold": 2, "cooldownMs": 300}))
        for i in range(2):
            assert chat(g, "x", f"re-{i}").status_code == 502
        time.sleep(0.45)
        assert chat(g, "probe fails", "re-probe").status_code == 502
        assert len(fake.requests) == 3, "after the cooldown exactly one probe should go out"
        r = chat(g, "still open", "re-open")
        assert r.status_code in (502, 503) and "circuit" in r.json()["message"].lower(), r.text
        assert len(fake.requests) == 3


def test_open_breaker_falls_through_to_fallback(gateway_factory):
    with FakeLLM("openai", default={"status": 500}) as primary, \
            FakeLLM("gemini", default={"text": "from gemini"}) as backup:
        g = start(gateway_factory, llm_config({"main": primary, "backup": backup}, fallbacks=[f"backup/{MODEL}"],
                                              retry=0, breaker={"failureThreshold": 2, "cooldownMs": 60000}))
        for i in range(4):
            assert chat_ok(g, f"q{i}", f"fbo-{i}")["content"] == "from gemini"
        assert len(primary.requests) == 2, "the open primary circuit should be skipped, not called"
        assert len(backup.requests) == 4


# ---------------------------------------------------------------- abort and timeout


def test_abort_a_streaming_run(gateway_factory):
    with FakeLLM("anthropic") as fake:
        fake.push({"text": " ".join(f"w{i}" for i in range(40)), "chunks": 40, "chunk_delay": 0.15})
        g = start(gateway_factory, llm_config({"p": fake}))
        st = ChatStream(g, "talk slowly", "abort-1")
        try:
            assert st.resp.status_code == 200, st.resp.text
            start_ev = st.until("start")
            assert start_ev and start_ev["runId"]
            run_id = start_ev["runId"]
            assert st.until("delta") is not None
            t0 = time.monotonic()
            r = abort_run(g, run_id)
            assert r.status_code == 200, r.text
            assert r.json().get("ok") is True
            end = None
            while True:
                ev = st.next_event()
                if ev is None or ev["type"] in ("error", "done"):
                    end = ev
                    break
            assert time.monotonic() - t0 < 3, "the stream did not stop promptly after the abort"
        finally:
            st.close()
        assert end is not None and end["type"] == "error", end
        assert end["status"] == "aborted", end
        run = wait_run(g, run_id, timeout=5)
        assert run["status"] == "aborted", run
        assert len(st.text()) < len(" ".join(f"w{i}" for i in range(40)))
        # aborting a finished run is not an error, and changes nothing
        r = abort_run(g, run_id)
        assert r.status_code in (200, 404, 409), r.text
        assert get_run(g, run_id)["status"] == "aborted"
        assert health_detail(g)["agent"]["runsAborted"] == 1


def test_abort_a_non_streaming_run(gateway_factory):
    with FakeLLM("openai", default={"text": "late", "first_byte_delay": 5}) as fake:
        g = start(gateway_factory, llm_config({"p": fake}))
        t, box = in_thread(chat, g, "slow", "abort-2")
        fake.wait_requests(1, timeout=5)
        runs = [r for r in list_runs(g, sessionKey="abort-2") if r["status"] == "running"]
        assert len(runs) == 1, runs
        assert abort_run(g, runs[0]["runId"]).status_code == 200
        t.join(5)
        assert "r" in box, box
        assert box["r"].status_code == 409, box["r"].text
        assert box["r"].json()["status"] == "aborted"
        assert wait_run(g, runs[0]["runId"])["status"] == "aborted"


def test_abort_unknown_run_is_404(gateway_factory):
    with FakeLLM("openai") as fake:
        g = start(gateway_factory, llm_config({"p": fake}))
        r = abort_run(g, "no-such-run")
        assert r.status_code == 404, r.text


def test_run_timeout(gateway_factory):
    with FakeLLM("gemini", default={"text": "too late", "first_byte_delay": 4}) as fake:
        g = start(gateway_factory, llm_config({"p": fake}, agents={"timeoutSeconds": 1}))
        t0 = time.monotonic()
        r = chat(g, "take your time", "to-1")
        took = time.monotonic() - t0
        assert 0.9 <= took < 3.0, f"the 1 s run timeout fired after {took:.2f}s"
        assert r.status_code == 504, r.text
        j = r.json()
        assert j["errorClass"] == "timeout" and j["status"] == "timeout", j
        run = get_run(g, j["runId"])
        assert run["status"] == "timeout", run
        assert health_detail(g)["agent"]["runsTimeout"] == 1


def test_run_timeout_streaming(gateway_factory):
    with FakeLLM("anthropic", default={"text": "a b c d e f g h", "chunks": 8, "chunk_delay": 0.5}) as fake:
        g = start(gateway_factory, llm_config({"p": fake}, agents={"timeoutSeconds": 1}))
        st = ChatStream(g, "stream slowly", "to-2")
        try:
            evs = st.rest()
        finally:
            st.close()
        assert evs[-1]["type"] == "error" and evs[-1]["status"] == "timeout", evs
        assert wait_run(g, evs[0]["runId"])["status"] == "timeout"


def test_client_leaving_a_stream_aborts_its_run(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": " ".join(f"t{i}" for i in range(50)), "chunks": 50, "chunk_delay": 0.1})
        g = start(gateway_factory, llm_config({"p": fake}))
        st = ChatStream(g, "stream and hang up", "leave-1")
        start_ev = st.until("start")
        assert start_ev, st.events
        assert st.until("delta") is not None
        st.close()
        run = wait_run(g, start_ev["runId"], timeout=5)
        assert run["status"] == "aborted", run
        # the session keeps the user's message and what streamed before the abort
        s = http(g, "GET", "/api/v1/sessions/leave-1", token=g.admin_token).json()
        assert s["messages"][0]["content"] == "stream and hang up"


def test_slow_first_byte_times_out_and_is_retried(gateway_factory):
    with FakeLLM("anthropic", strict=True) as fake:
        fake.push({"text": "too slow", "first_byte_delay": 3}, {"text": "fast enough"})
        g = start(gateway_factory, llm_config({"p": fake}, retry=1, timeouts={"firstByteMs": 300}))
        t0 = time.monotonic()
        a = chat_ok(g, "hi", "fb-slow")
        assert a["content"] == "fast enough"
        assert time.monotonic() - t0 < 2.5, "the first-byte timeout did not cut the slow attempt"
        assert len(fake.requests) == 2


def test_slow_first_byte_every_time_is_a_timeout(gateway_factory):
    with FakeLLM("openai", default={"text": "late", "first_byte_delay": 3}) as fake:
        g = start(gateway_factory, llm_config({"p": fake}, retry=1, timeouts={"firstByteMs": 200}))
        r = chat(g, "hi", "fb-slow-2")
        assert r.status_code in (502, 504), r.text
        assert r.json()["errorClass"] == "timeout", r.json()
        assert len(fake.requests) == 2


def test_malformed_stream_before_text_is_retried(gateway_factory):
    with FakeLLM("anthropic", strict=True) as fake:
        fake.push({"text": "broken", "malformed": True}, {"text": "clean answer"})
        g = start(gateway_factory, llm_config({"p": fake}, retry=1))
        a = chat_ok(g, "hi", "malformed")
        assert a["content"] == "clean answer"
        assert len(fake.requests) == 2
