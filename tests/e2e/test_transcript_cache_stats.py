"""The transcript cache's counters (agents.defaults.transcriptCacheBytes)
in /health/detail (agent.transcriptCache) and /metrics
(chela_transcript_cache_*): a second turn of a session finds its history
in memory, so hits grow and the cache holds bytes; both surfaces agree.
"""
import re

from agentlib import chat_ok, health_detail, llm_config, start
from e2elib import http
from fakes.llm import FakeLLM


def metrics(g):
    r = http(g, "GET", "/metrics", token=g.admin_token)
    assert r.status_code == 200, r.text
    out = {}
    for name in ("bytes", "hits_total", "misses_total"):
        m = re.search(rf"^chela_transcript_cache_{name} (\S+)$", r.text, re.M)
        assert m, f"chela_transcript_cache_{name} missing from /metrics"
        out[name] = float(m.group(1))
    return out


def test_transcript_cache_counters(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "one"}, {"text": "two"}, {"text": "three"})
        g = start(gateway_factory, llm_config({"p": fake}))
        before = health_detail(g)["agent"]["transcriptCache"]
        assert set(before) == {"bytes", "hits", "misses"}
        chat_ok(g, "first", "tc-1")
        chat_ok(g, "second", "tc-1")
        chat_ok(g, "third", "tc-1")
        tc = health_detail(g)["agent"]["transcriptCache"]
        assert tc["hits"] >= before["hits"] + 2, tc
        assert tc["bytes"] > 0, tc
        m = metrics(g)
        assert m["hits_total"] == tc["hits"]
        assert m["misses_total"] == tc["misses"]
        assert m["bytes"] == tc["bytes"]
