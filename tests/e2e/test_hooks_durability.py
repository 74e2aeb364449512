"""Hook durability end to end (issue #4 item 1): the 202 of /hooks/agent
comes only after the run is committed, so a gateway killed with SIGKILL
right after accepting N hooks (sent concurrently) completes all N after a
restart; and a hook run that ended before a crash without its callback
queued gets the callback at the next start.
"""

import concurrent.futures as cf
import signal
import sqlite3
import time

import pytest
import requests

from agentlib import list_runs, wait_run
from fakes.llm import FakeLLM
from hooklib import HOOK_TOKEN, CallbackReceiver, hook, hooks_config

pytestmark = pytest.mark.signals

N = 200


def _restart(gateway_factory, g, config):
    g2 = gateway_factory.new(config, state=g.state).start()
    g2.admin_token = g.admin_token
    return g2


def _runs_by_status(g, status):
    out, cursor = [], None
    for _ in range(20):
        q = {"status": status, "limit": 1000}
        if cursor:
            q["cursor"] = cursor
        r = requests.get(f"http://127.0.0.1:{g.port}/api/v1/runs", params=q,
                         headers={"Authorization": f"Bearer {g.admin_token}"}, timeout=10,
                         proxies={"http": None, "https": None})
        assert r.status_code == 200, r.text
        b = r.json()
        out += b["runs"]
        cursor = b.get("nextCursor")
        if not cursor:
            break
    return out


def test_sigkill_after_accepting_n_hooks(gateway_factory):
    with FakeLLM("openai") as fake:
        # phase 1: the model hangs, few runs may run at once: most of the N wait queued
        fake.push({"text": "never", "first_byte_delay": 30, "times": -1})
        cfg = hooks_config({"p": fake}, agents={"maxConcurrent": 4, "queueSize": 1000})
        g = gateway_factory(cfg)
        url = f"http://127.0.0.1:{g.port}/hooks/agent"

        def send(i):
            with requests.Session() as s:
                s.trust_env = False
                r = s.post(url, json={"message": f"durable hook #{i:03d}\nwith \"quotes\"", "name": "dur",
                                      "sessionKey": f"dur:{i}", "wakeMode": "now"},
                           headers={"Authorization": f"Bearer {HOOK_TOKEN}"}, timeout=10)
                return r.status_code, r.json().get("runId")

        with cf.ThreadPoolExecutor(50) as ex:
            results = list(ex.map(send, range(N)))
        g.signal(signal.SIGKILL)          # right after the last 202
        assert g.wait(10) is not None
        assert [s for s, _ in results] == [202] * N, results
        ids = {rid for _, rid in results}
        assert len(ids) == N

        # phase 2: a fast model; every accepted run completes
        fake.clear()
        fake.push({"text": "done", "times": -1})
        cfg2 = hooks_config({"p": fake}, agents={"maxConcurrent": 32, "queueSize": 1000})
        g2 = _restart(gateway_factory, g, cfg2)
        deadline = time.monotonic() + 60
        done = set()
        while time.monotonic() < deadline:
            done = {r["runId"] for r in _runs_by_status(g2, "ok")}
            if ids <= done:
                break
            time.sleep(0.2)
        assert ids <= done, f"{len(ids - done)} of {N} accepted hooks never completed"
        # at the fake: every message arrived (in-flight ones twice: killed, then replayed)
        seen = set()
        for req in fake.requests:
            for m in req.json["messages"]:
                if m["role"] == "user" and isinstance(m.get("content"), str) and m["content"].startswith("durable"):
                    seen.add(m["content"])
        assert len(seen) == N, f"the model saw {len(seen)} of {N} hook messages"
        assert len(_runs_by_status(g2, "queued")) == 0 and len(_runs_by_status(g2, "running")) == 0


def test_callback_recovered_after_crash_between_end_and_enqueue(gateway_factory):
    with FakeLLM("openai") as fake, CallbackReceiver(path="/cb") as rx:
        rx.kind = "django"
        rx.secret = "k"
        fake.push({"text": '{"x": 1}', "times": -1})
        cfg = hooks_config({"p": fake}, hooks={"callback": {"url": rx.url, "secret": "k"}})
        g = gateway_factory(cfg)
        r = hook(g, body={"message": "m", "callback": {"url": rx.url, "mode": "raw"}})
        assert r.status_code == 202, r.text
        run_id = r.json()["runId"]
        assert rx.wait(1)[0]["status"] == 200
        g.stop()
        # simulate a crash after the run's end was committed but before its
        # callback was: no delivery row, no delivery state
        db = sqlite3.connect(str(g.state / "chela.db"))
        with db:
            db.execute("DELETE FROM deliveries WHERE run_id = ?", (run_id,))
            db.execute("UPDATE runs SET delivery = NULL WHERE run_id = ?", (run_id,))
        db.close()
        g2 = _restart(gateway_factory, g, cfg)
        got = rx.wait(2, timeout=15)
        assert got[1]["status"] == 200 and got[1]["json"] == {"x": 1}
        deadline = time.monotonic() + 5
        run = wait_run(g2, run_id)
        while "delivery" not in run and time.monotonic() < deadline:
            time.sleep(0.05)
            run = wait_run(g2, run_id)
        assert run["delivery"]["callback"]["state"] == "queued", run
        assert "ended before a restart" in g2.stderr()
        assert list_runs(g2, limit=5)
