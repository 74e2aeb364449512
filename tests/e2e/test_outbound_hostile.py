"""Outbound HTTP against hostile peers: every way chela calls out (the
durable outbox's webhooks and hook callbacks, LLM providers in pass-through
and in agent runs, the http_request and web_fetch tools, /v1 image URL
fetches) pointed at fakes/hostile.py, a server that misbehaves at the byte
level: silence, stalls, trickles, endless bodies, huge heads, a 1 GB
Content-Length, a gzip bomb, redirect loops and redirects to the cloud
metadata address or to a port nobody allowed, resets, broken chunking,
endless 100 Continue, banners and TLS bytes on a cleartext URL, SSE
streams of keep-alives only or of one 100 MB line, and a whole answer
followed at once by a reset.

For each mode and surface: the call ends within its configured timeout
(plus slack), the error is classified by the rules (outbox: 2xx done, 4xx
other than 408/429 permanent, the rest retried; providers: the class and
status the client is documented to get; an error status counts even when
its body breaks off, and a peer's doing is never reported as our own
memory or the caller's input), the gateway's RSS stays bounded,
no redirect reaches a place the allowlist or the SSRF rules forbid (a
canary listener must never see a connection), and /health answers after.

The outbox's attempts are cut at api.outbox.timeoutMs, set short here,
so its stalling modes all run at once in one test of a few seconds;
everything else uses small configured timeouts too.
"""

import json
import threading
import time

import pytest

from agentlib import MODEL, chat, tool_results
from e2elib import fd_targets, http, wait_for
from fakes.hostile import HostileServer
from fakes.llm import FakeLLM
from hooklib import hook as post_hook
from hooklib import hooks_config

RSS_SLACK_KB = 64 * 1024
# What a hostile peer must never be reported as: our own memory running
# out, a bare poll failure instead of what the peer sent, or the caller's
# invalid input.
MISLEADING = ("out of memory", "select/poll", "invalid input")
OUTBOX_ATTEMPT_S = 4  # api.outbox.timeoutMs below
OUTBOX_CFG = {"connectTimeoutMs": 1000, "timeoutMs": OUTBOX_ATTEMPT_S * 1000}
# Provider timeouts: each attempt is cut by these; the whole call, retries
# included, by CALL_MS.
# idleMs well under the peer's one byte a second, so a trickle is cut by it.
TIMEOUTS = {"connectMs": 1000, "firstByteMs": 1500, "idleMs": 600, "callMs": 3000}
CALL_S = TIMEOUTS["callMs"] / 1000
SLACK_S = 2.0
# Every stream, held open as long as the peer wants it, goes to one
# host:port: lift the per-host cap so no call waits behind another.
OUTBOUND = {"maxConnectionsPerHost": 256, "maxConnections": 512}


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def under_asan(pid):
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def conns_to(pid, port):
    """TCP connections process pid holds to 127.0.0.1:port (/proc/net/tcp)."""
    inodes = {t[8:-1] for t in fd_targets(pid).values() if t.startswith("socket:[")}
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[2].split(":")[1], 16) == port and fields[9] in inodes:
                n += 1
    return n


def assert_healthy(g, rss, srv):
    """Alive, serving /health, RSS within RSS_SLACK_KB of rss, and no
    connection to the hostile server left open on either side: nothing
    hangs on after its deadline, nothing is kept for reuse."""
    assert g.alive(), f"gateway died:\n{g.stderr()[-3000:]}"
    assert http(g, "GET", "/health").status_code == 200
    grown = rss_kb(g.pid) - rss
    # ASan keeps freed blocks in its quarantine (256 MB by default) instead
    # of handing them back: the bound then only catches what exceeds it.
    slack = RSS_SLACK_KB + (256 * 1024 if under_asan(g.pid) else 0)
    assert grown < slack, f"RSS grew by {grown} kB"
    assert wait_for(lambda: conns_to(g.pid, srv.port) == 0, 5), conns_to(g.pid, srv.port)
    assert wait_for(lambda: all(c.peer_closed or c.ended for c in srv.conns()), 5), \
        [c for c in srv.conns() if not (c.peer_closed or c.ended)]


