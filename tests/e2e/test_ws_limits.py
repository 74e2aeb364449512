"""OpenClaw WebSocket limits (issue #5 items 1 and 4): message caps before
and after connect, the handshake timeout, tick timing, 1000 concurrent
clients receiving one run's deltas, a slow consumer closed without memory
growth, and `shutdown` + 1012 when the gateway stops.
"""

import asyncio
import json
import resource
import signal
import time

import pytest

from e2elib import http
from fakes.llm import FakeLLM
from test_ws_protocol import TOKEN, WS, connect_params, connected, ws_config

websockets = pytest.importorskip("websockets")


@pytest.fixture
def fake():
    with FakeLLM("anthropic") as f:
        yield f


def test_oversize_before_connect_1009(gateway_factory, fake):
    gw = gateway_factory(ws_config(fake))
    c = WS(gw.port)
    c.recv()
    c.send("x" * (64 * 1024 + 1))
    assert c.closed() == (1009, "preauth payload too large")
    assert http(gw, "GET", "/health").status_code == 200


def test_oversize_after_connect(gateway_factory, fake):
    gw = gateway_factory(ws_config(fake, {"gateway": {"auth": {"token": TOKEN}, "ws": {"maxPayload": 100000}}}))
    c = connected(gw)
    assert c.call("health", {"probe": False})["ok"]
    big = json.dumps({"type": "req", "id": "b", "method": "health", "params": {"pad": "y" * 90000}})
    c.send(big)  # under the cap: an answer (params are closed)
    assert "unexpected property 'pad'" in c.res("b")["error"]["message"]
    c.send("z" * 100001)
    assert c.closed()[0] == 1009


def test_handshake_timeout(gateway_factory, fake):
    gw = gateway_factory(ws_config(fake, {"gateway": {"auth": {"token": TOKEN}, "ws": {"handshakeTimeoutMs": 300}}}))
    c = WS(gw.port)
    c.recv()
    t0 = time.monotonic()
    assert c.closed(timeout=5) == (1008, "handshake timeout")
    assert time.monotonic() - t0 < 2.5  # checked by the 1 Hz sweep


def test_tick_interval(gateway_factory, fake):
    gw = gateway_factory(ws_config(fake, {"gateway": {"auth": {"token": TOKEN}, "ws": {"tickIntervalMs": 200}}}))
    c = connected(gw)
    ticks = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        m = c.recv(2)
        if m.get("event") == "tick":
            ticks.append((time.monotonic(), m))
    assert 5 <= len(ticks) <= 9, len(ticks)
    gaps = [b[0] - a[0] for a, b in zip(ticks, ticks[1:])]
    assert all(0.1 < g < 0.4 for g in gaps), gaps
    assert all(set(t[1]["payload"]) == {"ts"} for t in ticks)
    assert c.call("health", {})["ok"]
    c.close()


def test_1000_clients_receive_one_runs_deltas(gateway_factory, fake):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2300:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    gw = gateway_factory(ws_config(fake, {"limits": {"maxConnections": 2000}}))
    fake.push({"text": "0123456789", "chunks": 5, "chunk_delay": 0.2})
    n = 1000

    async def client(i, ready, go):
        async with websockets.connect(f"ws://127.0.0.1:{gw.port}", max_size=None) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "req", "id": "c", "method": "connect",
                                      "params": connect_params(3, 4, scopes=["operator.read"])}))
            while json.loads(await ws.recv()).get("id") != "c":
                pass
            ready.append(i)
            if len(ready) == n:
                go.set()
            text = ""
            while True:
                m = json.loads(await ws.recv())
                p = m.get("payload") or {}
                if m.get("event") == "agent" and p.get("stream") == "assistant":
                    text += p["data"]["delta"]
                if m.get("event") == "agent" and p.get("stream") == "lifecycle" and p["data"]["phase"] == "end":
                    return text

    async def main():
        ready, go = [], asyncio.Event()
        tasks = [asyncio.ensure_future(client(i, ready, go)) for i in range(n)]
        await asyncio.wait_for(go.wait(), 60)
        async with websockets.connect(f"ws://127.0.0.1:{gw.port}") as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "req", "id": "c", "method": "connect", "params": connect_params()}))
            await ws.recv()
            await ws.send(json.dumps({"type": "req", "id": "a", "method": "agent",
                                      "params": {"message": "count", "idempotencyKey": "fanout"}}))
            return await asyncio.wait_for(asyncio.gather(*tasks), 60)

    texts = asyncio.run(main())
    assert len(texts) == n and all(t == "0123456789" for t in texts)


def test_slow_consumer_closed_without_memory_growth(gateway_factory, fake):
    gw = gateway_factory(ws_config(fake, {"gateway": {"auth": {"token": TOKEN},
                                                      "ws": {"maxBufferedBytes": 262144}}}))
    big = "lorem ipsum dolor sit amet " * 20000  # 540 KB, cumulative text per delta makes it grow fast
    fake.push({"text": big, "chunks": 400})

    def mem():
        return http(gw, "GET", "/health/detail", token=TOKEN).json()["memory"]["heapBytes"]

    slow = WS(gw.port)
    slow.handshake(connect_params())
    before = mem()
    # The run is driven over REST, so no WS reader has to keep up with it.
    r = http(gw, "POST", "/api/v1/chat", token=TOKEN, json={"message": "long"}, timeout=60)
    assert r.status_code == 200, r.text
    # The slow client never read: its queue passed the cap and it was closed.
    code = slow.closed(timeout=10)
    assert code == (1008, "slow consumer"), code
    time.sleep(0.5)
    after = mem()
    assert after - before < 4 * 1024 * 1024, (before, after)


def test_shutdown_event_then_1012(gateway_factory, fake):
    gw = gateway_factory(ws_config(fake, {"limits": {"shutdownGraceMs": 3000}}))
    c = connected(gw)
    t0 = time.monotonic()
    gw.signal(signal.SIGTERM)
    got = c.closed(timeout=10)
    names = [json.loads(e).get("event") if isinstance(e, str) else e.get("event") for e in c.events]
    assert got == (1012, "service restart"), got
    assert "shutdown" in names
    assert gw.wait(20) == 0
    assert time.monotonic() - t0 < 2.5  # WS clients do not hold the HTTP drain for its grace period
