"""OpenClaw v4's hook fan-out: a mapping with `forEach` starts one run per
item of a payload array (at most 200), each rendered as if the array held
that item alone, and its `gmail` preset (hooks.presets) built on it.  Every
item is checked before any is queued; each is queued durably; a batch sent
again names the runs it already started (derived idempotency keys)."""

import threading

from agentlib import sigkill_and_restart, start, wait_run
from e2elib import http
from fakes.llm import FakeLLM
from hooklib import hook, hooks_config, metric


def gmail_batch(*ids):
    return {"messages": [{"id": i, "threadId": "t" + i, "from": f"{i}@example.com", "subject": f"subject {i}",
                          "snippet": f"snippet {i}", "body": f"body of {i}\n\"quoted\""} for i in ids]}


def user_texts(req):
    return [m["content"] for m in req.json["messages"] if m["role"] == "user"]


def test_gmail_preset_one_run_per_message(gateway_factory):
    with FakeLLM("openai") as main, FakeLLM("openai") as mail:
        main.push({"text": "main", "times": -1})
        mail.push({"text": "filed", "times": -1})
        g = start(gateway_factory, hooks_config({"p": main, "q": mail},
                                                hooks={"presets": ["gmail"], "gmail": {"model": "q/fake-model"}}))
        r = hook(g, path="/hooks/gmail", body=gmail_batch("m1", "m2", "m3"))
        assert r.status_code == 202, r.text
        b = r.json()
        assert b["ok"] is True and b["dispatched"] == 3 and len(set(b["runIds"])) == 3
        assert b["runId"] == b["runIds"][0]
        runs = [wait_run(g, rid) for rid in b["runIds"]]
        assert [x["status"] for x in runs] == ["ok"] * 3
        assert [x["sessionKey"] for x in runs] == ["agent:main:hook:gmail:m1", "agent:main:hook:gmail:m2", "agent:main:hook:gmail:m3"]
        # hooks.gmail.model: the preset's runs go to provider q, not the primary
        reqs = mail.wait_requests(3)
        assert not main.requests
        got = sorted(user_texts(q)[-1] for q in reqs)
        assert got == [f"New email from {i}@example.com\nSubject: subject {i}\nsnippet {i}\nbody of {i}\n\"quoted\""
                       for i in ("m1", "m2", "m3")]
        # the same batch again (a retried push) names the same runs, 200
        again = hook(g, path="/hooks/gmail", body=gmail_batch("m1", "m2", "m3"))
        assert again.status_code == 200, again.text
        assert again.json()["runIds"] == b["runIds"]
        # a batch that overlaps starts only the new message's run
        more = hook(g, path="/hooks/gmail", body=gmail_batch("m3", "m4"))
        assert more.status_code == 202, more.text
        ids = more.json()["runIds"]
        assert ids[0] == b["runIds"][2] and ids[1] not in b["runIds"]
        assert wait_run(g, ids[1])["sessionKey"] == "agent:main:hook:gmail:m4"
        assert len(mail.wait_requests(4)) == 4
        # no messages: 204, nothing queued; a missing or non-array key too
        for body in ({"messages": []}, {}, {"messages": {"id": "x"}}):
            r = hook(g, path="/hooks/gmail", body=body)
            assert r.status_code == 204 and r.content == b"", (body, r.text)
        text = http(g, "GET", "/metrics", token=g.admin_token).text
        # a request is counted once, whatever its number of items
        assert metric(text, "chela_hook_requests_total", outcome="accepted", reason="replay") == 1
        assert metric(text, "chela_hook_requests_total", outcome="accepted", reason="mapping") == 5


def test_gmail_body_cap_is_its_own(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok", "times": -1})
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"presets": ["gmail"], "maxBodyBytes": 4096,
                                                                    "gmail": {"maxBytes": 100}}))
        # 100 x (3 x 100 + 8192) = 849,200 bytes on /hooks/gmail; 4 KiB elsewhere
        big = gmail_batch("a")
        big["messages"][0]["body"] = "x" * 300_000
        r = hook(g, path="/hooks/gmail", body=big)
        assert r.status_code == 202, r.text
        assert hook(g, body={"message": "x" * 5000}).status_code == 413
        big["messages"][0]["body"] = "x" * 900_000
        r = hook(g, path="/hooks/gmail", body=big)
        assert r.status_code == 413 and "hooks.gmail.maxBytes" in r.json()["error"]


