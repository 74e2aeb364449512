"""Images in /v1 requests to provider models: `image_url` content parts
(a data: URL or an http(s) URL) and /v1/responses `input_image` parts reach
each API in its own format (OpenAI image_url parts, Anthropic image blocks,
Gemini inlineData).  The agent models take images as data: they go with
the run's message, into the session's transcript and the durable run.
Gemini cannot take an image by URL: a 400 that says so, never an image
dropped.  An image URL sent to an agent model is fetched by the gateway
when gateway.http.endpoints.*.images.allowUrl allows (OpenClaw's defaults:
off for chat completions, on for responses), with web_fetch's SSRF checks,
and goes on as data."""

import base64

import pytest

from agentlib import LocalServer
from e2elib import deep_merge, http
from fakes.llm import FakeLLM

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 24).decode()
DATA_URL = "data:image/png;base64," + PNG
HTTP_URL = "https://example.com/cat.jpg"


@pytest.fixture
def fakes():
    with FakeLLM("openai") as o, FakeLLM("anthropic") as a, FakeLLM("gemini") as g:
        yield o, a, g


def config(o, a, g):
    def prov(api, fake, model):
        return {"api": api, "baseUrl": fake.base_url, "apiKey": "k", "models": [{"id": model}]}
    return {
        "gateway": {"http": {"endpoints": {"chatCompletions": {"enabled": True}, "responses": {"enabled": True}}}},
        "models": {"providers": {"o": prov("openai-completions", o, "gpt-x"), "a": prov("anthropic-messages", a, "claude-x"),
                                 "g": prov("google-generative-ai", g, "gemini-x")}},
        "agents": {"defaults": {"model": {"primary": "o/gpt-x"}}},
    }


def ask(g, tok, model, content, path="/v1/chat/completions", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
    return http(g, "POST", path, token=tok, json=body, timeout=30)


def parts(text, url):
    return [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
            {"type": "text", "text": "thanks"}]


def test_each_api_gets_the_image_in_its_format(gateway_factory, fakes):
    o, a, g_ = fakes
    g = gateway_factory(config(o, a, g_))
    tok = g.gateway_json()["localToken"]
    for f in (o, a, g_):
        f.push({"text": "a cat", "times": -1})
    # OpenAI: the parts in order, a data: URL as sent, an http URL as sent
    r = ask(g, tok, "o/gpt-x", parts("what is this?", DATA_URL))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "a cat"
    assert o.wait_requests(1)[0].json["messages"][-1]["content"] == [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": DATA_URL}},
        {"type": "text", "text": "thanks"}]
    assert ask(g, tok, "o/gpt-x", parts("and this?", HTTP_URL)).status_code == 200
    assert o.wait_requests(2)[1].json["messages"][-1]["content"][1] == {"type": "image_url",
                                                                        "image_url": {"url": HTTP_URL}}
    # Anthropic: image blocks, base64 or url sources
    assert ask(g, tok, "a/claude-x", parts("what is this?", DATA_URL)).status_code == 200
    blocks = a.wait_requests(1)[0].json["messages"][-1]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    assert blocks[0]["text"] == "what is this?" and blocks[2]["text"] == "thanks"
    assert ask(g, tok, "a/claude-x", parts("url", HTTP_URL)).status_code == 200
    assert a.wait_requests(2)[1].json["messages"][-1]["content"][1] == {
        "type": "image", "source": {"type": "url", "url": HTTP_URL}}
    # Gemini: inlineData; by URL it cannot
    assert ask(g, tok, "g/gemini-x", parts("what is this?", DATA_URL)).status_code == 200
    gparts = g_.wait_requests(1)[0].json["contents"][-1]["parts"]
    assert gparts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG}}
    r = ask(g, tok, "g/gemini-x", parts("url", HTTP_URL))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_messages", r.text
    assert "not by http(s) URL" in r.json()["error"]["message"]
    assert len(g_.requests) == 1


