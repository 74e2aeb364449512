"""The official OpenAI SDK (npm `openai`) against chela's /v1 API, unchanged
(issue #4 item 5): non-streaming, streaming with usage, models, errors.
Node comes from tests/conformance/setup.sh (pinned, cached in build/); the
SDK is installed next to it, pinned.  Skipped only when the npm registry
cannot be reached."""

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from fakes.llm import FakeLLM
from fakes.pdf import make_pdf

ROOT = Path(__file__).resolve().parents[2]
SDK_VERSION = "5.23.2"


@pytest.fixture(scope="module")
def node_and_sdk():
    setup = subprocess.run([str(ROOT / "tests/conformance/setup.sh"), "--print-node"], capture_output=True,
                           text=True, timeout=900)
    if setup.returncode == 3:
        pytest.skip("the npm registry is unreachable: " + setup.stderr.strip()[-300:])
    assert setup.returncode == 0, f"conformance setup failed:\n{setup.stdout}\n{setup.stderr}"
    node = setup.stdout.strip().splitlines()[-1]
    base = Path(os.environ.get("CHELA_CONFORMANCE_DIR", ROOT / "build/conformance")) / "openai-sdk"
    stamp = base / ".installed"
    if not (stamp.exists() and stamp.read_text() == SDK_VERSION):
        base.mkdir(parents=True, exist_ok=True)
        (base / "package.json").write_text('{"name":"chela-openai-sdk","private":true,"type":"module"}\n')
        npm = Path(node).parent / "npm"
        npm_cmd = [str(npm)] if npm.exists() else ["npm"]
        env = dict(os.environ, PATH=f"{Path(node).parent}:{os.environ.get('PATH', '')}")
        p = subprocess.run(npm_cmd + ["install", "--no-audit", "--no-fund", "--ignore-scripts",
                                      f"openai@{SDK_VERSION}"], cwd=base, capture_output=True, text=True,
                           timeout=600, env=env)
        assert p.returncode == 0, f"npm install openai failed:\n{p.stderr[-2000:]}"
        stamp.write_text(SDK_VERSION)
    script = base / "openai_client.mjs"
    script.write_text((ROOT / "tests/e2e/sdk/openai_client.mjs").read_text())
    return node, script


def test_openai_sdk_unchanged(gateway_factory, node_and_sdk):
    node, script = node_and_sdk
    with FakeLLM("openai") as fake:
        fake.push({"text": "hi from chela", "usage": {"input": 9, "output": 4}})
        fake.push({"text": "streamed words here", "chunks": 3, "usage": {"input": 5, "output": 3}})
        fake.push({"text": '{"ok": true}'})
        fake.push({"text": "a response", "usage": {"input": 6, "output": 2}})
        fake.push({"text": "a streamed response", "chunks": 3})
        fake.push({"text": "noted"})
        fake.push({"text": "it was 5"})
        fake.push({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]})
        fake.push({"text": "Oslo: sunny, 12C"})
        fake.push({"text": "a two-page report", "times": 2})
        g = gateway_factory({
            "gateway": {"http": {"endpoints": {"chatCompletions": {"enabled": True},
                                               "responses": {"enabled": True}}}},
            "models": {"providers": {"f": {"api": "openai-completions", "baseUrl": fake.base_url,
                                           "apiKey": "sk-upstream", "models": [{"id": "fake-model"}]}}},
            "agents": {"defaults": {"model": {"primary": "f/fake-model"}}},
        })
        tok = g.gateway_json()["localToken"]
        pdf = base64.b64encode(make_pdf(["Quarterly report", ""])).decode()
        p = subprocess.run([node, str(script), f"http://127.0.0.1:{g.port}/v1", tok, "f/fake-model"],
                           capture_output=True, text=True, timeout=120, cwd=script.parent,
                           env=dict(os.environ, CHELA_TEST_PDF_B64=pdf))
        assert p.returncode == 0, f"SDK script failed:\n{p.stdout}\n{p.stderr}"
        out = json.loads(p.stdout.strip().splitlines()[-1])
        ups = fake.wait_requests(12)
    assert len(ups) == 12  # 11 chat calls and the embeddings; the refused call never went upstream
    assert ups[7].path == "/v1/embeddings" and ups[7].json["input"] == ["alpha", "beta"]
    assert out["nonStream"]["content"] == "hi from chela"
    assert out["nonStream"]["finish"] == "stop"
    assert out["nonStream"]["usage"]["completion_tokens"] == 4
    assert out["stream"]["text"] == "streamed words here"
    assert out["stream"]["finish"] == "stop"
    assert out["stream"]["usage"]["completion_tokens"] == 3
    assert "openclaw" in out["models"] and "f/fake-model" in out["models"]
    assert out["error"]["status"] == 404 and out["error"]["name"] == "NotFoundError"
    # JSON mode and sampling parameters pass through as the SDK sent them
    assert out["json"]["content"] == '{"ok": true}'
    sent = ups[2].json
    assert sent["response_format"] == {"type": "json_object"}
    assert (sent["seed"], sent["top_p"], sent["stop"]) == (7, 0.5, ["\n\n"])
    assert out["responses"]["text"] == "a response" and out["responses"]["status"] == "completed"
    assert out["responses"]["id"].startswith("resp_") and out["responses"]["usage"]["total_tokens"] == 8
    assert out["responsesStream"] == {"text": "a streamed response", "first": "response.created",
                                      "last": "response.completed", "finalText": "a streamed response"}
    assert out["chain"] == {"text": "it was 5", "prev": True}
    # the fake's vectors (sha256 of the text), through chela's base64 and the SDK's decoder
    def fake_vec(text):
        h = hashlib.sha256(text.encode()).digest()
        return [round((h[i % 32] - 128) / 128, 6) for i in range(8)]
    assert out["embeddings"]["n"] == 2 and out["embeddings"]["usage"]["prompt_tokens"] == 2
    for got, text in zip(out["embeddings"]["vectors"], ("alpha", "beta")):
        assert len(got) == 8 and all(abs(a - b) < 1e-6 for a, b in zip(got, fake_vec(text))), (got, text)
    assert "remember 5" in json.dumps(ups[6].json["messages"])
    assert out["clientTools"] == {"finish": "tool_calls", "name": "get_weather", "args": {"city": "Oslo"},
                                  "text": "Oslo: sunny, 12C"}
    assert "sunny, 12C" in ups[9].json["messages"][-1]["content"]
    assert out["badParam"] == {"status": 400, "name": "BadRequestError", "param": "top_p",
                               "code": "invalid_parameter"}
    # a PDF as file parts: its text as the file block, its empty page as an image
    assert out["files"] == {"chat": "a two-page report", "responses": "a two-page report"}
    for up in ups[10:12]:
        parts = up.json["messages"][-1]["content"]
        assert parts[0]["text"].startswith("summarize\n<file name=\"report.pdf\" mime=\"application/pdf\">\n"
                                           "Quarterly report\n</file>"), parts[0]
        assert [p["type"] for p in parts[1:]] == ["image_url", "image_url"], parts
