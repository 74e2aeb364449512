"""POST /v1/responses (OpenClaw's OpenResponses endpoint): agent models run
the agent, with sessions continued by previous_response_id; provider models
are pass-through calls with the client's function tools; answers and SSE
events in the OpenResponses shape; bad input is a 400 naming the field."""

import json
import os
import time

import pytest

from e2elib import http
from fakes.llm import FakeLLM


def rs_config(fake, responses=True, chat=False):
    return {
        "gateway": {"http": {"endpoints": {"responses": {"enabled": responses},
                                           "chatCompletions": {"enabled": chat}}}},
        "models": {"providers": {"f": {"api": "openai-completions", "baseUrl": fake.base_url,
                                       "apiKey": "sk-test-rs", "models": [{"id": "fake-model"}]}}},
        "agents": {"defaults": {"model": {"primary": "f/fake-model"}}},
    }


@pytest.fixture
def fake():
    with FakeLLM("openai") as f:
        yield f


@pytest.fixture
def rs(gateway_factory, fake):
    g = gateway_factory(rs_config(fake))
    return g, g.gateway_json()["localToken"]


def post(g, tok, body, **kw):
    kw.setdefault("timeout", 30)
    return http(g, "POST", "/v1/responses", token=tok, json=body, **kw)


def events(resp):
    """[(event, data)] of an SSE body; data parsed unless it is [DONE]."""
    out, name = [], None
    for raw in resp.iter_lines():
        line = raw.decode("utf-8")  # SSE is UTF-8 whatever requests guesses
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            d = line[6:]
            out.append((name, d if d == "[DONE]" else json.loads(d)))
            name = None
    return out


def output_text(resp):
    return "".join(p["text"] for it in resp["output"] if it["type"] == "message" for p in it["content"]
                   if p["type"] == "output_text")


def test_agent_model_answers_a_response(rs, fake):
    g, tok = rs
    fake.push({"text": "hello from the agent", "usage": {"input": 11, "output": 4}})
    r = post(g, tok, {"model": "openclaw", "input": "say hello", "instructions": "be kind",
                      "max_output_tokens": 64, "metadata": {"k": "v"}})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["object"] == "response" and b["id"].startswith("resp_") and b["status"] == "completed"
    assert b["model"] == "openclaw" and b["error"] is None and b["incomplete_details"] is None
    assert output_text(b) == "hello from the agent"
    msg = b["output"][0]
    assert msg["type"] == "message" and msg["role"] == "assistant" and msg["status"] == "completed"
    assert msg["id"].startswith("msg_")
    assert b["usage"]["input_tokens"] == 11 and b["usage"]["output_tokens"] == 4
    assert b["usage"]["total_tokens"] == 15
    # echoed settings
    assert (b["instructions"], b["max_output_tokens"], b["metadata"]) == ("be kind", 64, {"k": "v"})
    up = fake.wait_requests(1)[0].json
    assert up["messages"][-1]["content"] in ("say hello", [{"type": "text", "text": "say hello"}])
    assert "be kind" in json.dumps(up["messages"][0])  # instructions join the system prompt
    assert up["max_tokens"] == 64
    # the run is tracked like any other
    run = http(g, "GET", "/api/v1/runs/" + b["id"][5:], token=tok).json()
    assert run["source"] == "openai-responses" and run["status"] == "ok"


