"""Seed 001 (thug0bin/pharmacy-pos-qr-system docs/clawdbot-gateway-api.md):
the pharmacy backend's WebSocket client, exactly as the seed writes it.

The functions below are the seed's code with only the config loading
replaced (its `load_gateway_config()` reads ~/.clawdbot/clawdbot.json; here
the port and token come from the test): it reads the challenge without
checking it, connects as protocol 3 `gateway-client`/`backend` asking for
operator.admin, lists sessions with {limit: 10}, patches the session model to
`anthropic/claude-sonnet-4-5` (the `anthropic` provider points at the fake),
and calls `agent` WITHOUT an idempotencyKey, skipping the `accepted` res and
joining result.payloads[].text.
"""

import asyncio
import json
import uuid

import pytest

from fakes.llm import FakeLLM
from test_ws_protocol import TOKEN, ws_config

websockets = pytest.importorskip("websockets")


def load_gateway_config(port):
    return {"port": port, "token": TOKEN}


async def connect(ws, config):
    # 1단계: challenge 수신
    challenge = json.loads(await ws.recv())
    # 2단계: connect 요청
    connect_frame = {
        'type': 'req',
        'id': str(uuid.uuid4()),
        'method': 'connect',
        'params': {
            'minProtocol': 3,
            'maxProtocol': 3,
            'client': {
                'id': 'gateway-client',
                'displayName': 'My App',
                'version': '1.0.0',
                'platform': 'win32',
                'mode': 'backend',
                'instanceId': str(uuid.uuid4()),
            },
            'caps': [],
            'auth': {'token': config['token']},
            'role': 'operator',
            'scopes': ['operator.admin'],
        }
    }
    await ws.send(json.dumps(connect_frame))
    # 3단계: connect 응답 대기
    while True:
        msg = json.loads(await ws.recv())
        if msg.get('id') == connect_frame['id']:
            if msg.get('ok'):
                return challenge, msg
            return challenge, msg


async def _get_gateway_status(port):
    config = load_gateway_config(port)
    async with websockets.connect(f"ws://127.0.0.1:{config['port']}") as ws:
        _, hello = await connect(ws, config)
        assert hello.get('ok'), hello
        list_frame = {'type': 'req', 'id': str(uuid.uuid4()), 'method': 'sessions.list', 'params': {'limit': 10}}
        await ws.send(json.dumps(list_frame))
        while True:
            msg = json.loads(await ws.recv())
            if msg.get('event'):
                continue
            if msg.get('id') == list_frame['id']:
                return msg.get('payload', {})


async def ask_ai(port, message, session_id='my-session', model=None):
    config = load_gateway_config(port)
    frames = []
    async with websockets.connect(f"ws://127.0.0.1:{config['port']}") as ws:
        _, hello = await connect(ws, config)
        assert hello.get('ok'), hello
        if model:
            patch_frame = {'type': 'req', 'id': str(uuid.uuid4()), 'method': 'sessions.patch',
                           'params': {'key': session_id, 'model': model}}
            await ws.send(json.dumps(patch_frame))
            while True:
                msg = json.loads(await ws.recv())
                if msg.get('id') == patch_frame['id']:
                    frames.append(msg)
                    break
        agent_frame = {
            'type': 'req',
            'id': str(uuid.uuid4()),
            'method': 'agent',
            'params': {
                'message': message,
                'sessionId': session_id,
                'sessionKey': session_id,
                'timeout': 60,
            }
        }
        await ws.send(json.dumps(agent_frame))
        while True:
            msg = json.loads(await ws.recv())
            if msg.get('event'):
                continue
            if msg.get('id') == agent_frame['id']:
                frames.append(msg)
                if msg.get('payload', {}).get('status') == 'accepted':
                    continue
                payloads = msg.get('payload', {}).get('result', {}).get('payloads', [])
                return '\n'.join(p.get('text', '') for p in payloads), frames


def test_seed001_pharmacy_flow(gateway_factory):
    with FakeLLM("anthropic") as fake:
        fake.push({"text": "추천 멘트: 비타민 C", "chunks": 4, "usage": {"input": 30072, "output": 40}})
        gw = gateway_factory(ws_config(fake))

        status = asyncio.run(asyncio.wait_for(_get_gateway_status(gw.port), 20))
        assert status["sessions"] == [] and status["defaults"]["contextTokens"] == 200000
        assert status["defaults"]["model"] == "claude-opus-4-5"

        text, frames = asyncio.run(asyncio.wait_for(
            ask_ai(gw.port, "추천 멘트 만들어줘", session_id='upsell-customer1', model='anthropic/claude-sonnet-4-5'), 30))
        assert text == "추천 멘트: 비타민 C"
        patch, accepted, final = frames
        assert patch["ok"] and patch["payload"]["resolved"]["model"] == "claude-sonnet-4-5"
        assert accepted["payload"]["status"] == "accepted"
        assert final["payload"]["status"] == "ok"
        assert accepted["payload"]["runId"] == final["payload"]["runId"]  # generated idempotencyKey
        assert fake.requests[-1].model == "claude-sonnet-4-5"  # the session's model override was used

        status = asyncio.run(asyncio.wait_for(_get_gateway_status(gw.port), 20))
        row = [s for s in status["sessions"] if s["key"] == "agent:main:upsell-customer1"][0]  # canonical
        # What the seed's dashboard reads: used/max context and the model.
        assert row["model"] == "claude-sonnet-4-5"
        assert row["contextTokens"] == 200000 and 0 < row["totalTokens"] <= row["contextTokens"]
        assert row["inputTokens"] == 30072 and row["outputTokens"] == 40 and "estimatedCostUsd" in row


def test_seed001_bad_client_id_wording(gateway_factory):
    """The seed's troubleshooting section quotes this error for a v3 client."""
    with FakeLLM("anthropic") as fake:
        gw = gateway_factory(ws_config(fake))

        async def go():
            async with websockets.connect(f"ws://127.0.0.1:{gw.port}") as ws:
                await ws.recv()
                await ws.send(json.dumps({'type': 'req', 'id': '1', 'method': 'connect', 'params': {
                    'minProtocol': 3, 'maxProtocol': 3,
                    'client': {'id': 'pharmacy', 'version': '1', 'platform': 'win32', 'mode': 'backend'},
                    'auth': {'token': TOKEN}}}))
                return json.loads(await ws.recv())

        msg = asyncio.run(asyncio.wait_for(go(), 10))
        assert msg["error"]["message"].startswith("invalid connect params: at /client/id: must be equal to constant")