def test_custom_fanout_mapping(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "done", "times": -1})
        mappings = [{"id": "orders", "match": {"path": "orders"}, "forEach": "orders",
                     "sessionKey": "shop:{{orders[0].id}}",
                     "messageTemplate": "order {{orders[0].id}} from {{payload.shop}} for {{orders[0].total}}"},
                    {"id": "strict", "match": {"path": "strict"}, "forEach": "orders",
                     "sessionKey": "{{orders[0].id}}", "messageTemplate": "order {{orders[0].id}}"},
                    {"id": "pings", "match": {"path": "pings"}, "forEach": "items", "action": "wake",
                     "textTemplate": "ping {{items[0]}}"}]
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"mappings": mappings}))
        orders = [{"id": f"o{i}", "total": i * 10} for i in range(205)]
        r = hook(g, path="/hooks/orders", body={"shop": "s1", "orders": orders})
        assert r.status_code == 202, r.text
        ids = r.json()["runIds"]
        assert r.json()["dispatched"] == 200 and len(set(ids)) == 200  # the cap: 5 dropped
        last = wait_run(g, ids[-1], timeout=60)
        assert last["sessionKey"] == "agent:main:shop:o199" and last["status"] == "ok"
        assert "dropped 5 items beyond the 200-item cap" in g.stdout() + g.stderr()
        texts = {user_texts(q)[-1] for q in fake.wait_requests(200, timeout=60)}
        assert "order o7 from s1 for 70" in texts and len(texts) == 200
        # the caller's idempotency key: the same key and batch names the same runs
        body = {"shop": "s2", "orders": [{"id": "k1", "total": 1}, {"id": "k1", "total": 1}]}
        first = hook(g, path="/hooks/orders", body=body, headers={"Idempotency-Key": "batch-1"})
        assert first.status_code == 202 and len(set(first.json()["runIds"])) == 2  # identical items: two runs
        second = hook(g, path="/hooks/orders", body=body, headers={"Idempotency-Key": "batch-1"})
        assert second.status_code == 200 and second.json()["runIds"] == first.json()["runIds"]
        other = hook(g, path="/hooks/orders", body=body, headers={"Idempotency-Key": "batch-2"})
        assert other.status_code == 202 and not set(other.json()["runIds"]) & set(first.json()["runIds"])
        # one bad item: 400, and none of the batch is queued
        for rid in first.json()["runIds"] + other.json()["runIds"]:
            wait_run(g, rid)
        before = len(fake.requests)
        bad = hook(g, path="/hooks/strict", body={"orders": [{"id": "fine:1"}, {"id": "agent:main:x"}]})
        assert bad.status_code == 400 and "reserved prefix" in bad.json()["error"], bad.text
        ok = hook(g, path="/hooks/strict", body={"orders": [{"id": "fine:2"}]})
        assert ok.status_code == 202 and wait_run(g, ok.json()["runId"])["status"] == "ok"
        assert len(fake.requests) == before + 1
        assert "fine:1" not in {x["sessionKey"] for x in
                                http(g, "GET", "/api/v1/runs", token=g.admin_token).json()["runs"]}
        # wake fan-out: one system event, a line per item
        r = hook(g, path="/hooks/pings", body={"items": ["a", "b", " "]})
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
        rid = r.json()["runId"]
        assert wait_run(g, rid)["status"] == "ok"
        assert any("ping a\nping b" in t for q in fake.requests for t in user_texts(q) if isinstance(t, str))
        assert hook(g, path="/hooks/pings", body={"items": []}).status_code == 204


def refused(gateway_factory, cfg, word):
    g = gateway_factory.new(cfg)
    g.spawn()
    rc = g.wait(10)
    assert rc not in (None, 0), g.stdout()
    assert word in g.stdout() + g.stderr(), g.stderr()


def test_bad_for_each_and_preset_refused_at_start(gateway_factory):
    with FakeLLM("openai") as fake:
        for key in ("a.b", "x[0]", "__proto__", ""):
            refused(gateway_factory, hooks_config({"p": fake}, hooks={"mappings": [{"forEach": key,
                                                                                  "messageTemplate": "m"}]}),
                    "forEach")
        refused(gateway_factory, hooks_config({"p": fake}, hooks={"presets": ["outlook"]}), "presets")


