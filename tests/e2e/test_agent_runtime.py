"""Agent runtime end to end: the gateway binary, its REST routes
(/api/v1/chat, /chat/stream, /runs, /sessions) and the fake upstreams of
fakes/llm.py in each provider's real wire format.

Covers: multi-turn context reaching each provider in its own shape, a
tool-call round trip (single and parallel calls) per provider, cost and
usage from the pricing table, per-session serialisation and cross-session
parallelism, the bounded run queue, model overrides, aliases and the
environment shortcuts, compaction, and the `chela agent` CLI.
"""

import json
import time

import pytest

from agentlib import (MODEL, PROVIDERS, ChatStream, chat, chat_ok, get_run, health_detail, in_thread,
                      llm_config, offered_tools, session, start, tool_calls, tool_results, turns,
                      wire_problems)
from fakes.llm import FakeLLM

SYSTEM = "You are the chela test agent."


# ---------------------------------------------------------------- context


@pytest.mark.parametrize("provider", PROVIDERS)
def test_multi_turn_context_in_provider_format(gateway_factory, provider):
    with FakeLLM(provider, strict=True) as fake:
        fake.push({"text": "Paris is the capital.", "chunks": 3, "usage": {"input": 12, "output": 6}},
                  {"text": "About 2.1 million.", "chunks": 2, "usage": {"input": 30, "output": 5}})
        g = start(gateway_factory, llm_config({"p": (fake, {"key": "sk-ctx"})},
                                              agents={"systemPrompt": SYSTEM}))
        a = chat_ok(g, "What is the capital of France?", "ctx-1")
        assert a["content"] == "Paris is the capital."
        assert a["conversationId"] == "ctx-1" and a["role"] == "assistant" and a["runId"]
        assert a["usage"]["inputTokens"] == 12 and a["usage"]["outputTokens"] == 6
        b = chat_ok(g, "And its population?", "ctx-1")
        assert b["content"] == "About 2.1 million."
        assert b["runId"] != a["runId"]

        reqs = fake.wait_requests(2)
        assert len(reqs) == 2
        for r in reqs:
            assert r.api_key == "sk-ctx"
            assert r.model == MODEL
        second = reqs[1].json
        if provider == "anthropic":
            assert reqs[1].path == "/v1/messages"
            assert reqs[1].headers.get("anthropic-version")
            assert second["stream"] is True
            assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
            # system prompt: top-level field, not a message
            sysp = second["system"]
            assert SYSTEM in (sysp if isinstance(sysp, str) else "".join(b["text"] for b in sysp))
        elif provider == "openai":
            assert reqs[1].path == "/v1/chat/completions"
            assert reqs[1].headers["authorization"] == "Bearer sk-ctx"
            assert second["stream"] is True
            assert second.get("stream_options", {}).get("include_usage") is True
            assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
            assert SYSTEM in second["messages"][0]["content"]
            assert second["messages"][2]["content"] == "Paris is the capital."
        else:
            assert reqs[1].path == f"/v1beta/models/{MODEL}:streamGenerateContent"
            assert reqs[1].query.get("alt") == "sse"
            assert "key" not in reqs[1].query, "the Gemini key must travel in a header, not the URL"
            assert reqs[1].headers["x-goog-api-key"] == "sk-ctx"
            assert [c["role"] for c in second["contents"]] == ["user", "model", "user"]
            assert SYSTEM in "".join(p["text"] for p in second["systemInstruction"]["parts"])
        conv = [t for t in turns(provider, second) if t[0] != "system"]
        assert conv == [("user", "What is the capital of France?"), ("assistant", "Paris is the capital."),
                        ("user", "And its population?")]
        # the first request carried only the first question
        assert [t for t in turns(provider, reqs[0].json) if t[0] != "system"] == [
            ("user", "What is the capital of France?")]

        s = session(g, "ctx-1")
        roles = [m["role"] for m in s["messages"]]
        assert roles == ["user", "assistant", "user", "assistant"], s["messages"]