def test_previous_response_id_continues_the_session(rs, fake):
    g, tok = rs
    fake.push({"text": "noted: 7"})
    fake.push({"text": "it was 7"})
    first = post(g, tok, {"model": "openclaw", "input": "remember 7"}).json()
    second = post(g, tok, {"model": "openclaw", "input": [{"role": "user", "content": "which number?"}],
                           "previous_response_id": first["id"]})
    assert second.status_code == 200, second.text
    assert second.json()["previous_response_id"] == first["id"]
    assert output_text(second.json()) == "it was 7"
    flat = json.dumps(fake.wait_requests(2)[1].json["messages"])
    assert "remember 7" in flat and "noted: 7" in flat and "which number?" in flat
    # unknown ids, other surfaces' runs and provider models are refused clearly
    for bad in ("resp_nope", "nope", "resp_"):
        r = post(g, tok, {"model": "openclaw", "input": "x", "previous_response_id": bad})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "previous_response_id"
        assert r.json()["error"]["code"] == "previous_response_not_found"
    fake.push({"text": "chat"})
    run_id = http(g, "POST", "/api/v1/chat", token=tok, json={"message": "hi"}).json()["runId"]
    r = post(g, tok, {"model": "openclaw", "input": "x", "previous_response_id": "resp_" + run_id})
    assert r.status_code == 400 and r.json()["error"]["code"] == "previous_response_not_found"
    r = post(g, tok, {"model": "f/fake-model", "input": "x", "previous_response_id": first["id"]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "previous_response_id"


def test_stateless_items_travel_as_context(rs, fake):
    g, tok = rs
    fake.push({"text": "blue"})
    r = post(g, tok, {"model": "openclaw/main", "input": [
        {"type": "message", "role": "developer", "content": "answer in one word"},
        {"role": "user", "content": [{"type": "input_text", "text": "sky colour?"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "which sky?"}]},
        {"type": "reasoning", "summary": []},
        {"role": "user", "content": "earth's"}]})
    assert r.status_code == 200, r.text
    up = json.dumps(fake.wait_requests(1)[0].json["messages"])
    for s in ("answer in one word", "sky colour?", "which sky?", "earth's"):
        assert s in up, s


def test_agent_stream_events(rs, fake):
    g, tok = rs
    fake.push({"text": "streamed agent words", "chunks": 3, "usage": {"input": 5, "output": 3}})
    r = post(g, tok, {"model": "openclaw", "input": "go", "stream": True}, stream=True)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    ev = events(r)
    assert ev[-1] == (None, "[DONE]")
    ev = ev[:-1]
    names = [n for n, _ in ev]
    assert all(n == d["type"] for n, d in ev)
    assert [d["sequence_number"] for _, d in ev] == list(range(len(ev)))
    deltas = [d["delta"] for n, d in ev if n == "response.output_text.delta"]
    assert len(deltas) >= 2 and "".join(deltas) == "streamed agent words"
    head = ["response.created", "response.in_progress", "response.output_item.added",
            "response.content_part.added"]
    tail = ["response.output_text.done", "response.content_part.done", "response.output_item.done",
            "response.completed"]
    assert names[:4] == head and names[-4:] == tail
    assert ev[0][1]["response"]["status"] == "in_progress"
    done = ev[-1][1]["response"]
    assert done["status"] == "completed" and output_text(done) == "streamed agent words"
    assert done["usage"]["output_tokens"] == 3
    assert ev[-4][1]["text"] == "streamed agent words"


def test_pass_through_function_calls_round_trip(rs, fake):
    g, tok = rs
    tools = [{"type": "function", "name": "lookup", "description": "find",
              "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]
    fake.push({"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]})
    r = post(g, tok, {"model": "f/fake-model", "input": "find x", "tools": tools,
                      "tool_choice": {"type": "function", "name": "lookup"},
                      "text": {"format": {"type": "json_schema", "name": "r", "schema": {"type": "object"}}}})
    assert r.status_code == 200, r.text
    calls = [it for it in r.json()["output"] if it["type"] == "function_call"]
    assert len(calls) == 1 and calls[0]["name"] == "lookup" and json.loads(calls[0]["arguments"]) == {"q": "x"}
    up = fake.wait_requests(1)[0].json
    assert up["tools"][0]["function"]["name"] == "lookup"
    assert up["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert up["response_format"] == {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}}
    # the client runs the tool and sends the result back with the history
    fake.push({"text": "x is 42"})
    r = post(g, tok, {"model": "f/fake-model", "tools": tools, "input": [
        {"role": "user", "content": "find x"}, calls[0],
        {"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "42"}]})
    assert r.status_code == 200, r.text
    assert output_text(r.json()) == "x is 42"
    msgs = fake.wait_requests(2)[1].json["messages"]
    assert msgs[1]["tool_calls"][0]["id"] == calls[0]["call_id"]
    assert msgs[2] == {"role": "tool", "tool_call_id": calls[0]["call_id"], "content": "42"}


def test_pass_through_stream_with_a_function_call(rs, fake):
    g, tok = rs
    fake.push({"text": "let me look", "tool_calls": [{"name": "lookup", "arguments": {"q": "é"}}]})
    r = post(g, tok, {"model": "f/fake-model", "input": "find", "stream": True,
                      "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]},
             stream=True)
    ev = [(n, d) for n, d in events(r) if d != "[DONE]"]
    names = [n for n, _ in ev]
    assert "".join(d["delta"] for n, d in ev if n == "response.output_text.delta") == "let me look"
    i = names.index("response.function_call_arguments.done")
    assert json.loads(ev[i][1]["arguments"]) == {"q": "é"}
    assert ev[i][1]["output_index"] == 1
    final = ev[-1][1]["response"]
    assert names[-1] == "response.completed"
    assert [it["type"] for it in final["output"]] == ["message", "function_call"]


def test_token_limit_is_an_incomplete_response(rs, fake):
    g, tok = rs
    fake.push({"text": "cut sh", "stop": "max_tokens"})
    b = post(g, tok, {"model": "f/fake-model", "input": "long story", "max_output_tokens": 2}).json()
    assert b["status"] == "incomplete" and b["incomplete_details"] == {"reason": "max_output_tokens"}
    fake.push({"text": "cut sh", "stop": "max_tokens"})
    ev = events(post(g, tok, {"model": "f/fake-model", "input": "long", "stream": True}, stream=True))
    assert ev[-2][0] == "response.incomplete" and ev[-2][1]["response"]["status"] == "incomplete"


def test_failures(rs, fake):
    g, tok = rs
    fake.push({"error_kind": "auth", "times": -1})
    r = post(g, tok, {"model": "f/fake-model", "input": "x"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "auth"
    bad = [
        ({"input": "x"}, "model"),
        ({"model": "openclaw"}, "input"),
        ({"model": "openclaw", "input": 5}, "input"),
        ({"model": "openclaw", "input": [{"role": "user", "content": [
            {"type": "input_image", "image_url": "ftp://x/y.png"}]}]}, "input"),
        ({"model": "openclaw", "input": [{"type": "web_search_call"}]}, "input"),
        ({"model": "openclaw", "input": [{"role": "robot", "content": "x"}]}, "input"),
        ({"model": "f/fake-model", "input": "x", "tools": [{"type": "web_search"}]}, "tools"),
        ({"model": "f/fake-model", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "f/fake-model", "input": "x", "top_p": 3}, "top_p"),
        ({"model": "openclaw", "input": "x", "conversation": "conv_1"}, "conversation"),
        ({"model": "openclaw", "input": "x", "tools": [{"type": "function", "name": "current_time"}]}, "tools"),
    ]
    for body, param in bad:
        r = post(g, tok, body)
        assert r.status_code == 400, (body, r.text)
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["param"] == param, (body, err)
    r = post(g, tok, {"model": "nope/none", "input": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_stream_failure_is_response_failed(rs, fake):
    g, tok = rs
    fake.push({"text": "partial answer here", "chunks": 4,
               "stream_error": {"type": "server_error", "message": "upstream broke"}})
    r = post(g, tok, {"model": "f/fake-model", "input": "x", "stream": True}, stream=True)
    ev = events(r)
    names = [n for n, _ in ev]
    assert "response.output_text.delta" in names  # it had started
    assert ev[-2][0] == "response.failed" and ev[-1] == (None, "[DONE]")
    failed = ev[-2][1]["response"]
    assert failed["status"] == "failed" and "upstream broke" in failed["error"]["message"]
    assert "response.completed" not in names


def test_each_endpoint_has_its_own_switch(gateway_factory, fake):
    g = gateway_factory(rs_config(fake, responses=False, chat=True))
    tok = g.gateway_json()["localToken"]
    assert post(g, tok, {"model": "openclaw", "input": "x"}).status_code == 404
    g2 = gateway_factory(rs_config(fake, responses=True, chat=False))
    tok2 = g2.gateway_json()["localToken"]
    r = http(g2, "POST", "/v1/chat/completions", token=tok2,
             json={"model": "openclaw", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 404
    assert http(g2, "GET", "/v1/models", token=tok2).status_code == 200
    assert post(g2, None, {"model": "openclaw", "input": "x"}).status_code == 401
    read = g2.create_token("reader", "read")["token"]
    time.sleep(1.2)  # the CLI wrote it to the db: the cache picks it up within a second
    r = post(g2, read, {"model": "openclaw", "input": "x"})
    assert r.status_code == 403 and r.json()["error"]["message"], r.text  # chat scope needed
    assert http(g2, "GET", "/v1/models", token=read).status_code == 200


def _random_body(rng):
    """A Responses body from the request grammar with fields of the wrong
    shape mixed in: the gateway must answer each with 200 or a 4xx."""
    def scalar():
        return rng.choice([None, True, 0, -1, 1.5, "", "x", "é\u2028\"", [], {}, 10 ** 30])

    def part():
        return rng.choice([{"type": t, "text": rng.choice(["hi", 5, None])} for t in
                           ("input_text", "output_text", "text", "refusal", "input_image", "input_file", None)]
                          + [scalar(),
                             {"type": "input_image", "source": rng.choice([
                                 {"type": "base64", "media_type": rng.choice(["image/png", "image/bmp", 5, "a;b"]),
                                  "data": rng.choice(["iVBORw0KGgo=", "@@", "", None])},
                                 {"type": "url", "url": rng.choice(["ftp://x/y", "", 5])}, scalar()])},
                             {"type": "input_file", "source": rng.choice([
                                 {"type": "base64", "media_type": rng.choice(["text/plain", "application/pdf", "",
                                                                              None, "text/csv;x"]),
                                  "data": rng.choice(["aGk=", "/w==", "@@", "", 7]), "filename": rng.choice(
                                      ["a.txt", "", None, "x" * 500, 'q"<'])},
                                 {"type": "url", "url": "http://127.0.0.1:9/f"}, scalar()])},
                             {"type": "input_file", "file_data": rng.choice(["data:text/plain;base64,aGk=",
                                                                             "data:;base64,", "data:text/plain,hi",
                                                                             "aGk=", 5])}])

    def item():
        kind = rng.choice(["message", None, "function_call", "function_call_output", "reasoning",
                           "item_reference", "web_search_call", 7])
        it = {"type": kind} if kind is not None else {}
        if rng.random() < 0.8:
            it["role"] = rng.choice(["user", "assistant", "system", "developer", "tool", "robot", None, 3])
        if rng.random() < 0.8:
            it["content"] = rng.choice([rng.choice(["text", "", "multi\nline"]), [part() for _ in range(3)],
                                        scalar()])
        for k in ("call_id", "name", "arguments", "output"):
            if rng.random() < 0.4:
                it[k] = rng.choice(["c1", "lookup", '{"q":1}', "{bad", 5, None, [part()]])
        return it if rng.random() < 0.95 else scalar()

    body = {"model": rng.choice(["openclaw", "openclaw/main", "agent:ops", "f/fake-model", "", 5, None])}
    body["input"] = rng.choice([rng.choice(["hello", ""]), [item() for _ in range(rng.randint(0, 5))], scalar()])
    extras = {
        "instructions": lambda: rng.choice(["be brief", 5, None, ""]),
        "tools": lambda: rng.choice([[{"type": "function", "name": "lookup"}], [{"type": "web_search"}],
                                     [{"name": 5}], scalar()]),
        "tool_choice": lambda: rng.choice(["auto", "none", "required", "sometimes", {"type": "function"},
                                           {"type": "function", "name": "lookup"}, 5]),
        "max_output_tokens": lambda: rng.choice([1, 64, 0, -5, "10", 1.5]),
        "temperature": lambda: rng.choice([0, 1.2, 3, "hot"]),
        "top_p": lambda: rng.choice([0.5, 2, None]),
        "text": lambda: rng.choice([{"format": {"type": "json_object"}}, {"format": {"type": "json_schema"}},
                                    {"format": 5}, "json"]),
        "previous_response_id": lambda: rng.choice(["resp_x", "resp_" + "9" * 300, "", 5]),
        "user": lambda: rng.choice(["u1", 5]),
        "stream": lambda: rng.choice([True, False, "yes"]),
        "metadata": lambda: rng.choice([{"a": "b"}, 5]),
    }
    for k, make in extras.items():
        if rng.random() < 0.3:
            body[k] = make()
    return body


def test_random_bodies_get_an_answer_never_a_failure(rs, fake):
    import random
    g, tok = rs
    fake.push({"text": "ok", "times": -1})
    rng = random.Random(int(os.environ.get("CHELA_E2E_SEED", "20261122")))
    seen = {}
    for _ in range(250):
        body = _random_body(rng)
        r = post(g, tok, body, timeout=15)
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        # 502 only for OpenClaw's unmet tool_choice: the fake answers text
        unmet = r.status_code == 502 and r.json()["error"]["code"] == "tool_choice_unsatisfied"
        assert r.status_code in (200, 400, 404) or unmet, (body, r.status_code, r.text[:300])
        if r.status_code != 200:
            assert r.json()["error"]["message"], body
    assert seen.get(200) and seen.get(400)  # both paths were exercised
    assert http(g, "GET", "/health", token=tok).status_code == 200


def b64(data):
    import base64
    return base64.b64encode(data).decode()


PNG_B64 = b64(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16)


def test_openclaw_input_parts(rs, fake):
    """OpenClaw's OpenResponses parts: input_image with a `source` (url or
    base64), input_file with a text file's data (OpenClaw's <file> block);
    OpenAI's forms (image_url, file_data) too; what chela cannot read is a
    400 naming the part."""
    g, tok = rs
    fake.push({"text": "read", "times": -1})
    notes = "# Notes\nline <b>two</b> and </file> inside\n"
    body = {"model": "openclaw", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "summarize"},
        {"type": "input_file", "source": {"type": "base64", "media_type": "text/markdown; charset=utf-8",
                                          "data": b64(notes.encode()), "filename": "notes.md"}},
        {"type": "input_image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}]}]}
    r = post(g, tok, body)
    assert r.status_code == 200, r.text
    content = fake.wait_requests(1)[0].json["messages"][-1]["content"]
    text = content[0]["text"]
    assert text.startswith("summarize\n<file name=\"notes.md\" mime=\"text/markdown\">\n# Notes\nline <b>two</b>")
    assert "&lt;/file> inside" in text and text.endswith("\n</file>")
    assert content[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG_B64}}
    # OpenAI's file_data form, to a provider model (the block is a text part)
    r = post(g, tok, {"model": "f/fake-model", "input": [{"role": "user", "content": [
        {"type": "input_file", "filename": "a.csv", "file_data": "data:text/csv;base64," + b64(b"a,b\n1,2\n")}]}]})
    assert r.status_code == 200, r.text
    sent = fake.wait_requests(2)[1].json["messages"][-1]["content"]
    assert sent == "<file name=\"a.csv\" mime=\"text/csv\">\na,b\n1,2\n\n</file>", sent
    bad = [({"type": "input_file", "source": {"type": "url", "url": "ftp://x/a.txt"}}, "input_file: "),
           ({"type": "input_file", "file_url": "http://127.0.0.1:9/a.txt"}, "loopback"),
           ({"type": "input_file", "file_id": "file-1"}, "file_id"),
           ({"type": "input_file", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERg=="}},
            "PDF"),
           ({"type": "input_file", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
            "unsupported file MIME type"),
           ({"type": "input_file", "source": {"type": "base64", "media_type": "text/plain", "data": b64(b"\xff\xfe")}},
            "not UTF-8"),
           ({"type": "input_file", "source": {"type": "base64", "media_type": "text/plain", "data": "@@@"}},
            "not base64"),
           ({"type": "input_file", "source": {"type": "base64", "media_type": "text/plain",
                                              "data": b64(b"x" * 6_000_000)}}, "too large"),
           ({"type": "input_image", "source": {"type": "base64", "media_type": "image/bmp", "data": PNG_B64}}, None),
           ({"type": "input_image", "source": {"type": "file", "id": "x"}}, "input_image")]
    for part, words in bad:
        r = post(g, tok, {"model": "openclaw", "input": [{"role": "user", "content": [part]}]})
        assert r.status_code == 400, (part, r.text)
        assert r.json()["error"]["param"] == "input", r.text
        if words:
            assert words in r.json()["error"]["message"], (part, r.text)
    assert len(fake.requests) == 2
    # a file that is all block ends: every one escaped, nothing cut
    r = post(g, tok, {"model": "f/fake-model", "input": [{"role": "user", "content": [
        {"type": "input_file", "filename": "e.txt", "file_data": "data:text/plain;base64," + b64(b"</file" * 2000)}]}]})
    assert r.status_code == 200, r.text
    assert fake.wait_requests(3)[2].json["messages"][-1]["content"].count("&lt;/file") == 2000


def test_input_file_limits(gateway_factory, fake):
    cfg = rs_config(fake)
    cfg["gateway"]["http"]["endpoints"]["responses"]["files"] = {"maxChars": 10, "allowedMimes": ["text/x-log"]}
    g = gateway_factory(cfg)
    tok = g.gateway_json()["localToken"]
    fake.push({"text": "ok", "times": -1})
    part = {"type": "input_file", "source": {"type": "base64", "media_type": "text/x-log", "filename": 'a"b<c>.log',
                                             "data": b64("héllo wörld, longer than ten".encode())}}
    r = post(g, tok, {"model": "openclaw", "input": [{"role": "user", "content": [part]}]})
    assert r.status_code == 200, r.text
    text = fake.wait_requests(1)[0].json["messages"][-1]["content"]
    text = text if isinstance(text, str) else text[0]["text"]
    assert text == '<file name="a_b_c_.log" mime="text/x-log">\nhéllo wörl\n[truncated at 10 characters]\n</file>'
    part["source"]["media_type"] = "text/plain"  # not in this gateway's list
    assert post(g, tok, {"model": "openclaw", "input": [{"role": "user", "content": [part]}]}).status_code == 400


def test_input_file_by_url(gateway_factory, fake):
    """A file by URL is fetched (OpenClaw: responses.files.allowUrl, on by
    default) with web_fetch's SSRF checks, for provider and agent models."""
    from agentlib import LocalServer
    with LocalServer({"/docs/notes.txt": (200, {"Content-Type": "text/plain; charset=utf-8"}, "fetched notes\n"),
                      "/bin": (200, {"Content-Type": "application/zip"}, b"PK\x03\x04"),
                      "/missing": (404, {"Content-Type": "text/plain"}, "no")}) as srv:
        cfg = rs_config(fake)
        cfg["tools"] = {"web": {"fetch": {"allowHosts": [f"127.0.0.1:{srv.port}"]}}}
        g = gateway_factory(cfg)
        tok = g.gateway_json()["localToken"]
        fake.push({"text": "ok", "times": -1})
        for model, part in (("openclaw", {"type": "input_file", "source": {"type": "url",
                                                                            "url": srv.origin + "/docs/notes.txt?v=1"}}),
                            ("f/fake-model", {"type": "input_file", "file_url": srv.origin + "/docs/notes.txt"})):
            r = post(g, tok, {"model": model, "input": [{"role": "user", "content": [
                {"type": "input_text", "text": "read"}, part]}]})
            assert r.status_code == 200, r.text
            sent = fake.requests[-1].json["messages"][-1]["content"]
            text = sent if isinstance(sent, str) else "\n".join(p["text"] for p in sent if p["type"] == "text")
            assert '<file name="notes.txt" mime="text/plain">\nfetched notes\n\n</file>' in text, text
        assert len(srv.received) == 2
        for path, words in (("/bin", "unsupported file MIME type: application/zip"), ("/missing", "HTTP 404")):
            r = post(g, tok, {"model": "openclaw", "input": [{"role": "user", "content": [
                {"type": "input_file", "source": {"type": "url", "url": srv.origin + path}}]}]})
            assert r.status_code == 400 and words in r.json()["error"]["message"], r.text
        g.stop()
        cfg["gateway"]["http"]["endpoints"]["responses"]["files"] = {"allowUrl": False}
        g = gateway_factory(cfg)
        tok = g.gateway_json()["localToken"]
        r = post(g, tok, {"model": "openclaw", "input": [{"role": "user", "content": [
            {"type": "input_file", "file_url": srv.origin + "/docs/notes.txt"}]}]})
        assert r.status_code == 400 and "disabled by config" in r.json()["error"]["message"], r.text
        assert len(srv.received) == 4


def test_max_url_parts(gateway_factory, fake):
    """OpenClaw's responses.maxUrlParts (8): URL-based image and file parts
    of every item count; one more is a 400 in its words."""
    cfg = rs_config(fake)
    cfg["gateway"]["http"]["endpoints"]["responses"]["maxUrlParts"] = 2
    g = gateway_factory(cfg)
    tok = g.gateway_json()["localToken"]
    parts = [{"type": "input_image", "image_url": "https://example.invalid/a.png"},
             {"type": "input_image", "source": {"type": "url", "url": "https://example.invalid/b.png"}},
             {"type": "input_file", "file_url": "https://example.invalid/c.txt"}]
    r = post(g, tok, {"model": "openclaw", "input": [
        {"role": "user", "content": parts[:2]}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": parts[2:]}]})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == "Too many URL-based input sources: 3 (limit: 2)"
    assert fake.requests == []
