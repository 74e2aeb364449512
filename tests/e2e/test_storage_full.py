"""A full disk under the store: every way in that queues a run answers
503 with Retry-After and says the storage is full (a client retries; a
500 "i/o error" read as the gateway's bug, and as final), nothing that was
answered 2xx is lost, and once space is back the gateway takes work again
without a restart.

The state directory lives on a small tmpfs mounted for the test, so it
needs root (CI runs as root); elsewhere it is skipped.
"""

import os
import subprocess
import time

import pytest

from agentlib import get_run
from e2elib import http
from fakes.llm import FakeLLM
from hooklib import hook, hooks_config, metric
from test_ws_protocol import connect_params, connected

FULL = "the gateway's storage is full; retry later"


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {p.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def grow(disk):
    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)


def test_full_disk_is_503_and_nothing_accepted_is_lost(gateway_factory, small_disk):
    # Slow answers: the first runs end after the disk is full, so their
    # outcomes meet it too.
    with FakeLLM("openai", default={"text": "done", "first_byte_delay": 1.0}) as fake:
        cfg = hooks_config({"o": fake})
        cfg["gateway"] = {"http": {"endpoints": {"chatCompletions": {"enabled": True}}}}
        g = gateway_factory(cfg, state=small_disk / "state")
        tok = g.admin_token
        accepted, full = [], None
        for i in range(400):  # 20 KB each: a 3 MB disk fills in well under 400
            r = hook(g, body={"message": f"{i} " + "x" * 20_000, "sessionKey": f"hook:full-{i}"})
            if r.status_code == 202:
                accepted.append(r.json()["runId"])
                continue
            full = r
            break
        assert full is not None, "the disk never filled"
        assert accepted, "nothing fit before the disk filled"
        assert full.status_code == 503, (full.status_code, full.text)
        assert full.json() == {"ok": False, "error": FULL}
        assert full.headers.get("Retry-After")

        r = http(g, "POST", "/api/v1/chat", token=tok, json={"message": "y" * 200_000}, timeout=10)
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "storage_full" and r.json()["message"] == FULL, r.text
        assert r.headers.get("Retry-After")
        r = http(g, "POST", "/v1/chat/completions", token=tok, timeout=10,
                 json={"model": "openclaw", "messages": [{"role": "user", "content": "z" * 200_000}]})
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "storage_full", r.text
        c = connected(g, connect_params(token=tok))
        try:
            r = c.call("agent", {"message": "v" * 200_000, "idempotencyKey": "ws-full"})
        finally:
            c.close()
        assert r["ok"] is False and r["error"]["code"] == "UNAVAILABLE", r
        assert r["error"]["message"] == FULL and r["error"]["details"] == {"reason": "storage-full", "retryable": True}
        r = hook(g, "/hooks/wake", body={"text": "w" * 200_000, "mode": "next-heartbeat"})
        assert r.status_code == 503 and r.json() == {"ok": False, "error": FULL}, r.text

        m = http(g, "GET", "/metrics", token=tok).text
        assert metric(m, "chela_hook_requests_total", outcome="refused", reason="storage_full") >= 2, m
        assert "storage is full" in g.stderr() or "database or disk is full" in g.stderr()

        deadline = time.monotonic() + 20
        while "retrying until the store takes it" not in g.stderr() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "retrying until the store takes it" in g.stderr()
        running = [rid for rid in accepted if get_run(g, rid)["status"] == "running"]
        assert running, "a run whose outcome waits is still running, not reported ended"
        grow(small_disk)
        r = hook(g, body={"message": "after", "sessionKey": "hook:after"})
        assert r.status_code == 202, r.text
        accepted.append(r.json()["runId"])
        # Runs that ended while the disk was full kept retrying their
        # outcome's write; they end now, without a restart.
        statuses = wait_all(g, accepted)
        assert all(st == "ok" for st in statuses), statuses
        assert "its outcome is saved, after" in g.stderr()
        g.stop()
        g2 = gateway_factory.new(cfg, state=g.state).start()
        assert all(get_run(g2, rid, token=tok)["status"] == "ok" for rid in accepted)


def wait_all(g, run_ids, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        statuses = [get_run(g, rid).get("status") for rid in run_ids]
        if all(st not in ("queued", "running") for st in statuses) or time.monotonic() > deadline:
            return statuses
        time.sleep(0.2)
