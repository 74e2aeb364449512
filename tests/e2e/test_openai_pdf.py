"""PDF input files on POST /v1/responses.  OpenClaw gives the model the
text of a PDF's first files.pdf.maxPages pages as the file block of a text
file; chela reads it with pdftotext (poppler-utils) in a child process per
file, which is killed after files.timeoutMs, when the client leaves and at
shutdown.  Bad or unreadable PDFs are a 400 that names the part."""

import base64
import subprocess
import threading
import time

import pytest

from e2elib import http
from fakes.llm import FakeLLM
from fakes.pdf import make_pdf

PAGES = ["Hello from page one", "Second page (with parentheses)", "Third", "Fourth", "Fifth is past maxPages"]
BLOCK = ("<file name=\"report.pdf\" mime=\"application/pdf\">\n"
         "Hello from page one\n\nSecond page (with parentheses)\n\nThird\n\nFourth\n</file>")


def b64(data):
    return base64.b64encode(data).decode()


def rs_config(fake, files=None):
    cfg = {"gateway": {"http": {"endpoints": {"responses": {"enabled": True}}}},
           "models": {"providers": {"f": {"api": "openai-completions", "baseUrl": fake.base_url,
                                          "apiKey": "sk-test-pdf", "models": [{"id": "fake-model"}]}}},
           "agents": {"defaults": {"model": {"primary": "f/fake-model"}}}}
    if files is not None:
        cfg["gateway"]["http"]["endpoints"]["responses"]["files"] = files
    return cfg


def post(g, body, **kw):
    kw.setdefault("timeout", 30)
    return http(g, "POST", "/v1/responses", token=g.gateway_json()["localToken"], json=body, **kw)


def pdf_part(data, name="report.pdf"):
    return {"type": "input_file", "source": {"type": "base64", "media_type": "application/pdf", "data": b64(data),
                                             "filename": name}}


def ask(*parts, model="openclaw"):
    return {"model": model, "input": [{"role": "user", "content": list(parts)}]}


def sent_text(req):
    c = req.json["messages"][-1]["content"]
    return c if isinstance(c, str) else "\n".join(p["text"] for p in c if p["type"] == "text")


@pytest.fixture
def fake():
    with FakeLLM("openai") as f:
        f.push({"text": "read", "times": -1})
        yield f


def pdf_metrics(g):
    """{result: count} of chela_pdf_files_total, and the page images."""
    text = http(g, "GET", "/metrics", token=g.gateway_json()["localToken"]).text
    out = {}
    for line in text.splitlines():
        if line.startswith("chela_pdf_files_total{result="):
            out[line.split('"')[1]] = int(line.split()[-1])
        elif line.startswith("chela_pdf_page_images_total "):
            out["images"] = int(float(line.split()[-1]))
    return out


def children(g):
    """The gateway's child processes (pdftotext and whatever a fake started)."""
    out = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(g.proc.pid)], capture_output=True, text=True)
    return [line.split() for line in out.stdout.splitlines() if line.strip()]


def test_pdf_text_reaches_the_model(gateway_factory, fake):
    g = gateway_factory(rs_config(fake, {"pdf": {"minTextChars": 0}}))  # text only: no page images
    pdf = make_pdf(PAGES)
    r = post(g, ask({"type": "input_text", "text": "summarize"}, pdf_part(pdf)))
    assert r.status_code == 200, r.text
    assert sent_text(fake.wait_requests(1)[0]) == "summarize\n" + BLOCK
    first = r.json()["id"]
    # OpenAI's file_data form, to a provider model; two PDFs read side by side
    other = make_pdf(["Other document"])
    r = post(g, ask({"type": "input_file", "filename": "report.pdf",
                     "file_data": "data:application/pdf;base64," + b64(pdf)},
                    pdf_part(other, "other.pdf"), model="f/fake-model"))
    assert r.status_code == 200, r.text
    assert sent_text(fake.wait_requests(2)[1]) == (
        BLOCK + "\n<file name=\"other.pdf\" mime=\"application/pdf\">\nOther document\n</file>")
    # the session's later turn still has the text: it was stored as text
    r = post(g, ask({"type": "input_text", "text": "and again"}) | {"previous_response_id": first})
    assert r.status_code == 200, r.text
    history = [m["content"] for m in fake.wait_requests(3)[2].json["messages"] if m["role"] == "user"]
    assert any(BLOCK in (c if isinstance(c, str) else c[0]["text"]) for c in history), history
    assert children(g) == []