def test_responses_input_image(gateway_factory, fakes):
    o, a, g_ = fakes
    g = gateway_factory(config(o, a, g_))
    tok = g.gateway_json()["localToken"]
    a.push({"text": "a dog"})
    r = http(g, "POST", "/v1/responses", token=tok, timeout=30, json={"model": "a/claude-x", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "what?"},
                                     {"type": "input_image", "image_url": DATA_URL}]}]})
    assert r.status_code == 200, r.text
    assert a.wait_requests(1)[0].json["messages"][-1]["content"][1]["source"]["data"] == PNG
    r = http(g, "POST", "/v1/responses", token=tok, timeout=30, json={"model": "a/claude-x", "input": [
        {"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input", r.text


def test_bad_images_are_refused(gateway_factory, fakes):
    o, a, g_ = fakes
    g = gateway_factory(config(o, a, g_))
    tok = g.gateway_json()["localToken"]
    bad = ["ftp://x/y.png", "data:image/svg+xml;base64,PHN2Zz4=", "data:image/png,notbase64", "data:image/png;base64,",
           "data:image/png;base64,****", "file:///etc/passwd", ""]
    for url in bad:
        r = ask(g, tok, "o/gpt-x", [{"type": "image_url", "image_url": {"url": url}}])
        assert r.status_code == 400, (url, r.text)
        assert r.json()["error"]["message"], url
    r = ask(g, tok, "o/gpt-x", [{"type": "image_url", "image_url": {}}])
    assert r.status_code == 400
    # an image in an assistant or system message is not something to send
    r = http(g, "POST", "/v1/chat/completions", token=tok, json={"model": "o/gpt-x", "messages": [
        {"role": "system", "content": [{"type": "image_url", "image_url": {"url": DATA_URL}}]},
        {"role": "user", "content": "x"}]})
    assert r.status_code == 400
    # the agent models fetch no URL unless allowed (OpenClaw: off for chat completions), at most 8 a turn
    r = ask(g, tok, "openclaw", parts("look", HTTP_URL))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_image", r.text
    assert "image URL sources are disabled by config" in r.json()["error"]["message"]
    # bad base64 is the client's mistake for agent runs too (a random seed found it a 502)
    r = ask(g, tok, "openclaw", parts("look", "data:image/png;base64,@@"))
    assert r.status_code == 400, r.text
    r = ask(g, tok, "openclaw", [{"type": "image_url", "image_url": {"url": DATA_URL}}] * 9)
    assert r.status_code == 400 and "at most 8" in r.json()["error"]["message"], r.text
    assert o.requests == [] and a.requests == [] and g_.requests == []


def test_agent_models_see_the_image_and_keep_it(gateway_factory, fakes):
    o, a, g_ = fakes
    g = gateway_factory(config(o, a, g_))
    tok = g.gateway_json()["localToken"]
    o.push({"text": "a cat"}, {"text": "still a cat"}, {"text": "only pixels"})
    r = ask(g, tok, "openclaw", parts("what is this?", DATA_URL), user="img-u")
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "a cat", r.text
    first = o.wait_requests(1)[0].json["messages"][-1]["content"]
    assert first[0] == {"type": "text", "text": "what is this?\nthanks"}
    assert first[1] == {"type": "image_url", "image_url": {"url": DATA_URL}}
    # the next turn of the session sends the image again, from the transcript
    r = ask(g, tok, "openclaw", "and now?", user="img-u")
    assert r.status_code == 200, r.text
    msgs = o.wait_requests(2)[1].json["messages"]
    users = [m for m in msgs if m["role"] == "user"]
    assert users[0]["content"][1] == {"type": "image_url", "image_url": {"url": DATA_URL}}
    assert users[-1]["content"] == "and now?"
    # a turn that is only an image gets OpenClaw's words as its text
    r = ask(g, tok, "openclaw", [{"type": "image_url", "image_url": {"url": DATA_URL}}])
    assert r.status_code == 200, r.text
    only = o.wait_requests(3)[2].json["messages"][-1]["content"]
    assert only[0] == {"type": "text", "text": "User sent image(s) with no text."}


def test_agent_image_survives_a_restart(gateway_factory, fakes):
    from agentlib import get_run, in_thread, sigkill_and_restart, wait_run
    o, a, g_ = fakes
    cfg = config(o, a, g_)
    cfg["limits"] = {"shutdownGraceMs": 300}
    g = gateway_factory(cfg)
    tok = g.gateway_json()["localToken"]
    o.push({"text": "late", "first_byte_delay": 8}, {"text": "a cat, again"})
    t, _ = in_thread(ask, g, tok, "openclaw", parts("what?", DATA_URL))
    assert o.wait_requests(1, timeout=10)[0].json["messages"][-1]["content"][1]["image_url"]["url"] == DATA_URL
    run_id = http(g, "GET", "/api/v1/runs", token=g.admin_token, params={"status": "running"}).json()["runs"][0]["runId"]
    g2 = sigkill_and_restart(gateway_factory, g, cfg, t)
    assert wait_run(g2, run_id, timeout=15)["status"] == "ok", get_run(g2, run_id)
    replay = o.wait_requests(2, timeout=10)[1].json["messages"][-1]["content"]
    assert replay[1] == {"type": "image_url", "image_url": {"url": DATA_URL}}


def test_a_big_image_counts_as_an_image_not_as_its_bytes(gateway_factory, fakes):
    """2 MB of base64 is ~500k tokens by bytes, but the providers bill an
    image at ~1.6k: the context estimate counts it so, and a 32k-token
    window does not trigger a compaction for it."""
    o, a, g_ = fakes
    cfg = config(o, a, g_)
    cfg["models"]["providers"]["o"]["models"] = [{"id": "gpt-x", "contextWindow": 32000, "maxTokens": 1024}]
    cfg["agents"]["defaults"]["compaction"] = {"keepMessages": 1}  # anything older could be compacted
    g = gateway_factory(cfg)
    tok = g.gateway_json()["localToken"]
    o.push({"text": "big cat", "times": -1})
    big = "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8" + b"\x00" * 1_500_000).decode()
    r = ask(g, tok, "openclaw", parts("what?", big), user="img-big")
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "big cat", r.text
    r = ask(g, tok, "openclaw", "and?", user="img-big")
    assert r.status_code == 200, r.text
    reqs = o.wait_requests(2)
    assert len(reqs) == 2  # no summarising call in between
    first_user = [m for m in reqs[1].json["messages"] if m["role"] == "user"][0]
    assert first_user["content"][1]["image_url"]["url"] == big
    assert http(g, "GET", "/health/detail", token=g.admin_token).json()["agent"]["compactions"] == 0


JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60


def test_agent_models_fetch_image_urls(gateway_factory, fakes):
    o, a, g_ = fakes
    with LocalServer({"/cat.png": (200, {"Content-Type": "image/png"}, base64.b64decode(PNG)),
                      "/raw": (200, {}, JPEG),
                      "/page": (200, {"Content-Type": "text/html"}, "<p>not an image</p>"),
                      "/gone": (404, {"Content-Type": "text/plain"}, "no"),
                      "/hop": (302, {"Location": "/cat.png"}, "")}) as srv:
        local = f"127.0.0.1:{srv.port}"
        cfg = deep_merge(config(o, a, g_), {
            "gateway": {"http": {"endpoints": {"chatCompletions": {"images": {"allowUrl": True}}}}},
            "tools": {"web": {"fetch": {"allowHosts": [local]}}}})
        g = gateway_factory(cfg)
        tok = g.gateway_json()["localToken"]
        o.push({"text": "a cat", "times": -1})
        r = ask(g, tok, "openclaw", parts("what is this?", srv.origin + "/cat.png"))
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "a cat", r.text
        sent = o.wait_requests(1)[0].json["messages"][-1]["content"]
        assert sent[1] == {"type": "image_url", "image_url": {"url": DATA_URL}}  # fetched, sent as data
        got = srv.received[-1]
        assert got["path"] == "/cat.png" and got["headers"].get("accept", "").startswith("image/")
        # no Content-Type: the bytes say JPEG; a redirect is followed (and checked)
        r = ask(g, tok, "openclaw", parts("and this?", srv.origin + "/raw"))
        assert r.status_code == 200, r.text
        url = o.wait_requests(2)[1].json["messages"][-1]["content"][1]["image_url"]["url"]
        assert url == "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
        assert ask(g, tok, "openclaw", parts("hop", srv.origin + "/hop")).status_code == 200
        # what cannot be an image: a 400 naming it, and no run
        before = len(o.requests)
        for path, words in (("/page", "not an allowed image type"), ("/gone", "HTTP 404")):
            r = ask(g, tok, "openclaw", parts("x", srv.origin + path))
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_image", r.text
            assert words in r.json()["error"]["message"], r.text
        # /v1/responses fetches by default (OpenClaw's default there)
        r = http(g, "POST", "/v1/responses", token=tok, timeout=30, json={"model": "openclaw", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "see"},
                                         {"type": "input_image", "image_url": srv.origin + "/cat.png"}]}]})
        assert r.status_code == 200, r.text
        assert len(o.requests) == before + 1
        assert o.requests[-1].json["messages"][-1]["content"][1]["image_url"]["url"] == DATA_URL


