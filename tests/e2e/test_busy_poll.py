"""Busy polling before the event loop or the store writer sleeps
(gateway.busyPollMicros, net/loop.c, store/writer.c): its state in
/health/detail, chat turns through it against the fake OpenAI upstream,
0 turning it off, and out-of-range values refused at startup."""
import os
import time

import pytest
from e2elib import http
from fakes.llm import FakeLLM
from test_rest_chat import start_agent_gateway

POLL_KEYS = {"maxMicros", "budgetMicros", "caught", "grown", "shrunk", "pollingMs", "skippedSaturated", "coreTaken",
             "saturated"}


@pytest.fixture
def openai_fake():
    with FakeLLM("openai") as f:
        yield f


def detail(g):
    r = http(g, "GET", "/health/detail", token=g.admin_token)
    assert r.status_code == 200, r.text
    j = r.json()
    assert set(j["eventLoop"]["busyPoll"]) == POLL_KEYS, j["eventLoop"]
    assert set(j["store"]["busyPoll"]) == POLL_KEYS, j["store"]
    return j["eventLoop"]["busyPoll"], j["store"]["busyPoll"]


def chat_turns(g, n):
    for i in range(n):
        r = http(g, "POST", "/api/v1/chat", token=g.admin_token,
                 json={"message": f"turn {i}", "conversationId": f"poll-{i % 3}"})
        assert r.status_code == 200, r.text
        assert r.json()["content"]


def test_turns_caught_while_polling(gateway_factory, openai_fake):
    """A generous maximum (10 ms) covers the fake's answer and the store's
    commits on any machine, so some waits end while a thread polls; the
    turns' answers are whole and their transcripts stored."""
    g = start_agent_gateway(gateway_factory, openai_fake, {"gateway": {"busyPollMicros": 10000}})
    loop, writer = detail(g)
    assert loop["maxMicros"] == 10000
    two_cpus = len(os.sched_getaffinity(g.pid)) >= 2
    assert writer["maxMicros"] == (10000 if two_cpus else 0)
    chat_turns(g, 30)
    loop, writer = detail(g)
    assert loop["caught"] > 0 and loop["grown"] > 0, loop
    assert 0 <= loop["budgetMicros"] <= 10000
    if two_cpus:
        assert writer["caught"] > 0, writer
    r = http(g, "GET", "/api/v1/conversations/poll-0", token=g.admin_token)
    assert r.status_code == 200, r.text
    assert len(r.json()["messages"]) == 20  # 10 turns, user and assistant each


def test_idle_gateway_stops_polling(gateway_factory, openai_fake):
    """Waits longer than the maximum (nothing happens for a while) shrink
    the budget to nothing: an idle gateway does not poll."""
    g = start_agent_gateway(gateway_factory, openai_fake, {"gateway": {"busyPollMicros": 50}})
    chat_turns(g, 5)
    deadline = time.monotonic() + 10
    while True:
        loop, writer = detail(g)  # this request is itself a short burst
        if loop["shrunk"] > 0 and writer["budgetMicros"] == 0:
            break
        assert time.monotonic() < deadline, (loop, writer)
        time.sleep(0.3)
    # Idle past the 1 Hz tick: a wait longer than 50 us shrinks again.  A
    # machine busy with other work can keep the loop from seeing one idle
    # window in a second, so it gets a few (each check is a burst itself).
    for _ in range(6):
        time.sleep(1.2)
        loop2, _ = detail(g)
        if loop2["shrunk"] > loop["shrunk"]:
            break
    assert loop2["shrunk"] > loop["shrunk"], (loop, loop2)


def test_zero_never_polls(gateway_factory, openai_fake):
    g = start_agent_gateway(gateway_factory, openai_fake, {"gateway": {"busyPollMicros": 0}})
    chat_turns(g, 10)
    for t in detail(g):
        assert t["maxMicros"] == 0 and t["budgetMicros"] == 0, t
        assert t["caught"] + t["grown"] + t["shrunk"] + t["pollingMs"] == 0, t


def test_default_is_500_microseconds(gateway_factory):
    g = gateway_factory()
    loop, writer = detail(g)
    assert loop["maxMicros"] == 500
    assert writer["maxMicros"] == (500 if len(os.sched_getaffinity(g.pid)) >= 2 else 0)


@pytest.mark.parametrize("value", [-1, 10001, "fast"])
def test_out_of_range_refused(gateway_factory, value):
    g = gateway_factory.new({"gateway": {"busyPollMicros": value}})
    g.spawn()
    rc = g.wait(10)
    assert rc not in (None, 0), "gateway started with busyPollMicros=%r" % (value,)
    assert "busyPollMicros" in g.stderr(), g.stderr()


def thread_names(pid):
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except FileNotFoundError:  # a pool thread ending meanwhile
            pass
    return names


def test_threads_are_named(gateway_factory, openai_fake):
    """The store's threads carry their own names (core/thread.c), so top -H
    and perf tell the writer and the checkpointer from the event loop: a
    turn commits through the writer, a conversation read runs on a libuv
    pool thread (named at its first read), and the checkpointer starts with
    the store.  The event loop (the main thread) keeps the process's name."""
    g = start_agent_gateway(gateway_factory, openai_fake)
    chat_turns(g, 2)
    r = http(g, "GET", "/api/v1/conversations/poll-0", token=g.admin_token)
    assert r.status_code == 200, r.text
    with open(f"/proc/{g.pid}/task/{g.pid}/comm") as f:
        assert f.read().strip() == "chela"
    names = thread_names(g.pid)
    assert names.count("chela-writer") == 1 and names.count("chela-ckpt") == 1, names
    assert "chela-pool" in names, names
