"""POST /tools/invoke: OpenClaw's direct tool call, outside any agent turn
(OpenClaw spec section 3), and its WebSocket face `tools.invoke`.  Answers
{ok, result} or {ok: false, error: {type, message}}; the deny list and
gateway.tools.deny/allow; the chat scope (operator.write); the tools' own
limits (allowHosts, SSRF) still apply."""

import json
import time

from agentlib import LocalServer, llm_config
from e2elib import http
from fakes.llm import FakeLLM


def invoke(g, body, token=None, **kw):
    return http(g, "POST", "/tools/invoke", token=token or g.admin_token, json=body, timeout=20, **kw)


def err(r, status, type_):
    assert r.status_code == status, r.text
    b = r.json()
    assert b["ok"] is False and b["error"]["type"] == type_ and b["error"]["message"], b
    return b["error"]["message"]


def test_invoke_tools_directly(gateway_factory):
    with LocalServer({"/cb": (201, {"Content-Type": "application/json"}, '{"stored":true}')}) as rx, \
            FakeLLM("openai") as fake:
        allow = [f"127.0.0.1:{rx.port}", "127.0.0.1:9"]  # nothing listens on the discard port
        g = gateway_factory(llm_config({"p": fake}, tools={"http": {"allowHosts": allow}}))
        r = invoke(g, {"tool": "current_time", "args": {"timezone": "Asia/Seoul"}})
        assert r.status_code == 200, r.text
        b = r.json()
        assert b["ok"] is True and b["result"]["content"][0]["type"] == "text"
        assert "+09:00" in b["result"]["content"][0]["text"], b
        # `name` wins over `tool`; the call goes out and its details come back
        r = invoke(g, {"tool": "current_time", "name": "http_request", "idempotencyKey": "k1", "dryRun": False,
                       "sessionKey": "main", "agentId": "main",
                       "args": {"method": "POST", "url": f"http://127.0.0.1:{rx.port}/cb", "body": {"x": 1}}})
        assert r.status_code == 200, r.text
        assert json.loads(rx.wait(1)[0]["body"]) == {"x": 1}
        details = r.json()["result"]["details"]
        assert details["status"] == 201, details
        # a tool that fails (connection refused) is a 500; a host not allowed is the caller's 400
        assert "failed" in err(invoke(g, {"name": "http_request", "args": {"url": "http://127.0.0.1:9/x"}}), 500,
                               "tool_error")
        assert "allowHosts" in err(invoke(g, {"name": "http_request", "args": {"url": "http://127.0.0.1:1/x"}}),
                                   400, "tool_error")
        # no model ever ran
        assert fake.requests == []


def test_refusals(gateway_factory):
    with FakeLLM("openai") as fake:
        g = gateway_factory(llm_config({"p": fake}) | {"gateway": {"tools": {"deny": ["current_time"]}}})
        assert "Tool not available" in err(invoke(g, {"tool": "current_time"}), 404, "not_found")
        err(invoke(g, {"tool": "exec", "args": {"command": "id"}}), 404, "not_found")  # OpenClaw's deny list
        err(invoke(g, {"tool": "no_such_tool"}), 404, "not_found")
        # the gateway's own image fetcher is not a tool a client can call
        err(invoke(g, {"tool": "fetch_image", "args": {"url": "http://example.com/a.png",
                                                       "allowHosts": ["127.0.0.1"]}}), 404, "not_found")
        err(invoke(g, {"args": {}}), 400, "invalid_request")
        err(invoke(g, {"name": ""}), 400, "invalid_request")
        err(invoke(g, {"name": "web_fetch", "agentId": "ops"}), 400, "invalid_request")
        err(http(g, "POST", "/tools/invoke", token=g.admin_token, data="{nope",
                 headers={"Content-Type": "application/json"}), 400, "invalid_request")
        # arguments that fail the tool's schema: 400, nothing runs
        assert "url" in err(invoke(g, {"name": "web_fetch", "args": {"maxChars": "many"}}), 400, "tool_error")
        # the tool's own guard still holds: loopback is not fetched
        msg = err(invoke(g, {"name": "web_fetch", "args": {"url": f"http://127.0.0.1:{g.port}/health"}}), 400,
                  "tool_error")
        assert "127.0.0.1 is a loopback address" in msg, msg
        # scopes: chat (OpenClaw's operator.write), not read; methods
        assert invoke(g, {"name": "web_fetch"}, token="oc_tok_" + "x" * 43).status_code == 401
        chat_tok = g.create_token("chatter", "chat")["token"]
        read_tok = g.create_token("reader", "read")["token"]
        time.sleep(1.2)  # the CLI wrote them to the db: the cache picks them up within a second
        assert invoke(g, {"tool": "web_fetch"}, token=read_tok).status_code == 403
        err(invoke(g, {"tool": "web_fetch", "args": {}}, token=chat_tok), 400, "tool_error")  # allowed, bad args
        r = http(g, "GET", "/tools/invoke", token=g.admin_token)
        assert r.status_code == 405 and r.headers["Allow"] == "POST"


