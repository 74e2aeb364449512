"""The open-file limit (cli/gateway_fds.c): chela fits limits.maxConnections
to `ulimit -n` before it listens, so the client past the limit gets the
documented 503 and the runs, the store and the outbound calls keep their
descriptors, instead of accept(2) failing with EMFILE and every socket,
SQLite file and callback of that moment failing with it.

The gateway is started under util-linux `prlimit`, which sets the limits
and then execs chela (same pid)."""

import re
import shutil
import socket
import time
import pytest

from e2elib import HOST, http, wait_for
from fakes.llm import FakeLLM
from hooklib import hook, hooks_config
from receivers import Receiver

pytestmark = pytest.mark.skipif(not shutil.which("prlimit"), reason="needs util-linux prlimit")


def start_limited(gateway_factory, cfg, soft, hard):
    g = gateway_factory.new(cfg)
    g.argv = ["prlimit", f"--nofile={soft}:{hard}", "--"] + g.argv
    return g.start()


def nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no open-file line")


def get_health(sock):
    """One keep-alive GET /health on an open socket: its status."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(rest) < n:
        chunk = sock.recv(4096)
        if not chunk:
            break
        rest += chunk
    return int(head.split()[1])


def test_soft_limit_raised_to_what_the_limits_need(gateway_factory):
    """Soft 256 under a hard 8192: raised, so the default 1024 connections fit."""
    g = start_limited(gateway_factory, {}, 256, 8192)
    soft, hard = nofile(g.pid)
    assert hard == 8192
    assert soft >= 2 * 1024 + 64, soft  # every connection, its refusal, the outbound ones
    assert "open-file limit raised from 256 to" in g.stderr()
    assert http(g, "GET", "/health").status_code == 200


def test_low_hard_limit_lowers_max_connections_and_keeps_room_for_runs(gateway_factory):
    """Hard limit 300: maxConnections is lowered (warned, with the limit to
    raise).  With every allowed connection open and 150 more clients
    knocking, each of those gets a 503, and a hook run still reaches its
    model and its callback (outbound sockets and SQLite files still open).
    Without the budget, accept failed with EMFILE around the 280th client:
    connections were dropped without an answer and the run's calls failed."""
    with FakeLLM("anthropic", default={"text": '{"ok": 1}'}) as fake, Receiver(secret="cb-secret-fd") as rx:
        cfg = hooks_config({"p": fake}, hooks={"retry": {"maxAttempts": 3, "backoffMs": 100}})
        g = start_limited(gateway_factory, cfg, 300, 300)
        m = re.search(r"limits\.maxConnections lowered from 1024 to (\d+); raise the hard limit to (\d+)", g.stderr())
        assert m, g.stderr()
        allowed = int(m.group(1))
        assert 16 <= allowed < 150, allowed
        held = []
        try:
            for _ in range(allowed):
                s = socket.create_connection((HOST, g.port), timeout=5)
                held.append(s)
                assert get_health(s) == 200
            refused = 0
            for _ in range(150):
                with socket.create_connection((HOST, g.port), timeout=5) as s:
                    s.settimeout(5)
                    data = b""
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    assert data.startswith(b"HTTP/1.1 503"), data[:200]
                    refused += 1
            assert refused == 150
            held.pop().close()  # room for the hook's own connection
            body = {"message": "go", "callback": {"url": rx.url("/cb"), "mode": "raw", "secret": "cb-secret-fd"}}
            for _ in range(50):  # the closed slot is free once the gateway reads the close
                r = hook(g, body=body)
                if r.status_code != 503:
                    break
                time.sleep(0.05)
            assert r.status_code == 202, r.text
            run_id = r.json()["runId"]
            reqs = rx.wait(1, timeout=15)
            assert reqs[0]["body"] == b'{"ok": 1}' and reqs[0]["sig_ok"]
            run = wait_for(lambda: (lambda j: j if j["status"] == "ok" else None)(
                http(g, "GET", f"/api/v1/runs/{run_id}", token=g.admin_token).json()), timeout=10)
            assert run["status"] == "ok"
            assert len(fake.requests) == 1
            # The held connections still work.
            assert get_health(held[0]) == 200
        finally:
            for s in held:
                s.close()
        # Room again once they close.
        wait_for(lambda: http(g, "GET", "/health").status_code == 200, timeout=5)
        assert "EMFILE" not in g.stderr() and "too many open files" not in g.stderr().lower()


def test_hard_limit_too_low_to_start_says_so(gateway_factory):
    g = gateway_factory.new({})
    g.argv = ["prlimit", "--nofile=100:100", "--"] + g.argv
    g.spawn()
    assert g.wait(10) == 1
    err = g.stderr()
    assert "the open-file limit (ulimit -n) is 100" in err and "needs at least" in err, err