def test_image_url_checks(gateway_factory, fakes):
    o, a, g_ = fakes
    with LocalServer({"/cat.png": (200, {"Content-Type": "image/png"}, base64.b64decode(PNG))}) as srv:
        # no allowHosts for the local server: loopback is refused, as for web_fetch
        cfg = deep_merge(config(o, a, g_), {"gateway": {"http": {"endpoints": {"chatCompletions": {"images": {
            "allowUrl": True, "allowedMimes": ["image/gif"]}}}}}})
        g = gateway_factory(cfg)
        tok = g.gateway_json()["localToken"]
        r = ask(g, tok, "openclaw", parts("x", srv.origin + "/cat.png"))
        assert r.status_code == 400 and "loopback" in r.json()["error"]["message"], r.text
        assert srv.received == []
        g.stop()
        # urlAllowlist is checked first; allowedMimes after the fetch
        cfg = deep_merge(cfg, {"tools": {"web": {"fetch": {"allowHosts": [f"127.0.0.1:{srv.port}"]}}},
                               "gateway": {"http": {"endpoints": {"responses": {"images": {
                                   "urlAllowlist": ["cdn.example.com"]}}}}}})
        g = gateway_factory(cfg)
        tok = g.gateway_json()["localToken"]
        r = ask(g, tok, "openclaw", parts("x", srv.origin + "/cat.png"))
        assert r.status_code == 400 and "not an allowed image type" in r.json()["error"]["message"], r.text
        r = http(g, "POST", "/v1/responses", token=tok, timeout=30, json={"model": "openclaw", "input": [
            {"role": "user", "content": [{"type": "input_image", "image_url": srv.origin + "/cat.png"}]}]})
        assert r.status_code == 400 and "URL allowlist" in r.json()["error"]["message"], r.text
        assert len(srv.received) == 1
        assert o.requests == []


