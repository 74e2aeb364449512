"""Retention (api/retention.c, store/retention.c): at start and hourly the
gateway deletes audit rows past store.auditRetentionDays, finished runs
past store.runRetentionDays, and disposable sessions (a hook run's
`hook:<uuid>`, a stateless /v1 call's...) untouched for
session.maintenance.pruneAfter, with their transcripts.  Nothing else: the
main session, conversations and recent rows stay.

Rows are aged by editing the stopped gateway's database (its clock cannot
be moved), then a restart runs the first pass."""

import sqlite3
import time

from agentlib import chat_ok, start
from e2elib import http, wait_for
from fakes.llm import FakeLLM
from hooklib import hook, hooks_config

DAY_MS = 86400000


def restart(gateway_factory, g, cfg):
    g2 = gateway_factory.new(cfg, state=g.state).start()
    g2.admin_token = g.admin_token
    return g2


def age(g, days, keep_run, keep_session):
    """Move every row `days` back, except one run and one session."""
    shift = days * DAY_MS
    db = sqlite3.connect(str(g.state / "chela.db"))
    try:
        db.execute("UPDATE audit SET ts_ms = ts_ms - ?", (shift,))
        db.execute("UPDATE runs SET created_ms = created_ms - ?1, started_ms = started_ms - ?1,"
                   " finished_ms = finished_ms - ?1 WHERE run_id <> ?2", (shift, keep_run))
        db.execute("UPDATE sessions SET updated_ms = updated_ms - ? WHERE key <> ?", (shift, keep_session))
        db.commit()
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("audit", "runs", "sessions")}
    finally:
        db.close()


def count(g, sql):
    db = sqlite3.connect(str(g.state / "chela.db"))
    try:
        return db.execute(sql).fetchone()[0]
    finally:
        db.close()


def hook_runs(g, n):
    ids = []
    for i in range(n):
        r = hook(g, body={"message": f"hook {i}", "idempotencyKey": f"idem-{i}"})
        assert r.status_code == 202, r.text
        ids.append(r.json()["runId"])
    for rid in ids:
        wait_for(lambda: http(g, "GET", f"/api/v1/runs/{rid}", token=g.admin_token).json()["status"] == "ok",
                 timeout=15)
    return ids


def run_of(g, rid):
    return http(g, "GET", f"/api/v1/runs/{rid}", token=g.admin_token)


def session_of(g, key):
    return http(g, "GET", f"/api/v1/sessions/{key}", token=g.admin_token)


def test_old_rows_are_deleted_and_nothing_else(gateway_factory):
    with FakeLLM("anthropic", default={"text": "done"}) as fake:
        cfg = hooks_config({"p": fake})
        g = start(gateway_factory, cfg)
        ids = hook_runs(g, 3)
        keys = [run_of(g, rid).json()["sessionKey"] for rid in ids]
        assert all(k.startswith("agent:main:hook:") for k in keys), keys
        chat_ok(g, "keep me", "c-keep")
        chat_ok(g, "main too", "main")
        assert g.stop() == 0
        before = age(g, 40, keep_run=ids[2], keep_session=keys[2])
        assert before["audit"] > 0 and before["runs"] == 5 and before["sessions"] == 5

        g2 = restart(gateway_factory, g, cfg)
        assert wait_for(lambda: "retention: deleted" in g2.stderr(), timeout=15), g2.stderr()[-3000:]
        line = [x for x in g2.stderr().splitlines() if "retention: deleted" in x][0]
        # 4 runs (2 hooks, 2 chats) and 2 hook sessions; every aged audit row
        assert "4 run(s), 2 session(s)" in line, line
        for rid in ids[:2]:
            assert run_of(g2, rid).status_code == 404
        assert run_of(g2, ids[2]).json()["status"] == "ok"  # recent: kept
        for k in keys[:2]:
            assert session_of(g2, k).status_code == 404
        assert session_of(g2, keys[2]).status_code == 200
        # the conversation and the main session stay, with their messages
        conv = http(g2, "GET", "/api/v1/conversations/c-keep", token=g2.admin_token)
        assert conv.status_code == 200 and [m["content"] for m in conv.json()["messages"]] == ["keep me", "done"]
        assert len(session_of(g2, "agent:main:main").json()["messages"]) == 2
        # a pruned run's idempotency key is free again: a new run
        r = hook(g2, body={"message": "again", "idempotencyKey": "idem-0"})
        assert r.status_code == 202 and r.json()["runId"] != ids[0], r.text
        assert g2.stop() == 0
        now = int(time.time() * 1000)
        assert count(g2, f"SELECT COUNT(*) FROM audit WHERE ts_ms < {now - 30 * DAY_MS}") == 0
        assert count(g2, "SELECT COUNT(*) FROM audit") > 0  # this start's rows
        assert count(g2, f"SELECT COUNT(*) FROM messages WHERE session_key IN ('{keys[0]}', '{keys[1]}')") == 0


def test_settings_keep_or_only_warn(gateway_factory):
    """0 keeps audit rows and runs; mode warn counts the sessions it would
    delete and deletes none; a shorter pruneAfter ("10d") reaches rows
    the default keeps."""
    with FakeLLM("anthropic", default={"text": "done"}) as fake:
        cfg = hooks_config({"p": fake})
        g = start(gateway_factory, cfg)
        ids = hook_runs(g, 2)
        assert g.stop() == 0
        before = age(g, 40, keep_run="-", keep_session="-")

        cfg_keep = dict(cfg, store={"auditRetentionDays": 0, "runRetentionDays": 0},
                        session={"maintenance": {"mode": "warn"}})
        g2 = restart(gateway_factory, g, cfg_keep)
        assert wait_for(lambda: "would be deleted" in g2.stderr(), timeout=15), g2.stderr()[-3000:]
        assert "2 stale disposable session(s) would be deleted" in g2.stderr()
        time.sleep(0.5)
        assert "retention: deleted" not in g2.stderr()
        assert all(run_of(g2, rid).status_code == 200 for rid in ids)
        assert g2.stop() == 0
        assert count(g2, "SELECT COUNT(*) FROM sessions") == before["sessions"]
        assert count(g2, f"SELECT COUNT(*) FROM audit WHERE ts_ms < {int(time.time() * 1000) - 30 * DAY_MS}") > 0

        # 20 days old: inside the defaults, past a 10-day pruneAfter
        age(g, -20, keep_run="-", keep_session="-")
        cfg_short = dict(cfg, store={"runRetentionDays": 0}, session={"maintenance": {"pruneAfter": "10d"}})
        g3 = restart(gateway_factory, g, cfg_short)
        assert wait_for(lambda: "retention: deleted" in g3.stderr(), timeout=15), g3.stderr()[-3000:]
        assert "0 run(s), 2 session(s)" in [x for x in g3.stderr().splitlines() if "retention: deleted" in x][0]
