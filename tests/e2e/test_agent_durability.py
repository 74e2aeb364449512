"""Durable runs end to end: a gateway killed (SIGKILL) or stopped
(SIGTERM) with runs queued or running resumes them at the next start on
the same state directory; nothing accepted is lost, nothing is stored
twice.
"""

import signal
import time

import pytest

from agentlib import (ChatStream, chat_ok, get_run, health_detail, in_thread, llm_config, session, start, turns,
                      wait_run)
from fakes.llm import FakeLLM

pytestmark = pytest.mark.signals


def _restart(gateway_factory, g, config):
    """A new gateway on g's state directory (its admin token still works)."""
    g2 = gateway_factory.new(config, state=g.state).start()
    g2.admin_token = g.admin_token
    return g2


def _open_stream_run(g, message, conv):
    """Start a streamed chat and return (stream, run id) once accepted."""
    st = ChatStream(g, message, conv, timeout=10)
    assert st.resp.status_code == 200, st.resp.text
    ev = st.until("start")
    assert ev and ev.get("runId"), st.events
    return st, ev["runId"]


def _user_messages(provider, body):
    return [t for r, t in turns(provider, body) if r == "user"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_running_run_completes_after_restart(gateway_factory, sig):
    with FakeLLM("anthropic") as fake:
        # first attempt hangs (the gateway dies meanwhile); the replay answers
        fake.push({"text": "never delivered", "first_byte_delay": 8},
                  {"text": "answer after restart", "usage": {"input": 11, "output": 4}})
        cfg = llm_config({"p": fake})
        # SIGTERM: a short grace, so the stop interrupts the run (a long one
        # would let it finish, which is fine but not what is tested here)
        cfg["limits"] = {"shutdownGraceMs": 300}
        g = start(gateway_factory, cfg)
        st, run_id = _open_stream_run(g, "please survive a crash", "dur-1")
        fake.wait_requests(1, timeout=5)
        assert get_run(g, run_id)["status"] == "running"
        g.signal(sig)
        assert g.wait(15) is not None, "the gateway did not exit"
        if sig == signal.SIGTERM:
            assert g.returncode == 0, g.stderr()[-2000:]
        st.close()

        g2 = _restart(gateway_factory, g, cfg)
        run = wait_run(g2, run_id, timeout=15)
        assert run["status"] == "ok", run
        assert run["result"]["text"] == "answer after restart"
        reqs = fake.wait_requests(2)
        assert len(reqs) == 2, "the replay should call the model exactly once more"
        # the replayed call carries the user message once, not twice
        assert _user_messages("anthropic", reqs[1].json) == ["please survive a crash"]
        s = session(g2, "dur-1")
        msgs = [(m["role"], m["content"]) for m in s["messages"]]
        assert msgs == [("user", "please survive a crash"), ("assistant", "answer after restart")], msgs
        assert s["inputTokens"] == 11 and s["outputTokens"] == 4
        assert health_detail(g2)["agent"]["runsResumed"] >= 1


def test_queued_runs_complete_after_sigkill(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "hang", "first_byte_delay": 8})
        fake.default = {"text": "resumed ok"}
        cfg = llm_config({"p": fake}, agents={"maxConcurrent": 1})
        g = start(gateway_factory, cfg)
        st_a, run_a = _open_stream_run(g, "A runs", "dur-a")
        fake.wait_requests(1, timeout=5)
        st_b, run_b = _open_stream_run(g, "B waits", "dur-b")       # another session, queued behind A
        st_c, run_c = _open_stream_run(g, "C waits too", "dur-a")   # same session as A, queued in its lane
        assert get_run(g, run_b)["status"] == "queued"
        assert get_run(g, run_c)["status"] == "queued"
        g.signal(signal.SIGKILL)
        g.wait(10)
        for st in (st_a, st_b, st_c):
            st.close()

        g2 = _restart(gateway_factory, g, cfg)
        for rid in (run_a, run_b, run_c):
            run = wait_run(g2, rid, timeout=20)
            assert run["status"] == "ok", run
            assert run["result"]["text"] == "resumed ok"
        # per-session order survives the restart: A before C, C sees A's turn
        sa = session(g2, "dur-a")
        assert [(m["role"], m["content"]) for m in sa["messages"]] == [
            ("user", "A runs"), ("assistant", "resumed ok"), ("user", "C waits too"), ("assistant", "resumed ok")]
        sb = session(g2, "dur-b")
        assert [m["role"] for m in sb["messages"]] == ["user", "assistant"]
        users = [_user_messages("openai", r.json) for r in fake.requests]
        assert users.count(["B waits"]) == 1
        assert users.count(["A runs"]) == 2           # the killed attempt and the replay
        assert ["A runs", "C waits too"] in users


def test_run_accepted_then_killed_before_start(gateway_factory):
    """A run durably queued (accepted) but not started when the process dies
    is not lost, and a run finished before the crash is not replayed."""
    with FakeLLM("anthropic", default={"text": "fine"}) as fake:
        cfg = llm_config({"p": fake})
        g = start(gateway_factory, cfg)
        done = chat_ok(g, "finished before the crash", "dur-q")
        fake.push({"text": "slow", "first_byte_delay": 8})
        st, rid = _open_stream_run(g, "in flight", "dur-q")
        fake.wait_requests(2, timeout=5)
        g.signal(signal.SIGKILL)
        g.wait(10)
        st.close()
        g2 = _restart(gateway_factory, g, cfg)
        assert wait_run(g2, rid, timeout=15)["status"] == "ok"
        time.sleep(0.3)
        assert get_run(g2, done["runId"])["status"] == "ok"
        users = [_user_messages("anthropic", r.json)[-1] for r in fake.requests]
        assert users.count("finished before the crash") == 1, "a finished run was replayed"
        s = session(g2, "dur-q")
        assert [m["content"] for m in s["messages"] if m["role"] == "user"] == [
            "finished before the crash", "in flight"]


def test_new_runs_accepted_while_resuming(gateway_factory):
    with FakeLLM("gemini", default={"text": "ok"}) as fake:
        fake.push({"text": "slow", "first_byte_delay": 8})
        cfg = llm_config({"p": fake})
        g = start(gateway_factory, cfg)
        st, rid = _open_stream_run(g, "old", "dur-n1")
        fake.wait_requests(1, timeout=5)
        g.signal(signal.SIGKILL)
        g.wait(10)
        st.close()
        g2 = _restart(gateway_factory, g, cfg)
        t, box = in_thread(chat_ok, g2, "new", "dur-n2")
        t.join(15)
        assert "r" in box, box
        assert wait_run(g2, rid, timeout=15)["status"] == "ok"