def test_image_fetch_client_gone_and_shutdown(gateway_factory, fakes):
    """A client that leaves while its image is fetched starts no run; a
    gateway stopped while one is fetched exits cleanly."""
    import threading
    o, a, g_ = fakes
    with LocalServer({"/slow.png": (200, {"Content-Type": "image/png"}, base64.b64decode(PNG), 1.5)}) as srv:
        cfg = deep_merge(config(o, a, g_), {
            "gateway": {"http": {"endpoints": {"chatCompletions": {"images": {"allowUrl": True}}}}},
            "tools": {"web": {"fetch": {"allowHosts": [f"127.0.0.1:{srv.port}"]}}}})
        g = gateway_factory(cfg)
        tok = g.gateway_json()["localToken"]
        o.push({"text": "seen", "times": -1})
        body = {"model": "openclaw", "messages": [{"role": "user", "content": parts("x", srv.origin + "/slow.png")}]}
        with pytest.raises(Exception):
            http(g, "POST", "/v1/chat/completions", token=tok, json=body, timeout=0.3)
        srv.wait(1)
        import time
        time.sleep(2.0)  # the fetch ends; nothing runs for a client that left
        assert o.requests == []
        assert http(g, "GET", "/health", token=tok).status_code == 200
        # stopped mid-fetch: a clean exit, the client answered or cut
        t = threading.Thread(target=lambda: http(g, "POST", "/v1/chat/completions", token=tok, json=body,
                                                 timeout=10), daemon=True)
        t.start()
        srv.wait(2)
        assert g.stop() == 0
        t.join(10)
