"""Conformance: the real `openclaw` CLI (npm, pinned in
tests/conformance/setup.sh) drives chela over the WebSocket protocol, and
every frame chela sends is validated against `protocol.schema.json` from
`@openclaw/gateway-protocol` with ajv (tests/conformance/validate_frames.mjs).

The CLI talks to a small recording proxy (WebSocket in, WebSocket out) so
the frames are captured without any debug mode in chela.  openclaw's own
state is isolated in a temp dir (OPENCLAW_STATE_DIR / OPENCLAW_HOME).  The
module installs the clients itself (cached in build/conformance) and skips
only when the npm registry cannot be reached.
"""

import asyncio
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from e2elib import REPO
from fakes.llm import FakeLLM

websockets = pytest.importorskip("websockets")

SETUP = REPO / "tests" / "conformance" / "setup.sh"
CACHE = Path(os.environ.get("CHELA_CONFORMANCE_DIR", REPO / "build" / "conformance"))
TOKEN = "conformance-token-0123456789"


@pytest.fixture(scope="module")
def node():
    """The pinned node binary, after installing (or finding) the clients."""
    p = subprocess.run(["bash", str(SETUP), "--print-node"], capture_output=True, text=True, timeout=900)
    if p.returncode == 3:
        pytest.skip(f"npm registry unreachable, cannot install openclaw: {p.stderr.strip()[-300:]}")
    assert p.returncode == 0, f"tests/conformance/setup.sh failed ({p.returncode}):\n{p.stderr[-3000:]}"
    return p.stdout.strip().splitlines()[-1]


class Recorder:
    """A WebSocket proxy on 127.0.0.1 that forwards both ways and records
    every text frame the server (chela) sends."""

    def __init__(self, upstream_port):
        self.upstream = f"ws://127.0.0.1:{upstream_port}"
        self.frames = []
        self.loop = asyncio.new_event_loop()
        self.port = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, client, path="/"):
        async with websockets.connect(self.upstream, max_size=None) as up:
            async def c2s():
                try:
                    async for m in client:
                        await up.send(m)
                    await up.close()
                except websockets.ConnectionClosed:
                    pass

            async def s2c():
                try:
                    async for m in up:
                        if isinstance(m, str):
                            self.frames.append(m)
                        await client.send(m)
                    await client.close(up.close_code or 1000, up.close_reason or "")
                except websockets.ConnectionClosed:
                    pass

            done, pending = await asyncio.wait([asyncio.ensure_future(c2s()), asyncio.ensure_future(s2c())],
                                               return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def start():
            self.server = await websockets.serve(self._handle, "127.0.0.1", 0, max_size=None)
            self.port = self.server.sockets[0].getsockname()[1]
            self._ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        async def stop():
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture
def setup(gateway_factory, node, tmp_path):
    with FakeLLM("anthropic") as fake:
        fake.push({"text": "Hello from chela", "chunks": 3, "times": -1})
        gw = gateway_factory({
            "gateway": {"auth": {"token": TOKEN}},
            "models": {"providers": {"anthropic": {"api": "anthropic-messages", "baseUrl": fake.base_url,
                                                   "apiKey": "sk-test"}},
                       "retry": {"count": 0, "baseDelayMs": 1}},
            "agents": {"defaults": {"model": {"primary": "anthropic/claude-sonnet-4-5"}}},
        })
        with Recorder(gw.port) as rec:
            home = tmp_path / "ochome"
            home.mkdir()
            env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("OPENCLAW_", "CLAWDBOT_"))
                   and not k.upper().endswith("_PROXY")}
            env.update({"OPENCLAW_STATE_DIR": str(tmp_path / "ocstate"), "OPENCLAW_HOME": str(home),
                        "HOME": str(home), "OPENCLAW_GATEWAY_PORT": str(rec.port),
                        "OPENCLAW_GATEWAY_TOKEN": TOKEN, "NO_COLOR": "1"})
            cli = str(CACHE / "node_modules" / "openclaw" / "openclaw.mjs")

            def run(*args, timeout=120):
                p = subprocess.run([node, cli, *args], capture_output=True, text=True, timeout=timeout, env=env,
                                   stdin=subprocess.DEVNULL)
                return p

            yield gw, rec, run, fake


def url_args(rec):
    return ["--url", f"ws://127.0.0.1:{rec.port}", "--token", TOKEN]


def validate(node, frames):
    # Node resolves packages next to the script: run a copy from the cache.
    script = CACHE / "validate_frames.mjs"
    script.write_text((REPO / "tests" / "conformance" / "validate_frames.mjs").read_text())
    p = subprocess.run([node, str(script)],
                       input="\n".join(frames) + "\n", capture_output=True, text=True, timeout=120,
                       cwd=str(CACHE))
    assert p.returncode == 0, f"frames chela sent do not match protocol.schema.json:\n{p.stdout[-6000:]}{p.stderr[-2000:]}"
    return p.stdout.strip().splitlines()[-1]


def test_openclaw_cli_against_chela(setup, node):
    gw, rec, run, fake = setup

    p = run("gateway", "call", "health", *url_args(rec), "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["ok"] is True

    p = run("gateway", "call", "status", *url_args(rec), "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "sessions" in json.loads(p.stdout)

    p = run("gateway", "call", "sessions.list", *url_args(rec), "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    body = json.loads(p.stdout)
    assert body["defaults"]["model"] == "claude-sonnet-4-5"

    p = run("gateway", "call", "agent", "--params", json.dumps({"message": "hi", "idempotencyKey": "conf-1"}),
            "--expect-final", *url_args(rec), "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    final = json.loads(p.stdout)
    assert final["status"] == "ok" and final["runId"] == "conf-1"
    assert final["result"]["payloads"][0]["text"] == "Hello from chela"

    p = run("health", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["ok"] is True

    p = run("agent", "--message", "hello there", "--session-key", "agent:main:main", "--json", timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Hello from chela" in p.stdout

    # The runs went to chela's fake LLM, not to an embedded agent.
    assert len(fake.requests) >= 2
    frames = list(rec.frames)
    assert any('"hello-ok"' in f for f in frames)
    summary = validate(node, frames)
    assert summary.endswith("0 failed"), summary