def test_fanout_survives_sigkill(gateway_factory):
    """Every item of an accepted batch runs, even when the gateway dies
    right after the answer."""
    with FakeLLM("openai") as fake:
        fake.push({"text": "slow", "delay": 0.3, "times": -1})
        cfg = hooks_config({"p": fake}, hooks={"presets": ["gmail"]})
        g = start(gateway_factory, cfg)
        r = hook(g, path="/hooks/gmail", body=gmail_batch(*[f"k{i}" for i in range(40)]))
        assert r.status_code == 202, r.text
        ids = r.json()["runIds"]
        g2 = sigkill_and_restart(gateway_factory, g, cfg)
        runs = [wait_run(g2, rid, timeout=60) for rid in ids]
        assert all(x["status"] == "ok" for x in runs), [x["status"] for x in runs]
        assert {x["sessionKey"] for x in runs} == {f"agent:main:hook:gmail:k{i}" for i in range(40)}


def test_client_gone_still_runs_every_item(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok", "times": -1})
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"presets": ["gmail"]}))
        done = threading.Event()

        def post():
            try:
                hook(g, path="/hooks/gmail", body=gmail_batch(*[f"g{i}" for i in range(50)]), timeout=0.001)
            except Exception:
                pass
            done.set()

        threading.Thread(target=post, daemon=True).start()
        assert done.wait(10)
        reqs = fake.wait_requests(50, timeout=30)
        assert len(reqs) == 50
        r = hook(g, path="/hooks/gmail", body=gmail_batch(*[f"g{i}" for i in range(50)]))
        assert r.status_code in (200, 202) and r.json()["dispatched"] == 50


def test_openclaw_hook_agent_keys(gateway_factory):
    """hooks.allowedAgentIds (OpenClaw): chela's one agent is `main`, so a
    list without it (or `*`) refuses every hook; a mapping's agentId,
    allowUnsafeExternalContent and hooks.transformsDir load as in an
    OpenClaw config."""
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok", "times": -1})
        mapping = {"id": "m", "match": {"path": "m"}, "agentId": "main", "allowUnsafeExternalContent": True,
                   "messageTemplate": "x {{payload.n}}"}
        for allowed, ok in ((["ops"], False), ([], False), (["*"], True), ([" Main "], True), (None, True)):
            hooks = {"mappings": [mapping], "transformsDir": "transforms"}
            if allowed is not None:
                hooks["allowedAgentIds"] = allowed
            g = start(gateway_factory, hooks_config({"p": fake}, hooks=hooks))
            for path, body in (("/hooks/agent", {"message": "hi"}), ("/hooks/m", {"n": 1}),
                               ("/hooks/wake", {"text": "wake", "mode": "next-heartbeat"})):
                r = hook(g, path=path, body=body)
                if ok:
                    assert r.status_code in (200, 202), (allowed, path, r.text)
                else:
                    assert r.status_code == 400, (allowed, path, r.text)
                    assert r.json() == {"ok": False, "error": "agentId is not allowed by hooks.allowedAgentIds"}
            g.stop()


def test_fanout_total_is_bounded(gateway_factory):
    """Every item rendering the whole payload: the rendered messages of one
    request are capped (16 MiB), a 413 with nothing queued."""
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok", "times": -1})
        mappings = [{"id": "big", "match": {"path": "big"}, "forEach": "items",
                     "messageTemplate": "{{payload.blob}} {{items[0]}}"}]
        g = start(gateway_factory, hooks_config({"p": fake}, hooks={"mappings": mappings, "maxBodyBytes": 1048576}))
        r = hook(g, path="/hooks/big", body={"blob": "x" * 200_000, "items": list(range(100))})
        assert r.status_code == 413 and "exceed 16777216 bytes" in r.json()["error"], r.text
        r = hook(g, path="/hooks/big", body={"blob": "x" * 200_000, "items": list(range(10))})
        assert r.status_code == 202 and r.json()["dispatched"] == 10, r.text
        assert len(fake.wait_requests(10)) == 10
        assert len(fake.requests) == 10