def test_pdf_limits_and_refusals(gateway_factory, fake):
    g = gateway_factory(rs_config(fake, {"maxChars": 25, "pdf": {"maxPages": 2, "minTextChars": 0}, "maxBytes": 4000}))
    r = post(g, ask(pdf_part(make_pdf(PAGES))))
    assert r.status_code == 200, r.text
    assert sent_text(fake.wait_requests(1)[0]) == (
        "<file name=\"report.pdf\" mime=\"application/pdf\">\nHello from page one\n\nSeco\n"
        "[truncated at 25 characters]\n</file>")
    # pages without text (a scan) say so
    r = post(g, ask(pdf_part(make_pdf(["", ""]), "scan.pdf")))
    assert r.status_code == 200, r.text
    assert sent_text(fake.wait_requests(2)[1]) == (
        "<file name=\"scan.pdf\" mime=\"application/pdf\">\n[no text on the first 2 pages of this PDF]\n</file>")
    bad = [(pdf_part(b"%PDF-1.4 not really"), "input[0].content[1]: the file is not a PDF that can be read "
                                              "(pdftotext exit status 1): Syntax Error: Couldn't read xref table"),
           (pdf_part(b"x" * 5000), "file too large (limit: 4000 bytes)"),
           ({"type": "input_file", "source": {"type": "base64", "media_type": "application/pdf", "data": "@@"}},
            "not base64"),
           (pdf_part(b""), "not a PDF that can be read")]
    for part, words in bad:
        r = post(g, ask({"type": "input_text", "text": "x"}, part))
        assert r.status_code == 400, (words, r.text)
        assert words in r.json()["error"]["message"], (words, r.text)
    assert len(fake.requests) == 2
    # read and failed: the bad PDF and the empty one (the others never reached a reader)
    assert pdf_metrics(g) == {"ok": 2, "error": 2, "timeout": 0, "stopped": 0, "images": 0}
    r = post(g, ask(*[pdf_part(make_pdf(["p"]))] * 9))
    assert r.status_code == 400 and "Too many PDF input files (limit: 8)" in r.text, r.text
    g.stop()
    # a gateway whose allowedMimes leave PDF out refuses it like any other type
    g = gateway_factory(rs_config(fake, {"allowedMimes": ["text/plain"]}))
    r = post(g, ask(pdf_part(make_pdf(PAGES))))
    assert r.status_code == 400 and "unsupported file MIME type: application/pdf" in r.text, r.text


def test_chat_completions_file_parts(gateway_factory, fake):
    """OpenAI's Chat Completions file parts ({type: "file", file: {file_data,
    filename}}): a text file as its block, a PDF read as on /v1/responses;
    for provider and agent models; file_id and bad data are a 400."""
    cfg = rs_config(fake, None)
    cfg["gateway"]["http"]["endpoints"]["chatCompletions"] = {"enabled": True, "files": {"pdf": {"minTextChars": 0}}}
    g = gateway_factory(cfg)
    tok = g.gateway_json()["localToken"]

    def chat(model, *parts):
        return http(g, "POST", "/v1/chat/completions", token=tok, timeout=30,
                    json={"model": model, "messages": [{"role": "user", "content": list(parts)}]})

    pdf = {"type": "file", "file": {"filename": "report.pdf", "file_data": "data:application/pdf;base64," +
                                    b64(make_pdf(PAGES))}}
    txt = {"type": "file", "file": {"filename": "n.md", "file_data": "data:text/markdown;base64," + b64(b"# N\n")}}
    for i, model in enumerate(("f/fake-model", "openclaw")):
        r = chat(model, {"type": "text", "text": "read"}, pdf, txt)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "read"
        assert sent_text(fake.wait_requests(i + 1)[i]) == (
            "read\n" + BLOCK + "\n<file name=\"n.md\" mime=\"text/markdown\">\n# N\n\n</file>")
    bad = [({"type": "file", "file": {"file_id": "file-1"}}, "file_id"),
           ({"type": "file", "file": "x"}, "needs a file object"),
           ({"type": "file"}, "needs a file object"),
           ({"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERg=="}}, "not a PDF that can be"),
           ({"type": "file", "file": {"file_data": "data:image/png;base64,AAAA"}}, "unsupported file MIME type")]
    for part, words in bad:
        r = chat("f/fake-model", part)
        assert r.status_code == 400, (part, r.text)
        err = r.json()["error"]
        assert err["param"] == "messages" and words in err["message"], (part, r.text)
        assert err["message"].startswith("messages[0].content[0]: "), err
    assert len(fake.requests) == 2