def test_streaming_chat_events(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "one two three four", "chunks": 4, "chunk_delay": 0.05,
                   "usage": {"input": 7, "output": 4}})
        g = start(gateway_factory, llm_config({"o": fake}))
        st = ChatStream(g, "count", "stream-1")
        try:
            assert st.resp.status_code == 200, st.resp.text
            assert st.resp.headers["content-type"].startswith("text/event-stream")
            evs = st.rest()
        finally:
            st.close()
        types = [e["type"] for e in evs]
        assert types[0] == "start" and types[-1] == "done", types
        assert types.count("delta") >= 2, f"the reply should arrive in several deltas: {types}"
        assert st.text() == "one two three four"
        start_ev, done = evs[0], evs[-1]
        assert start_ev["conversationId"] == "stream-1" and start_ev["runId"] == done["runId"]
        assert done["usage"]["inputTokens"] == 7 and done["usage"]["outputTokens"] == 4
        run = get_run(g, done["runId"])
        assert run["status"] == "ok" and run["result"]["text"] == "one two three four"


def test_workspace_agents_md_is_cut_and_made_text(gateway_factory):
    """The workspace's AGENTS.md follows the configured prompt: its first
    64 KiB, cut between characters, with a stray byte and a NUL as U+FFFD.
    Raw, every provider's JSON refused it and each run failed."""
    head = b"Rules:\xff\x00" + "ü".encode()
    raw = head + "ö".encode() * 40_000  # 80,010 bytes: over the cap, cut inside a character
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok"})
        g = gateway_factory.new(llm_config({"o": fake}, agents={"systemPrompt": SYSTEM}))
        (g.state / "workspace").mkdir(parents=True, exist_ok=True)
        (g.state / "workspace" / "AGENTS.md").write_bytes(raw)
        g.start()
        assert g.admin_token
        assert chat_ok(g, "hi", "md-1")["content"] == "ok"
        system = fake.wait_requests(1)[0].json["messages"][0]
    assert system["role"] == "system"
    text = system["content"]
    assert text.startswith(SYSTEM + "\n\nRules:\ufffd\ufffdü"), text[:80]
    body = text[len(SYSTEM) + 2 + len("Rules:") + 3:]
    assert body == "ö" * ((65536 - 10) // 2), (len(body), body[-4:])  # whole characters only
    assert "only its first 65536 are used" in g.stderr()


def test_oversized_system_prompt_is_refused_at_start(gateway_factory):
    g = gateway_factory.new({"agents": {"defaults": {"systemPrompt": "p" * (900 * 1024 + 1)}}})
    g.spawn()
    assert g.wait(10) == 2
    err = g.stderr()
    assert "agents.defaults.systemPrompt" in err and "at most 921600" in err, err[-2000:]


# ---------------------------------------------------------------- tools


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_call_round_trip(gateway_factory, provider):
    with FakeLLM(provider, strict=True) as fake:
        fake.push({"tool_calls": [{"name": "current_time", "arguments": {"timezone": "Asia/Seoul"}}],
                   "chunks": 3},
                  {"text": "It is noon in Seoul.", "chunks": 2})
        g = start(gateway_factory, llm_config({"p": fake}))
        a = chat_ok(g, "What time is it in Seoul?", "tools-1")
        assert a["content"].strip() == "It is noon in Seoul."

        reqs = fake.wait_requests(2)
        assert len(reqs) == 2
        assert "current_time" in offered_tools(provider, reqs[0].json)
        second = reqs[1].json
        calls = tool_calls(provider, second)
        assert len(calls) == 1 and calls[0]["name"] == "current_time"
        assert calls[0]["args"] == {"timezone": "Asia/Seoul"}
        results = tool_results(provider, second)
        assert len(results) == 1, second
        res = results[0]
        assert not res["is_error"], res
        years = {time.strftime("%Y", time.gmtime(time.time() + d)) for d in (-86400, 0, 86400)}
        assert any(y in res["content"] for y in years), f"no current date in the tool result: {res}"
        assert "Asia/Seoul" in res["content"] or "+09:00" in res["content"], res
        if provider == "anthropic":
            msgs = second["messages"]
            assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
            tu = [b for b in msgs[1]["content"] if b["type"] == "tool_use"][0]
            tr = [b for b in msgs[2]["content"] if b["type"] == "tool_result"][0]
            assert tr["tool_use_id"] == tu["id"] == "toolu_fake_1_0"
        elif provider == "openai":
            msgs = second["messages"]
            asst = [m for m in msgs if m["role"] == "assistant"][-1]
            tool = [m for m in msgs if m["role"] == "tool"]
            assert len(tool) == 1
            assert asst["tool_calls"][0]["id"] == tool[0]["tool_call_id"] == "call_fake_1_0"
            assert asst["tool_calls"][0]["type"] == "function"
            assert msgs.index(tool[0]) == msgs.index(asst) + 1, "the tool message must follow the assistant call"
        else:
            contents = second["contents"]
            assert [c["role"] for c in contents][:2] == ["user", "model"]
            fc = [p for p in contents[1]["parts"] if "functionCall" in p]
            fr = [p for c in contents[2:] for p in c["parts"] if "functionResponse" in p]
            assert fc and fr
            assert fr[0]["functionResponse"]["name"] == "current_time"
            assert contents[2]["role"] in ("user", "function")

        s = session(g, "tools-1")
        assert [m["role"] for m in s["messages"]][0] == "user"
        run = get_run(g, a["runId"])
        assert run["status"] == "ok"
        h = health_detail(g)
        assert h["agent"]["toolCalls"] >= 1


# ---------------------------------------------------------------- cost


PRICING = {"input": 3.0, "output": 15.0, "cacheRead": 0.3, "cacheWrite": 3.75}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cost_matches_pricing_table(gateway_factory, provider):
    # Anthropic reports cache writes; OpenAI and Gemini have none (the fake
    # counts them as plain input), so they are left out for those two.
    cw = 400 if provider == "anthropic" else 0
    usage = {"input": 1000, "output": 500, "cache_read": 2000, "cache_write": cw}
    expect_one = (1000 * PRICING["input"] + 500 * PRICING["output"] + 2000 * PRICING["cacheRead"]
                  + cw * PRICING["cacheWrite"]) / 1e6
    with FakeLLM(provider) as fake:
        fake.push({"text": "a", "usage": usage}, {"text": "b", "usage": usage},
                  # a run with a tool round: two LLM calls, both billed
                  {"tool_calls": [{"name": "current_time", "arguments": {}}], "usage": usage},
                  {"text": "c", "usage": usage})
        g = start(gateway_factory, llm_config({"p": (fake, {"pricing": PRICING})}))
        before = health_detail(g)["usage"]
        a = chat_ok(g, "one", "cost-1")
        assert a["usage"] == {"inputTokens": 1000, "outputTokens": 500, "cacheReadTokens": 2000,
                              "cacheWriteTokens": cw}
        assert a.get("costUsd") == pytest.approx(expect_one, rel=1e-9, abs=1e-12)
        run = get_run(g, a["runId"])
        assert run["costUsd"] == pytest.approx(expect_one, rel=1e-9, abs=1e-12)
        assert run["usage"]["inputTokens"] == 1000 and run["usage"]["cacheReadTokens"] == 2000

        chat_ok(g, "two", "cost-1")
        c = chat_ok(g, "three", "cost-1")
        run_c = get_run(g, c["runId"])
        assert run_c["costUsd"] == pytest.approx(2 * expect_one, rel=1e-9, abs=1e-12), run_c
        assert run_c["usage"]["outputTokens"] == 1000

        s = session(g, "cost-1")
        assert s["inputTokens"] == 4000 and s["outputTokens"] == 2000
        assert s["cacheReadTokens"] == 8000 and s["cacheWriteTokens"] == 4 * cw
        assert s["totalTokens"] == 4000 + 2000 + 8000 + 4 * cw
        assert s["estimatedCostUsd"] == pytest.approx(4 * expect_one, rel=1e-9, abs=1e-12)

        after = health_detail(g)["usage"]
        assert after["inputTokens"] - before["inputTokens"] == 4000
        assert after["outputTokens"] - before["outputTokens"] == 2000
        assert after["estimatedCostUsd"] - before["estimatedCostUsd"] == pytest.approx(4 * expect_one, rel=1e-6)


def test_session_list_and_cli_show_cost(gateway_factory):
    with FakeLLM("anthropic") as fake:
        fake.push({"text": "x", "usage": {"input": 1_000_000, "output": 100_000}})
        g = start(gateway_factory, llm_config({"p": (fake, {"pricing": PRICING})}))
        chat_ok(g, "bill me", "cost-list")
        p = g.cli("sessions", "list", "--json")
        assert p.returncode == 0, p.stderr
        doc = json.loads(p.stdout)
        rows = doc if isinstance(doc, list) else doc.get("sessions", [])
        row = [r for r in rows if r["key"] == "agent:main:cost-list"]
        assert row, doc
        assert row[0]["inputTokens"] == 1_000_000 and row[0]["outputTokens"] == 100_000
        assert row[0]["estimatedCostUsd"] == pytest.approx(3.0 + 1.5)
        for k in ("model", "totalTokens", "contextTokens", "updatedAt"):
            assert k in row[0], row[0]


# ---------------------------------------------------------------- scheduling


def _spans(reqs, delay):
    """(arrival, arrival + delay) of each upstream request."""
    return sorted((r.time, r.time + delay) for r in reqs)


def test_runs_of_one_session_never_overlap(gateway_factory):
    delay = 0.6
    with FakeLLM("anthropic", default={"text": "done", "first_byte_delay": delay}) as fake:
        g = start(gateway_factory, llm_config({"p": fake}))
        t1, b1 = in_thread(chat, g, "first", "serial-1")
        time.sleep(0.05)
        t2, b2 = in_thread(chat, g, "second", "serial-1")
        for t in (t1, t2):
            t.join(15)
        for b in (b1, b2):
            assert "r" in b, b.get("exc")
            assert b["r"].status_code == 200, b["r"].text
        reqs = fake.wait_requests(2)
        assert len(reqs) == 2
        spans = _spans(reqs, delay)
        assert spans[1][0] >= spans[0][1] - 0.02, f"two runs of one session overlapped at the upstream: {spans}"
        # the second run saw the first exchange: serialised, not just delayed
        later = max(reqs, key=lambda r: r.time)
        texts = [t for r, t in turns("anthropic", later.json)]
        assert "done" in texts and len([r for r, _ in turns("anthropic", later.json) if r == "user"]) == 2


def test_runs_of_different_sessions_run_in_parallel(gateway_factory):
    delay = 1.0
    n = 4
    with FakeLLM("openai", default={"text": "par", "first_byte_delay": delay}) as fake:
        g = start(gateway_factory, llm_config({"p": fake}, agents={"maxConcurrent": 8}))
        t0 = time.monotonic()
        threads = [in_thread(chat, g, f"hi {i}", f"par-{i}") for i in range(n)]
        for t, _ in threads:
            t.join(15)
        elapsed = time.monotonic() - t0
        for _, b in threads:
            assert "r" in b and b["r"].status_code == 200, b
        reqs = fake.wait_requests(n)
        arrivals = sorted(r.time for r in reqs)
        assert arrivals[-1] - arrivals[0] < delay * 0.5, f"sessions did not run in parallel: {arrivals}"
        assert elapsed < delay * 2.5, f"{n} sessions took {elapsed:.2f}s with a {delay}s upstream"


def test_more_runs_than_eight_reach_one_plain_http_upstream_at_once(gateway_factory):
    """A streamed call holds its HTTP/1.1 connection for the whole reply: by
    default every run allowed at once (maxConcurrent) gets its own connection
    to a local server, rather than waiting inside the HTTP client with its
    first-byte clock running."""
    delay = 1.0
    n = 12
    with FakeLLM("openai", default={"text": "wide", "first_byte_delay": delay}) as fake:
        g = start(gateway_factory, llm_config({"p": fake}, agents={"maxConcurrent": 16}))
        threads = [in_thread(chat, g, f"w {i}", f"wide-{i}") for i in range(n)]
        for t, _ in threads:
            t.join(20)
        for _, b in threads:
            assert "r" in b and b["r"].status_code == 200, b
        arrivals = sorted(r.time for r in fake.wait_requests(n))
        assert arrivals[-1] - arrivals[0] < delay * 0.5, f"calls queued behind a connection limit: {arrivals}"
        assert len({tuple(r.peer) for r in fake.requests}) >= n


def test_outbound_connections_per_host_are_capped(gateway_factory):
    delay = 0.5
    with FakeLLM("openai", default={"text": "cap", "first_byte_delay": delay}) as fake:
        cfg = llm_config({"p": fake}, agents={"maxConcurrent": 8})
        cfg["gateway"] = {"outbound": {"maxConnectionsPerHost": 2}}
        g = start(gateway_factory, cfg)
        threads = [in_thread(chat, g, f"c {i}", f"cap-{i}") for i in range(4)]
        for t, _ in threads:
            t.join(15)
        for _, b in threads:
            assert "r" in b and b["r"].status_code == 200, b
        spans = _spans(fake.wait_requests(4), delay)
        for s, _ in spans:
            overlapping = sum(1 for (s2, e2) in spans if s2 <= s + 0.01 and e2 > s + 0.02)
            assert overlapping <= 2, f"more than 2 connections to one host at once: {spans}"
        assert spans[-1][0] - spans[0][0] >= delay * 0.9, f"the cap did not hold calls back: {spans}"


def test_max_concurrent_limits_runs(gateway_factory):
    delay = 0.5
    with FakeLLM("openai", default={"text": "c", "first_byte_delay": delay}) as fake:
        g = start(gateway_factory, llm_config({"p": fake}, agents={"maxConcurrent": 2}))
        threads = [in_thread(chat, g, f"m {i}", f"mc-{i}") for i in range(4)]
        for t, _ in threads:
            t.join(15)
        for _, b in threads:
            assert "r" in b and b["r"].status_code == 200, b
        spans = _spans(fake.wait_requests(4), delay)
        for i, (s, _) in enumerate(spans):
            overlapping = sum(1 for (s2, e2) in spans if s2 <= s + 0.01 and e2 > s + 0.02)
            assert overlapping <= 2, f"more than maxConcurrent=2 upstream calls at once: {spans}"


def test_full_queue_is_a_clear_error(gateway_factory):
    with FakeLLM("anthropic", default={"text": "slow ok", "first_byte_delay": 1.5}) as fake:
        g = start(gateway_factory, llm_config({"p": fake}, agents={"queueSize": 1, "maxConcurrent": 1}))
        t1, b1 = in_thread(chat, g, "running", "q-a")
        fake.wait_requests(1, timeout=5)               # run 1 is running
        t2, b2 = in_thread(chat, g, "waiting", "q-b")   # run 2 fills the queue
        deadline = time.monotonic() + 5
        while health_detail(g)["agent"]["queued"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert health_detail(g)["agent"]["queued"] == 1
        r3 = chat(g, "refused", "q-c", timeout=5)
        assert r3.status_code == 503, r3.text
        j = r3.json()
        assert j["error"] == "queue_full", j
        assert "queue" in j["message"] and "full" in j["message"], j
        assert r3.headers.get("retry-after"), "a full queue should say when to retry"
        st = ChatStream(g, "refused stream", "q-d", timeout=5)  # a stream gets the same answer
        try:
            assert st.resp.status_code == 503, st.resp.text
        finally:
            st.close()
        for t in (t1, t2):
            t.join(15)
        assert b1["r"].status_code == 200 and b2["r"].status_code == 200, "an accepted run was dropped"
        assert b2["r"].json()["content"] == "slow ok"
        # the refused message never reached the model nor a transcript
        users = [t for r in fake.requests for role, t in turns("anthropic", r.json) if role == "user"]
        assert sorted(users) == ["running", "waiting"], users
        assert len(fake.requests) == 2


# ---------------------------------------------------------------- CLI


def test_cli_agent(gateway_factory):
    with FakeLLM("anthropic") as fake:
        fake.push({"text": "Hello from the CLI path.", "chunks": 3}, {"text": "second"})
        g = start(gateway_factory, llm_config({"p": fake}))
        p = g.cli("agent", "-m", "hi there", "--session", "cli-1")
        assert p.returncode == 0, p.stderr
        assert "Hello from the CLI path." in p.stdout
        p = g.cli("agent", "-m", "again", "--session", "cli-1", "--model", f"p/{MODEL}", "--json")
        assert p.returncode == 0, p.stderr
        doc = json.loads(p.stdout)
        assert "second" in json.dumps(doc)
        # both turns landed in one session, the second saw the first
        conv = [t for t in turns("anthropic", fake.last.json)]
        assert conv[0] == ("user", "hi there") and conv[-1] == ("user", "again")
        fake.push({"status": 401})
        p = g.cli("agent", "-m", "fail please", "--session", "cli-1")
        assert p.returncode != 0
        assert "auth" in p.stderr.lower(), p.stderr


# ---------------------------------------------------------------- models


def test_model_override_alias_and_unknown_model(gateway_factory):
    with FakeLLM("anthropic", default={"text": "from a"}) as fa, FakeLLM("gemini", default={"text": "from b"}) as fb:
        cfg = llm_config({"a": fa, "b": fb})
        cfg["agents"]["defaults"]["models"] = {f"b/{MODEL}": {"alias": "fast"}}
        g = start(gateway_factory, cfg)
        assert chat_ok(g, "default", "m-1")["content"] == "from a"
        assert chat_ok(g, "explicit", "m-2", model=f"b/{MODEL}")["content"] == "from b"
        r = chat_ok(g, "alias", "m-3", model="fast")
        assert r["content"] == "from b" and r.get("provider") == "b", r
        bad = chat(g, "typo", "m-4", model="nope/none")
        assert bad.status_code == 400, bad.text
        assert bad.json()["error"] == "invalid_model"
        assert len(fa.requests) == 1 and len(fb.requests) == 2
        # request parameters reach the upstream in its own spelling
        chat_ok(g, "params", "m-5", model="fast", maxTokens=77, temperature=0.25, systemPrompt="Be brief.")
        body = fb.last.json
        assert body["generationConfig"]["maxOutputTokens"] == 77
        assert body["generationConfig"]["temperature"] == pytest.approx(0.25)
        assert "Be brief." in body["systemInstruction"]["parts"][0]["text"]


def test_environment_shortcuts_create_the_provider(gateway_factory):
    with FakeLLM("openai", api_keys={"sk-from-env"}) as fake:
        fake.push({"text": "env provider works"})
        g = start(gateway_factory, None, env={"OPENAI_API_KEY": "sk-from-env", "OPENAI_BASE_URL": fake.base_url,
                                              "LLM_PROVIDER": "openai", "LLM_MODEL": MODEL, "MAX_TOKENS": "321"})
        a = chat_ok(g, "hi", "env-1")
        assert a["content"] == "env provider works"
        assert fake.last.api_key == "sk-from-env"
        assert fake.last.json["model"] == MODEL
        assert fake.last.json["max_tokens"] == 321


@pytest.mark.parametrize("provider", PROVIDERS)
def test_parallel_tool_calls_in_one_reply(gateway_factory, provider):
    with FakeLLM(provider, strict=True) as fake:
        fake.push({"tool_calls": [{"name": "current_time", "arguments": {"timezone": "Asia/Seoul"}},
                                  {"name": "current_time", "arguments": {"timezone": "Europe/Paris"}}],
                   "text": "Checking both.", "chunks": 2},
                  {"text": "Seoul is 8 hours ahead."})
        g = start(gateway_factory, llm_config({"p": fake}))
        a = chat_ok(g, "Time in Seoul and Paris?", "par-tools")
        assert "Seoul is 8 hours ahead." in a["content"]
        second = fake.wait_requests(2)[1].json
        calls = tool_calls(provider, second)
        res = tool_results(provider, second)
        assert [c["args"]["timezone"] for c in calls] == ["Asia/Seoul", "Europe/Paris"]
        assert len(res) == 2 and not any(r["is_error"] for r in res), res
        assert "Asia/Seoul" in res[0]["content"] and "Europe/Paris" in res[1]["content"], res
        if provider != "gemini":
            assert [r["id"] for r in res] == [c["id"] for c in calls]
        assert wire_problems(provider, second) == []


def test_compaction_summarises_older_turns(gateway_factory):
    filler = "lorem ipsum dolor sit amet " * 150   # about 4 KB, about 1,000 tokens
    with FakeLLM("anthropic") as fake:
        fake.default = {"text": "noted"}
        cfg = llm_config({"p": (fake, {"models": [{"id": MODEL, "contextWindow": 9000, "maxTokens": 1000}]})},
                         agents={"compaction": {"ratio": 0.5, "keepMessages": 2, "reserveTokensFloor": 1000}})
        g = start(gateway_factory, cfg)
        for i in range(8):
            chat_ok(g, f"fact {i}: {filler}", "compact-1", maxTokens=1000)
        summaries = [r for r in fake.requests if "Summarise the conversation" in json.dumps(r.json)]
        assert summaries, "no compaction call reached the model"
        s = session(g, "compact-1")
        assert s.get("compactionCount", 0) >= 1, s
        last = fake.requests[-1].json
        texts = [t for _, t in turns("anthropic", last)]
        assert any(t.startswith("Summary of the earlier part") for t in texts), texts[:2]
        assert len(json.dumps(last)) < 9000 * 4, "the history sent was not cut down"
        assert wire_problems("anthropic", last) == []
