"""Text that is not clean UTF-8, or is cut by bytes, on the OpenAI-compatible
API: session keys stay valid UTF-8 (a `user` cut between characters, a
session-key header that is not UTF-8 or too long refused rather than
rewritten); error messages quoting such text keep the documented status and
OpenAI's {error: {message, type, code}} shape; a model header that is not
UTF-8 is refused; long non-ASCII file names are cut between characters."""

import base64
import json
from urllib.parse import quote


from e2elib import http
from fakes.pdf import make_pdf
from test_openai_limits import chat, fake, oa  # noqa: F401 (the same gateway and fixtures)


def responses(g, tok, body, **kw):
    kw.setdefault("timeout", 30)
    return http(g, "POST", "/v1/responses", token=tok, json=body, **kw)


def oa_error(resp, status, code=None):
    """OpenAI's error shape, whatever the message quotes: valid UTF-8 JSON,
    the message at most 511 bytes."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    err = json.loads(resp.content.decode("utf-8"))["error"]
    assert isinstance(err, dict) and err["message"] and err["type"], err
    assert len(err["message"].encode()) <= 511, err
    if code:
        assert err["code"] == code, err
    return err


def newest_run(g, tok):
    run_id = http(g, "GET", "/api/v1/runs", token=tok).json()["runs"][0]["runId"]
    return http(g, "GET", f"/api/v1/runs/{run_id}", token=tok).json()


USER_MSG = [{"role": "user", "content": "hi"}]


def test_user_session_key_is_cut_between_characters(oa, fake):
    g, tok = oa
    fake.push({"text": "hello"})
    # "agent:main:openai-user:" and `user` up to the key's 512 bytes would
    # end inside an "é"
    r = chat(g, tok, {"model": "openclaw", "user": "a" + "é" * 300, "messages": USER_MSG})
    assert r.status_code == 200, r.text
    want = "agent:main:openai-user:a" + "é" * 244
    assert len(want.encode()) == 512
    assert [s.get("key") for s in http(g, "GET", "/api/v1/sessions", token=tok).json()["sessions"]] == [want]
    assert newest_run(g, tok)["sessionKey"] == want


def test_session_key_header_must_be_utf8_and_whole(oa, fake):
    g, tok = oa
    # 513 bytes, or 502 that pass 512 as the canonical agent:main:<key>
    for bad in (b"k\xff\xfe", b"ok-\xc3", ("k" * 513).encode(), ("k" * 502).encode()):
        err = oa_error(chat(g, tok, {"model": "openclaw", "messages": USER_MSG},
                            headers={"x-openclaw-session-key": bad}), 400, "invalid_session")
        assert "x-openclaw-session-key" in err["message"] and "512" in err["message"], err
    assert fake.requests == []
    # 512 bytes of UTF-8 as agent:main:<key> is a key, stored canonical
    # (é is no ASCII letter: kept)
    key = "K" + "é" * 250
    assert len(("agent:main:" + key).encode()) == 512
    fake.push({"text": "kept"})
    r = chat(g, tok, {"model": "openclaw", "messages": USER_MSG}, headers={"x-openclaw-session-key": key.encode()})
    assert r.status_code == 200, r.text
    want = "agent:main:k" + "é" * 250
    assert http(g, "GET", "/api/v1/sessions/" + quote(key, safe=""), token=tok).json()["key"] == want
    assert newest_run(g, tok)["sessionKey"] == want


def test_errors_quoting_broken_utf8_keep_status_and_shape(oa, fake):
    g, tok = oa
    # a model id from the path with a cut character: the documented 404
    err = oa_error(http(g, "GET", "/v1/models/f%2F" + "x" * 20 + "%C3", token=tok), 404, "model_not_found")
    assert "'f/" + "x" * 20 + "\ufffd'" in err["message"], err
    # a message cut inside a character (the id is 511 bytes, the message longer)
    err = oa_error(http(g, "GET", "/v1/models/nope%2F" + "%C3%A9" * 253, token=tok), 404, "model_not_found")
    assert err["message"] == "The model 'nope/" + "é" * 247, err
    # nothing but bytes that are not UTF-8 (each a U+FFFD, three times longer)
    err = oa_error(http(g, "GET", "/v1/models/" + "%FF" * 300, token=tok), 404, "model_not_found")
    assert err["message"].startswith("The model '\ufffd\ufffd"), err
    # an agent id header that is not UTF-8
    oa_error(chat(g, tok, {"model": "openclaw", "messages": USER_MSG}, headers={"x-openclaw-agent-id": b"\xff"}),
             404, "model_not_found")
    # a message cut at 300 bytes inside a character
    err = oa_error(responses(g, tok, {"model": "openclaw", "input": [{"type": "é" * 150}]}), 400, "invalid_input")
    assert "input[0]" in err["message"] and "\ufffd" not in err["message"], err
    # the fetch's failure quoting a long non-ASCII URL
    url = "http://localhost:1/a" + "é" * 300
    err = oa_error(responses(g, tok, {"model": "openclaw", "input": [
        {"role": "user", "content": [{"type": "input_file", "file_url": url}]}]}), 400, "invalid_input")
    assert err["message"].startswith("input_file"), err
    assert fake.requests == []


def test_stream_errors_quoting_a_cut_message_still_arrive(oa, fake):
    """An upstream's failure after the stream began: its message, cut by
    bytes on the way (inside an "é"), still reaches the client."""
    g, tok = oa
    for _ in range(2):
        fake.push({"text": "partial answer here", "chunks": 4,
                   "stream_error": {"type": "server_error", "message": "é" * 300}})
    r = chat(g, tok, {"model": "f/fake-model", "stream": True, "messages": USER_MSG})
    data = [line[6:] for line in r.content.decode("utf-8").splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    err = json.loads(data[-2])["error"]
    assert "éé" in err["message"] and "\ufffd" not in err["message"], err
    r = responses(g, tok, {"model": "f/fake-model", "stream": True, "input": "x"})
    data = [line[6:] for line in r.content.decode("utf-8").splitlines() if line.startswith("data: ")]
    failed = json.loads(data[-2])
    assert failed["type"] == "response.failed" and "éé" in failed["response"]["error"]["message"], failed


def test_model_header_must_be_utf8(oa, fake):
    g, tok = oa
    err = oa_error(chat(g, tok, {"model": "openclaw", "messages": USER_MSG},
                        headers={"x-openclaw-model": b"f/fake-model\xff"}), 400, "invalid_model")
    assert "x-openclaw-model" in err["message"], err
    err = oa_error(http(g, "POST", "/v1/embeddings", token=tok, json={"model": "openclaw", "input": "x"},
                        headers={"x-openclaw-model": b"f/fake-model\xff"}, timeout=20), 400, "invalid_model")
    assert "x-openclaw-model" in err["message"], err
    assert fake.requests == []


LONG_NAME = "報告書" * 23 + ".txt"  # 211 bytes: 200 would end inside a character
CUT_NAME = "報告書" * 22  # the 198 bytes that fit


def b64(data):
    return base64.b64encode(data).decode()


def sent_text(fake, i):
    c = fake.wait_requests(i + 1)[i].json["messages"][-1]["content"]
    return c if isinstance(c, str) else "\n".join(p.get("text", "") for p in c)


def test_long_non_ascii_file_names_are_cut_between_characters(oa, fake):
    g, tok = oa
    fake.push({"text": "read", "times": 3})
    part = {"type": "input_file", "source": {"type": "base64", "media_type": "text/plain",
                                             "data": b64(b"file body"), "filename": LONG_NAME}}
    r = responses(g, tok, {"model": "f/fake-model", "input": [{"role": "user", "content": [part]}]})
    assert r.status_code == 200, r.text
    assert f'<file name="{CUT_NAME}" mime="text/plain">\nfile body\n</file>' in sent_text(fake, 0)
    r = chat(g, tok, {"model": "f/fake-model", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "see"},
        {"type": "file", "file": {"file_data": "data:text/plain;base64," + b64(b"chat body"),
                                  "filename": LONG_NAME}}]}]})
    assert r.status_code == 200, r.text
    assert f'<file name="{CUT_NAME}" mime="text/plain">\nchat body\n</file>' in sent_text(fake, 1)
    # a PDF's block is built the same way
    pdf = {"type": "input_file", "source": {"type": "base64", "media_type": "application/pdf",
                                            "data": b64(make_pdf(["Hello from the PDF"])),
                                            "filename": "報告書" * 23 + ".pdf"}}
    r = responses(g, tok, {"model": "f/fake-model", "input": [{"role": "user", "content": [pdf]}]})
    assert r.status_code == 200, r.text
    assert f'<file name="{CUT_NAME}" mime="application/pdf">\nHello from the PDF' in sent_text(fake, 2)