def png_size(url):
    assert url.startswith("data:image/png;base64,"), url[:40]
    png = base64.b64decode(url[22:])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_pages_without_enough_text_become_images(gateway_factory, fake):
    """OpenClaw renders each page with less than pdf.minTextChars (200)
    characters of text as an image, within pdf.maxPixels (4 M) in all."""
    g = gateway_factory(rs_config(fake))
    long_text = "\n".join(["A full page of text, long enough to stand alone."] * 5)
    r = post(g, ask({"type": "input_text", "text": "look"}, pdf_part(make_pdf([long_text, "Chart: sales", ""]))))
    assert r.status_code == 200, r.text
    content = fake.wait_requests(1)[0].json["messages"][-1]["content"]
    assert content[0]["type"] == "text" and content[0]["text"].startswith("look\n<file name=\"report.pdf\"")
    assert long_text in content[0]["text"] and "Chart: sales" in content[0]["text"]
    images = [p["image_url"]["url"] for p in content[1:]]
    assert len(images) == 2 and all(p["type"] == "image_url" for p in content[1:]), content
    assert pdf_metrics(g) == {"ok": 1, "error": 0, "timeout": 0, "stopped": 0, "images": 2}
    sizes = [png_size(u) for u in images]
    assert all(w * h <= 2_000_000 and max(w, h) <= 1123 and w < h for w, h in sizes), sizes  # letter, portrait
    # a tighter budget, shared by the pages; a PDF with no text at all
    g.stop()
    g = gateway_factory(rs_config(fake, {"pdf": {"maxPixels": 200_000}}))
    r = post(g, ask(pdf_part(make_pdf(["", ""]), "scan.pdf")))
    assert r.status_code == 200, r.text
    content = fake.wait_requests(2)[1].json["messages"][-1]["content"]
    assert content[0]["text"] == ("<file name=\"scan.pdf\" mime=\"application/pdf\">\n"
                                  "[no text on the first 4 pages of this PDF; their images follow]\n</file>")
    sizes = [png_size(p["image_url"]["url"]) for p in content[1:]]
    assert len(sizes) == 2 and sum(w * h for w, h in sizes) <= 200_000, sizes
    assert children(g) == []
    # maxPixels 0: no images, the note alone
    g.stop()
    g = gateway_factory(rs_config(fake, {"pdf": {"maxPixels": 0}}))
    r = post(g, ask(pdf_part(make_pdf(["", ""]), "scan.pdf")))
    assert r.status_code == 200, r.text
    assert fake.wait_requests(3)[2].json["messages"][-1]["content"] == (
        "<file name=\"scan.pdf\" mime=\"application/pdf\">\n[no text on the first 4 pages of this PDF]\n</file>")


def fake_reader(tmp_path, script):
    """A directory holding a `pdftotext` that runs script (sh), for PATH."""
    d = tmp_path / "fakebin"
    d.mkdir(exist_ok=True)
    p = d / "pdftotext"
    p.write_text("#!/bin/sh\n" + script + "\n")
    p.chmod(0o755)
    return str(d)


def test_a_reader_that_hangs_is_killed(gateway_factory, fake, tmp_path):
    """files.timeoutMs bounds the reader, and what it started (its process
    group); a client that leaves and a shutdown kill it too."""
    path = fake_reader(tmp_path, "sleep 30 & sleep 31; wait")
    g = gateway_factory(rs_config(fake, {"timeoutMs": 400}), env={"PATH": path + ":/usr/bin:/bin"})
    t0 = time.monotonic()
    r = post(g, ask(pdf_part(make_pdf(PAGES))))
    assert r.status_code == 400, r.text
    assert "input[0].content[0]: PDF extraction timed out after 400 ms" in r.json()["error"]["message"]
    assert time.monotonic() - t0 < 5
    time.sleep(0.2)
    assert children(g) == []
    assert pdf_metrics(g) == {"ok": 0, "error": 0, "timeout": 1, "stopped": 0, "images": 0}
    # a client that leaves: the reader goes at once, not at the timeout
    g.stop()
    g = gateway_factory(rs_config(fake, {"timeoutMs": 10000}), env={"PATH": path + ":/usr/bin:/bin"})
    with pytest.raises(Exception):
        post(g, ask(pdf_part(make_pdf(PAGES))), timeout=0.5)
    deadline = time.monotonic() + 5
    while children(g) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert children(g) == []
    assert pdf_metrics(g)["stopped"] == 1
    # shutdown while reading: the client hears 503 and the gateway exits promptly
    got = {}
    th = threading.Thread(target=lambda: got.update(r=post(g, ask(pdf_part(make_pdf(PAGES))))))
    th.start()
    deadline = time.monotonic() + 5
    while not children(g) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert children(g), "the reader did not start"
    t0 = time.monotonic()
    assert g.stop() == 0
    th.join(10)
    assert time.monotonic() - t0 < 5
    assert got["r"].status_code == 503, got["r"].text
    assert fake.requests == []


