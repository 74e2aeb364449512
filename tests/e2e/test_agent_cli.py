"""`chela agent -m ... [--session] [--model] [--json]` against a running
gateway and a fake LLM (issue #3 item 8): it streams the answer as it
arrives, exits 0 on an ok run, 1 when the run fails (class on stderr), 2
on usage errors."""

import json
import os
import select
import subprocess
import time

import pytest

from e2elib import chela_bin, clean_env, free_port, sanitizer_lines
from fakes.llm import FakeLLM
from test_rest_chat import TRICKY, run_status, start_agent_gateway, turns, wait_token

pytestmark = pytest.mark.cli


@pytest.fixture
def fake():
    with FakeLLM("anthropic") as f:
        yield f


@pytest.fixture
def gw(gateway_factory, fake):
    return start_agent_gateway(gateway_factory, fake)


def test_agent_streams_as_it_arrives(gw, fake):
    fake.push({"text": "Once upon a time there was a gateway.", "chunks": 4, "chunk_delay": 0.5})
    argv = [chela_bin(), "agent", "-m", "tell me a story", "--state", str(gw.state)]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         env=clean_env(gw.home))
    t0 = time.monotonic()
    out, first = b"", None
    fd = p.stdout.fileno()
    while True:
        r, _, _ = select.select([fd], [], [], 15)
        assert r, "no output within 15 s"
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        if first is None:
            first = time.monotonic()
        out += chunk
    rc = p.wait(10)
    t_exit = time.monotonic()
    err = p.stderr.read().decode()
    assert not sanitizer_lines(err), err
    assert rc == 0, err
    assert out.decode() == "Once upon a time there was a gateway.\n"
    # The first words were on stdout while the fake was still sending.
    assert t_exit - first >= 1.0, (first - t0, t_exit - t0)


def test_agent_json_and_exact_message(gw, fake):
    fake.push({"text": "All good.", "usage": {"input": 21, "output": 3}})
    p = gw.cli("agent", "-m", TRICKY, "--json")
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    assert j["status"] == "ok" and j["text"] == "All good."
    assert j["usage"]["inputTokens"] == 21 and j["usage"]["outputTokens"] == 3
    assert j["model"] == "fake-model" and j["runId"] and j["sessionKey"].startswith("agent:main:conv_")
    assert turns(fake.wait_requests(1)[-1]) == [("user", TRICKY)]
    assert run_status(gw, j["runId"], "ok")["source"] == "api"


def test_agent_session_and_model(gw, fake):
    fake.push({"text": "A1"}, {"text": "A2"})
    p = gw.cli("agent", "-m", "Q1", "--session", "cli-conv")
    assert p.returncode == 0 and p.stdout == "A1\n", p.stderr
    p = gw.cli("agent", "--message", "Q2", "--session", "cli-conv", "--model", "fake/fake-model")
    assert p.returncode == 0 and p.stdout == "A2\n", p.stderr
    req = fake.wait_requests(2)[-1]
    assert turns(req) == [("user", "Q1"), ("assistant", "A1"), ("user", "Q2")]
    assert req.json["model"] == "fake-model"
    j = json.loads(gw.cli("sessions", "show", "CLI-Conv", "--json").stdout)
    assert j["key"] == "agent:main:cli-conv"
    assert [m["content"] for m in j["messages"]] == ["Q1", "A1", "Q2", "A2"]
    # the canonical key, any case, one session; a malformed key is a usage error
    p = gw.cli("agent", "-m", "Q3", "--session", "agent:main", "--json")
    assert p.returncode == 2 and "malformed session key" in p.stderr, (p.returncode, p.stderr)
    p = gw.cli("runs", "list", "--session", "CLI-CONV", "--json")
    assert p.returncode == 0 and len(json.loads(p.stdout)["runs"]) == 2, p.stdout


def test_agent_exits_1_when_retries_are_exhausted(gateway_factory):
    with FakeLLM("openai") as fake:
        gw = start_agent_gateway(gateway_factory, fake,
                                 {"models": {"retry": {"count": 2, "baseDelayMs": 1, "maxDelayMs": 5}}})
        fake.push({"status": 500, "times": -1})
        p = gw.cli("agent", "-m", "doomed", "--json", timeout=30)
        assert p.returncode == 1, (p.stdout, p.stderr)
        assert "failed" in p.stderr
        j = json.loads(p.stdout)
        assert j["status"] == "error" and j["errorClass"] and j["error"]
        assert j["errorClass"] in p.stderr
        # One attempt and two retries, then the run failed.
        assert len(fake.requests) == 3
        run = run_status(gw, j["runId"], "error")
        assert run["status"] == "error" and run["errorClass"] == j["errorClass"]
        p = gw.cli("agent", "-m", "doomed again")
        assert p.returncode == 1 and p.stdout == "" and "failed" in p.stderr


def test_agent_usage_errors(gw, fake):
    for args in ((), ("-m",), ("-m", ""), ("--bogus",), ("-m", "x", "extra")):
        p = gw.cli("agent", *args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
    p = gw.cli("agent", "--help")
    assert p.returncode == 0 and "Usage" in p.stdout and "--session" in p.stdout
    # A model the gateway does not know is the caller's mistake: 2.
    p = gw.cli("agent", "-m", "x", "--model", "nope/nothing")
    assert p.returncode == 2 and "400" in p.stderr, p.stderr
    assert fake.requests == []


def test_agent_without_gateway(tmp_path):
    port = free_port()
    argv = [chela_bin(), "agent", "-m", "hi", "--url", f"http://127.0.0.1:{port}", "--token", "x",
            "--state", str(tmp_path / "none")]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=clean_env(tmp_path))
    assert p.returncode == 1 and "cannot reach" in p.stderr, p.stderr


def test_agent_needs_chat_scope(gw, fake):
    reader = gw.create_token("reader", "read")["token"]
    chatter = gw.create_token("chatter", "chat")["token"]
    wait_token(gw, reader)
    wait_token(gw, chatter)
    p = gw.cli("agent", "-m", "hi", "--token", reader)
    assert p.returncode == 1 and "403" in p.stderr and "chat" in p.stderr, p.stderr
    fake.push({"text": "hello chatter"})
    p = gw.cli("agent", "-m", "hi", "--token", chatter)
    assert p.returncode == 0 and p.stdout == "hello chatter\n", p.stderr