def test_allow_takes_a_name_off_the_default_deny_list(gateway_factory):
    with FakeLLM("openai") as fake:
        g = gateway_factory(llm_config({"p": fake}) | {"gateway": {"tools": {"allow": ["exec"]}}})
        # allowed over HTTP, but chela has no such tool: still not available
        err(invoke(g, {"tool": "exec"}), 404, "not_found")
        assert invoke(g, {"tool": "current_time"}).status_code == 200
        # input the tool turns down (after a lookup in the thread pool) is the caller's error
        assert "Mars/Base" in err(invoke(g, {"name": "current_time", "args": {"timezone": "Mars/Base"}}), 400,
                                  "tool_error")


def test_websocket_tools_invoke(gateway_factory):
    """The RPC face (operator.write): the same tools and checks, OpenClaw's
    protocol-shaped payloads in a successful res frame."""
    from test_ws_protocol import TOKEN, connect_params, connected, ws_config
    with FakeLLM("anthropic") as fake:
        g = gateway_factory(ws_config(fake, {"gateway": {"auth": {"token": TOKEN}, "tools": {"deny": ["web_fetch"]}}}))
        c = connected(g)
        try:
            r = c.call("tools.invoke", {"name": "current_time", "args": {"timezone": "UTC"},
                                        "idempotencyKey": "k1", "sessionKey": "agent:main:main"})
            assert r["ok"] is True, r
            p = r["payload"]
            assert p["ok"] is True and p["toolName"] == "current_time" and p["source"] == "core", p
            assert "UTC" in p["output"]["content"][0]["text"] and p["output"]["details"]["utc"].endswith("Z")
            fails = {
                "web_fetch": ({"name": "web_fetch", "args": {"url": "https://example.com/"}}, "not_found"),
                "exec": ({"name": "exec"}, "not_found"),
                "current_time": ({"name": "current_time", "args": {"timezone": 5}}, "internal_error"),
            }
            for name, (params, code) in fails.items():
                r = c.call("tools.invoke", params)
                assert r["ok"] is True and r["payload"]["ok"] is False, r
                assert r["payload"]["toolName"] == name and r["payload"]["error"]["code"] == code, r
            r = c.call("tools.invoke", {"name": "current_time", "agentId": "ops"})
            assert r["payload"]["error"]["code"] == "validation_error", r
            # the closed params schema of the protocol
            r = c.call("tools.invoke", {"name": "current_time", "bogus": 1})
            assert r["ok"] is False and "unexpected property 'bogus'" in r["error"]["message"], r
        finally:
            c.close()
        # operator.read is not enough
        c = connected(g, connect_params(scopes=("operator.read",)))
        try:
            r = c.call("tools.invoke", {"name": "current_time"})
            assert r["ok"] is False and "operator.write" in json.dumps(r["error"]), r
        finally:
            c.close()