def test_at_most_eight_files_read_at_once(gateway_factory, fake, tmp_path):
    """CH_OA_PDF_MAX_RUNNING: a ninth file while eight are being read is a
    503 with Retry-After, never a queue without bound; once they are done
    the next request is read."""
    path = fake_reader(tmp_path, "sleep 2; echo read")
    g = gateway_factory(rs_config(fake, {"pdf": {"minTextChars": 0}}), env={"PATH": path + ":/usr/bin:/bin"})
    got = {}
    th = threading.Thread(target=lambda: got.update(r=post(g, ask(*[pdf_part(make_pdf(["x"]))] * 8))))
    th.start()
    deadline = time.monotonic() + 5
    while len(children(g)) < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(children(g)) == 8
    r = post(g, ask(pdf_part(make_pdf(["y"]))))
    assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
    assert r.json()["error"]["message"] == "too many PDF files are being read; retry shortly"
    th.join(10)
    assert got["r"].status_code == 200, got["r"].text
    assert sent_text(fake.wait_requests(1)[0]).count("\nread\n</file>") == 8
    r = post(g, ask(pdf_part(make_pdf(["y"]))))
    assert r.status_code == 200, r.text


def test_reader_output_is_bounded_and_cleaned(gateway_factory, fake, tmp_path):
    """What comes back is cut once maxChars has enough (the reader is then
    stopped) and made UTF-8: a stray byte becomes '?', NULs go."""
    path = fake_reader(tmp_path, 'if [ "$2" = 1 ]; then printf "ok \\377 d\\000one\\n\\n\\fnext\\n\\n\\f"; '
                                 'else yes "é, long line" | head -c 50000000; fi')
    g = gateway_factory(rs_config(fake, {"maxChars": 40, "pdf": {"maxPages": 1}}),
                        env={"PATH": path + ":/usr/bin:/bin"})
    r = post(g, ask(pdf_part(b"%PDF-")))
    assert r.status_code == 200, r.text
    assert sent_text(fake.wait_requests(1)[0]) == (
        "<file name=\"report.pdf\" mime=\"application/pdf\">\nok ? done\n\nnext\n</file>")
    g.stop()
    g = gateway_factory(rs_config(fake, {"maxChars": 12, "pdf": {"maxPages": 3}}),
                        env={"PATH": path + ":/usr/bin:/bin"})
    t0 = time.monotonic()
    r = post(g, ask(pdf_part(b"%PDF-")))
    assert r.status_code == 200, r.text
    assert time.monotonic() - t0 < 5  # not the 50 MB
    assert sent_text(fake.wait_requests(2)[1]) == (
        "<file name=\"report.pdf\" mime=\"application/pdf\">\né, long line\n[truncated at 12 characters]\n</file>")
    assert children(g) == []


def test_the_readers_reason_is_given(gateway_factory, fake, tmp_path):
    """A reader that fails says why on stderr: its last error line reaches
    the client (printable, bounded); a password problem in OpenClaw's words."""
    path = fake_reader(tmp_path, 'if [ "$(head -c 3)" = "pw!" ]; then echo "Command Line Error: Incorrect password" >&2; '
                                 'else printf "Syntax Warning: odd\\nSyntax Error: bad \\033 xref\\nnote\\n" >&2; '
                                 'head -c 100000 /dev/zero | tr "\\0" "e" >&2; fi; exit 1')
    g = gateway_factory(rs_config(fake), env={"PATH": path + ":/usr/bin:/bin"})
    r = post(g, ask(pdf_part(b"pw!")))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == ("input[0].content[0]: the file is not a PDF that can be read (pdftotext "
                                            "exit status 1): PDF requires a password or password is incorrect.")
    r = post(g, ask(pdf_part(b"%PDF-")))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == ("input[0].content[0]: the file is not a PDF that can be read (pdftotext "
                                            "exit status 1): Syntax Error: bad ? xref")


def test_without_pdftotext(gateway_factory, fake, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    g = gateway_factory(rs_config(fake), env={"PATH": str(empty)})
    r = post(g, ask(pdf_part(make_pdf(PAGES))))
    assert r.status_code == 400, r.text
    assert "pdftotext (Debian's poppler-utils) is not installed" in r.json()["error"]["message"], r.text
    # text files need no reader
    r = post(g, ask({"type": "input_file", "filename": "a.txt", "file_data": "data:text/plain;base64," + b64(b"hi")}))
    assert r.status_code == 200, r.text
    assert sent_text(fake.wait_requests(1)[0]) == "<file name=\"a.txt\" mime=\"text/plain\">\nhi\n</file>"