def parallel(fns):
    """Run the callables at once; returns their results (or exceptions) in order."""
    out = [None] * len(fns)

    def run(i, fn):
        try:
            out[i] = fn()
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            out[i] = e

    ts = [threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate(fns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return out


def timed(fn):
    def wrapped():
        t0 = time.monotonic()
        r = fn()
        return r, time.monotonic() - t0
    return wrapped


@pytest.fixture
def peers():
    """The hostile server and a canary it may redirect to: a listener on a
    port no allowlist covers, which nothing may ever reach."""
    with HostileServer(max_conn_s=60) as canary, HostileServer(max_conn_s=60) as srv:
        srv.canary_url = canary.url("ok", "/stolen")
        yield srv, canary


def mode_of(key):
    """A table key is a mode, "~n" telling repeats apart ("reply_reset:401~2")."""
    return key.split("~")[0]


def pid_of(key):
    """A provider id for a key ("head_stall:500" -> "m_head_stall_500")."""
    return "m_" + key.replace(":", "_").replace("~", "_")


# ---------------------------------------------------------------- the outbox

# mode -> (final status, how lastError starts, a word in it, slow: ends by the attempt deadline)
OUTBOX = {
    "ok": ("done", None, None, False),
    "ok:404": ("dead", "permanent: HTTP 404", None, False),
    "ok:408": ("dead", "gave up after the last attempt: HTTP 408", None, False),
    "ok:429": ("dead", "gave up after the last attempt: HTTP 429", None, False),
    "ok:503": ("dead", "gave up after the last attempt: HTTP 503", None, False),
    "silent": ("dead", "gave up after the last attempt: first-byte timeout", None, True),
    "head_stall:200": ("done", None, None, True),
    "head_stall:500": ("dead", "gave up after the last attempt: HTTP 500", None, True),
    "trickle_head": ("dead", "gave up after the last attempt: first-byte timeout", None, True),
    "trickle_body:200": ("done", None, None, True),
    "sse_keepalive": ("done", None, None, True),
    "endless": ("done", None, None, False),
    "endless_chunked": ("done", None, None, False),
    "sse_huge_line": ("done", None, None, False),
    "gzip_bomb": ("done", None, None, False),
    "reset_mid_body": ("done", None, None, False),
    # A whole answer, then a reset: the answer counts (three of each, the
    # reset racing the read).
    "reply_reset:401": ("dead", "permanent: HTTP 401", None, False),
    "reply_reset:401~2": ("dead", "permanent: HTTP 401", None, False),
    "reply_reset:401~3": ("dead", "permanent: HTTP 401", None, False),
    "reply_reset:200": ("done", None, None, False),
    "reply_reset:200~2": ("done", None, None, False),
    "bad_chunked": ("done", None, None, False),
    "huge_head": ("dead", "gave up after the last attempt: ", "head", False),
    "long_header_line": ("dead", "gave up after the last attempt: ", "head", False),
    # A receiver's answer counts even when its declared body is refused
    # (1 GB Content-Length; the bomb's 255 KB are over the 64 KiB cap).
    "big_cl": ("done", None, None, False),
    "big_cl:503": ("dead", "gave up after the last attempt: HTTP 503", None, False),
    "big_cl:400": ("dead", "permanent: HTTP 400", None, False),
    "continue_forever": ("dead", "gave up after the last attempt: ", "head", False),
    "banner": ("dead", "gave up after the last attempt: ", "HTTP/0.9", False),
    "tls_garbage": ("dead", "gave up after the last attempt: ", "HTTP/0.9", False),
    "redirect_loop": ("dead", "permanent: HTTP 302", None, False),
    "redirect_meta": ("dead", "permanent: HTTP 302", None, False),
    "redirect_canary": ("dead", "permanent: HTTP 302", None, False),
}

# Hook callbacks take the same engine; a few modes show they are wired
# the same way (kind "callback", the hooks' retry settings).
CALLBACKS = {
    "silent": OUTBOX["silent"],
    "head_stall:503": ("dead", "gave up after the last attempt: HTTP 503", None, True),
    "huge_head": OUTBOX["huge_head"],
    "big_cl": OUTBOX["big_cl"],
    "redirect_canary": OUTBOX["redirect_canary"],
    "ok:422": ("dead", "permanent: HTTP 422", None, False),
    "ok": OUTBOX["ok"],
}


def _deliveries(g):
    r = http(g, "GET", "/api/v1/deliveries", token=g.admin_token, params={"limit": 100})
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


def _settled(g, n):
    rows = _deliveries(g)
    return rows if len(rows) >= n and all(d["status"] in ("done", "dead") for d in rows) else None


def _mode_of(url):
    return url.split("/hook/", 1)[1] if "/hook/" in url else url.split("/")[3]


def not_misleading(what, text):
    for w in MISLEADING:
        assert w not in (text or "").lower(), (what, text)


def _check_row(mode, d, spec):
    status, prefix, word, _ = spec
    not_misleading(mode, d["lastError"])
    assert d["status"] == status, (mode, d)
    assert d["attempts"] == 1, (mode, d)
    if prefix is None:
        assert d["lastError"] is None, (mode, d)
    else:
        assert d["lastError"].startswith(prefix), (mode, d)
    if word:
        assert word.lower() in d["lastError"].lower(), (mode, d)


def test_outbox_webhooks_and_callbacks_against_hostile_peers(gateway_factory, peers):
    srv, canary = peers
    webhooks = [{"url": srv.url(mode_of(k), "/hook/" + k), "events": ["message.sent"],
                 "retry": {"maxAttempts": 1, "backoffMs": 10}} for k in OUTBOX]
    gw = gateway_factory({"api": {"webhooks": {"outgoing": webhooks}, "outbox": OUTBOX_CFG},
                          "gateway": {"outbound": OUTBOUND}})
    with FakeLLM("anthropic", default={"text": '{"answer": 42}'}) as fake:
        cfg = hooks_config({"p": fake}, hooks={"retry": {"maxAttempts": 1, "backoffMs": 10}})
        cfg["gateway"] = {"outbound": OUTBOUND}
        cfg["api"] = {"outbox": OUTBOX_CFG}
        gh = gateway_factory(cfg)
        rss = {g.pid: rss_kb(g.pid) for g in (gw, gh)}
        t0 = time.monotonic()
        r = http(gw, "POST", "/api/v1/send", token=gw.admin_token,
                 json={"channel": "webhook", "chatId": "1", "message": "to every hostile peer"})
        assert r.status_code == 200, r.text
        runs = {}
        for m in CALLBACKS:
            r = post_hook(gh, body={"message": "analyse", "callback": {"url": srv.url(m, "/cb"), "mode": "raw"}})
            assert r.status_code == 202, r.text
            runs[r.json()["runId"]] = m

        # The fast modes end at once, whatever the slow ones do.
        fast = [m for m, s in OUTBOX.items() if not s[3]]
        assert wait_for(lambda: sum(d["status"] in ("done", "dead") for d in _deliveries(gw)) >= len(fast), 10), \
            _deliveries(gw)
        rows = wait_for(lambda: _settled(gw, len(OUTBOX)), OUTBOX_ATTEMPT_S + 15, interval=0.5)
        took = time.monotonic() - t0
        assert rows, f"deliveries still in flight after {took:.0f}s: {_deliveries(gw)}"
        assert took < OUTBOX_ATTEMPT_S + 10, f"the outbox took {took:.1f}s"
        by_mode = {_mode_of(d["url"]): d for d in rows}
        assert set(by_mode) == set(OUTBOX), by_mode.keys()
        for m, spec in OUTBOX.items():
            _check_row(m, by_mode[m], spec)

        cb = wait_for(lambda: _settled(gh, len(CALLBACKS)), 15, interval=0.5)
        assert cb, _deliveries(gh)
        for d in cb:
            m = runs[d["runId"]]
            assert d["kind"] == "callback", d
            _check_row(m, d, CALLBACKS[m])

    # Nothing followed a redirect; every stalled connection was closed by
    # the gateway at its deadline, not left open.
    assert canary.conns() == []
    assert len(srv.conns("redirect_loop")) == 1 and len(srv.conns("redirect_meta")) == 1
    for m in ("silent", "head_stall", "trickle_head", "trickle_body", "sse_keepalive"):
        assert srv.wait_peer_closed(m, timeout=5), srv.conns(m)
        for c in srv.conns(m):
            assert c.open_s < OUTBOX_ATTEMPT_S + 5, c
    for g in (gw, gh):
        assert_healthy(g, rss[g.pid], srv)


# ---------------------------------------------------------------- LLM providers

# mode -> (error class, HTTP status of a /v1 error, slow: ends by a deadline)
PROVIDER = {
    "silent": ("timeout", 504, True),
    "head_stall": ("timeout", 504, True),
    "trickle_head": ("timeout", 504, True),
    "trickle_body": ("timeout", 504, True),
    "sse_keepalive": ("timeout", 504, True),
    "big_cl": ("unknown", 502, False),
    # An error status whose body breaks off: the status decides.
    "big_cl:429": ("rate_limit", 429, False),
    "head_stall:429": ("rate_limit", 429, True),
    "trickle_body:401": ("auth", 502, True),
    "reset_mid_body": ("unknown", 502, False),
    "endless": ("unknown", 502, False),
    "endless_chunked": ("unknown", 502, False),
    "huge_head": ("unknown", 502, False),
    "long_header_line": ("unknown", 502, False),
    "gzip_bomb": ("unknown", 502, False),
    "redirect_loop": ("unknown", 502, False),
    "redirect_meta": ("unknown", 502, False),
    "redirect_canary": ("unknown", 502, False),
    "bad_chunked": ("unknown", 502, False),
    "continue_forever": ("unknown", 502, False),
    "banner": ("unknown", 502, False),
    "tls_garbage": ("unknown", 502, False),
    "sse_huge_line": ("unknown", 502, False),
    "ok:500": ("unknown", 502, False),
    "ok:429": ("rate_limit", 429, False),
    # A whole answer, then a reset racing its read: the answer counts.
    "reply_reset:401": ("auth", 502, False),
    "reply_reset:401~2": ("auth", 502, False),
    "reply_reset:401~3": ("auth", 502, False),
    "reply_reset:400": ("unknown", 502, False),
    "reply_reset:400~2": ("unknown", 502, False),
}


def provider_config(srv, api, modes):
    provs = {pid_of(k): {"api": api, "baseUrl": srv.url(mode_of(k), "/v1" if api == "openai-completions" else ""),
                         "apiKey": "sk-hostile", "models": [{"id": MODEL}]} for k in modes}
    return {
        "models": {"providers": provs, "timeouts": TIMEOUTS,
                   "retry": {"count": 1, "baseDelayMs": 10, "maxDelayMs": 20},
                   "circuitBreaker": {"failureThreshold": 1000}},
        "agents": {"defaults": {"model": {"primary": f"{pid_of(modes[0])}/{MODEL}"}}},
        "gateway": {"outbound": OUTBOUND, "http": {"endpoints": {"chatCompletions": {"enabled": True}}}},
    }


def _oa_call(g, mode, stream):
    """One /v1 call, read to its end: (status, the error {message, type, code})."""
    body = {"model": f"{pid_of(mode)}/{MODEL}", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    r = http(g, "POST", "/v1/chat/completions", token=g.admin_token, json=body, timeout=CALL_S + 10,
             stream=stream)
    try:
        if r.status_code != 200:
            return r.status_code, r.json()["error"]
        assert stream, (mode, r.text)
        events = [json.loads(line[6:]) for line in r.iter_lines(decode_unicode=True)
                  if line.startswith("data: ") and line != "data: [DONE]"]
        errs = [e["error"] for e in events if "error" in e]
        assert errs, (mode, events)
        return 200, errs[-1]
    finally:
        r.close()


def test_provider_pass_through_against_hostile_peers(gateway_factory, peers):
    srv, canary = peers
    modes = list(PROVIDER)
    g = gateway_factory(provider_config(srv, "openai-completions", modes))
    rss = rss_kb(g.pid)
    calls = [(m, s) for m in modes for s in (False, True)]
    res = parallel([timed(lambda m=m, s=s: _oa_call(g, m, s)) for m, s in calls])
    for (m, stream), out in zip(calls, res):
        assert not isinstance(out, BaseException), (m, stream, out)
        (got, err), took = out
        cls, status, _ = PROVIDER[m]
        assert took < CALL_S + SLACK_S, f"{m} stream={stream}: {took:.1f}s"
        assert got in (status, 200), (m, stream, got, err)
        assert err["code"] == cls, (m, stream, err)
        assert err["message"] and err["type"], (m, stream, err)
        not_misleading(m, err["message"])
    assert canary.conns() == []
    assert_healthy(g, rss, srv)


# At most 32 providers a config: the modes that matter most for runs.
AGENT_MODES = ("silent", "head_stall", "trickle_body", "sse_keepalive", "big_cl", "head_stall:429", "trickle_body:401",
               "reset_mid_body", "endless", "huge_head", "long_header_line", "redirect_canary", "bad_chunked",
               "banner", "sse_huge_line", "reply_reset:401", "reply_reset:401~2", "ok:500")


def test_agent_runs_against_hostile_providers(gateway_factory, peers):
    """An agent run whose provider is the hostile peer (the Anthropic and
    Gemini wire formats this time): a failed run with the right class, in
    the REST chat's error shape."""
    srv, canary = peers
    modes = list(AGENT_MODES)
    cfg = provider_config(srv, "anthropic-messages", modes)
    gem = ("sse_keepalive", "sse_huge_line", "silent", "bad_chunked")
    for m in gem:
        cfg["models"]["providers"]["g" + pid_of(m)] = {
            "api": "google-generative-ai", "baseUrl": srv.url(m), "apiKey": "k", "models": [{"id": MODEL}]}
    g = gateway_factory(cfg)
    rss = rss_kb(g.pid)
    refs = [(m, f"{pid_of(m)}/{MODEL}") for m in modes] + [(m, f"g{pid_of(m)}/{MODEL}") for m in gem]
    res = parallel([timed(lambda ref=ref, i=i: chat(g, "hi", f"hostile-{i}", model=ref, timeout=CALL_S + 10))
                    for i, (_, ref) in enumerate(refs)])
    for (m, ref), out in zip(refs, res):
        assert not isinstance(out, BaseException), (ref, out)
        r, took = out
        cls, status, _ = PROVIDER[m]
        assert took < CALL_S + SLACK_S, f"{ref}: {took:.1f}s"
        assert r.status_code in (502, 504, 429), (ref, r.status_code, r.text)
        j = r.json()
        assert j["errorClass"] == cls and j["status"] == "error" and j["message"], (ref, j)
        not_misleading(ref, j["message"])
    assert canary.conns() == []
    assert_healthy(g, rss, srv)


# ---------------------------------------------------------------- tools

TOOL_TIMEOUT_MS = 1500
# mode -> words the http_request result shows (all must be there)
HTTP_TOOL = {
    "ok": ["HTTP 200", "ok"],
    "ok:503": ["HTTP 503"],
    "silent": ["timed out", "first-byte"],
    "head_stall": ["timed out"],
    "trickle_head": ["timed out", "first-byte"],
    "trickle_body": ["timed out"],
    "sse_keepalive": ["timed out"],
    "endless": ["HTTP 200", "truncated"],
    "endless_chunked": ["HTTP 200", "truncated"],
    "sse_huge_line": ["HTTP 200", "truncated"],
    "huge_head": ["failed", "head"],
    "long_header_line": ["failed", "too large", "libcurl"],
    "big_cl": ["timed out"],  # the tool reads what it shows and drops the rest: any length is fine
    "gzip_bomb": ["HTTP 200", "encoded with gzip", "not shown"],
    "redirect_loop": ["HTTP 302", "location"],
    "redirect_meta": ["HTTP 302", "169.254.169.254"],
    "redirect_canary": ["HTTP 302", "location"],
    "reset_mid_body": ["failed"],
    "reply_reset:401": ["HTTP 401", "no"],
    "reply_reset:401~2": ["HTTP 401", "no"],
    "reply_reset:401~3": ["HTTP 401", "no"],
    "bad_chunked": ["failed"],
    "continue_forever": ["failed", "head"],
    "banner": ["failed", "i/o error", "HTTP/0.9"],
    "tls_garbage": ["failed", "i/o error", "HTTP/0.9"],
}
# web_fetch: redirects are followed, each hop re-checked.
WEB_FETCH = {
    "silent": ["timed out"],
    "trickle_head": ["timed out"],
    "sse_keepalive": ["timed out"],
    "endless": ["larger than 5 MB"],
    "big_cl": ["larger than 5 MB"],
    "huge_head": ["failed", "head larger than"],
    "long_header_line": ["failed", "libcurl"],
    "gzip_bomb": ["gzip-encoded"],
    "redirect_loop": ["too many redirects"],
    "redirect_meta": ["refused", "169.254.169.254", "link-local"],
    "redirect_canary": ["refused", "loopback"],
    "banner": ["failed"],
    "ok:500": ["HTTP 500"],
}


def test_tools_against_hostile_peers(gateway_factory, peers):
    """http_request and web_fetch, asked for by the (fake) model, against
    each mode: the tool ends within its timeout with a result the model can
    read, the run goes on, and no redirect reaches the canary."""
    srv, canary = peers
    jobs = [("http_request", k, {"url": srv.url(mode_of(k), "/x"), "timeout_ms": TOOL_TIMEOUT_MS})
            for k in HTTP_TOOL] + [("web_fetch", k, {"url": srv.url(mode_of(k), "/page")}) for k in WEB_FETCH]
    with FakeLLM("anthropic") as fake:
        models = []
        for i, (tool, m, args) in enumerate(jobs):
            mid = f"t{i}"
            models.append({"id": mid})
            fake.push({"tool_calls": [{"name": tool, "arguments": args}], "match": {"model": mid}},
                      {"text": "next", "match": {"model": mid}})
        allow = [f"127.0.0.1:{srv.port}"]
        g = gateway_factory({
            "models": {"providers": {"p": {"api": "anthropic-messages", "baseUrl": fake.base_url, "apiKey": "k",
                                           "models": models}}},
            "agents": {"defaults": {"model": {"primary": "p/t0"}}},
            "tools": {"http": {"allowHosts": allow}, "web": {"fetch": {"allowHosts": allow}}, "timeoutSeconds": 3},
            "gateway": {"outbound": OUTBOUND}})
        rss = rss_kb(g.pid)
        res = parallel([timed(lambda i=i: chat(g, "go", f"tool-{i}", model=f"p/t{i}", timeout=15))
                        for i in range(len(jobs))])
        for i, ((tool, m, _), out) in enumerate(zip(jobs, res)):
            assert not isinstance(out, BaseException), (tool, m, out)
            r, took = out
            assert r.status_code == 200 and r.json()["content"] == "next", (tool, m, r.text)
            assert took < 3 + SLACK_S, f"{tool} {m}: {took:.1f}s"
            second = [q for q in fake.requests if q.model == f"t{i}"][1]
            (result,) = tool_results("anthropic", second.json)
            text = result["content"]
            want = HTTP_TOOL[m] if tool == "http_request" else WEB_FETCH[m]
            for w in want:
                assert w.lower() in text.lower(), (tool, m, text[:600])
            assert len(text) < 200_000, (tool, m, len(text))
            not_misleading((tool, m), text)
    assert canary.conns() == []
    assert_healthy(g, rss, srv)


# ---------------------------------------------------------------- /v1 image URLs

IMAGE = {
    "silent": "timed out",
    "sse_keepalive": "timed out",
    "endless": "larger than",
    "big_cl": "larger than",
    "huge_head": "head larger than",
    "long_header_line": "libcurl",
    "gzip_bomb": "gzip-encoded",
    "redirect_loop": "too many redirects",
    "redirect_meta": "link-local",
    "redirect_canary": "loopback",
    "tls_garbage": "HTTP/0.9",
}


def test_image_urls_against_hostile_peers(gateway_factory, peers):
    """An image URL sent to an agent model is fetched by the gateway: each
    hostile mode is a 400 invalid_image naming what went wrong, within the
    configured timeout, and no run starts."""
    srv, canary = peers
    with FakeLLM("openai") as fake:
        g = gateway_factory({
            "models": {"providers": {"o": {"api": "openai-completions", "baseUrl": fake.base_url, "apiKey": "k",
                                           "models": [{"id": MODEL}]}}},
            "agents": {"defaults": {"model": {"primary": f"o/{MODEL}"}}},
            "tools": {"web": {"fetch": {"allowHosts": [f"127.0.0.1:{srv.port}"]}}},
            "gateway": {"outbound": OUTBOUND, "http": {"endpoints": {"chatCompletions": {
                "enabled": True, "images": {"allowUrl": True, "timeoutMs": 1500, "maxBytes": 1048576}}}}}})
        rss = rss_kb(g.pid)

        def ask(m):
            content = [{"type": "text", "text": "what is it?"},
                       {"type": "image_url", "image_url": {"url": srv.url(m, "/cat.png")}}]
            return http(g, "POST", "/v1/chat/completions", token=g.admin_token, timeout=15,
                        json={"model": "openclaw", "messages": [{"role": "user", "content": content}]})
        res = parallel([timed(lambda m=m: ask(m)) for m in IMAGE])
        for m, out in zip(IMAGE, res):
            assert not isinstance(out, BaseException), (m, out)
            r, took = out
            assert took < 1.5 + SLACK_S, f"{m}: {took:.1f}s"
            assert r.status_code == 400, (m, r.text)
            err = r.json()["error"]
            assert err["code"] == "invalid_image" and IMAGE[m].lower() in err["message"].lower(), (m, err)
            not_misleading(m, err["message"])
        assert fake.requests == []
    assert canary.conns() == []
    assert_healthy(g, rss, srv)
