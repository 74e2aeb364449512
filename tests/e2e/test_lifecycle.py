"""Start, stop, signals, state directory and startup output (contract:
chela gateway)."""

import json
import os
import signal
import socket
import stat
import time

import pytest

from e2elib import (ADMIN_RE, HOST, TOKEN_RE, RawConn, free_port, http, request_bytes,
                    sanitizer_lines, wait_for)


def spawn_and_wait_exit(g, timeout=5.0):
    g.spawn()
    t0 = time.monotonic()
    rc = g.wait(timeout)
    elapsed = time.monotonic() - t0
    if rc is None:
        g.kill()
        pytest.fail(f"gateway still running after {timeout}s; stderr:\n{g.stderr()}")
    return rc, elapsed


def chela_lines(text):
    return [l for l in text.splitlines() if l.startswith("chela: ")]


def test_port_in_use(gateway_factory):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, 0))
        s.listen(1)
        port = s.getsockname()[1]
        g = gateway_factory.new(port=port)
        rc, elapsed = spawn_and_wait_exit(g)
    assert rc == 1, (rc, g.stderr())
    assert elapsed < 3.0, elapsed
    lines = chela_lines(g.stderr())
    assert len(lines) == 1, g.stderr()
    assert f"127.0.0.1:{port}" in lines[0], lines
    assert "chela listening" not in g.stdout()
    assert not (g.state / "gateway.json").exists()


def test_two_gateways_same_port(gateway_factory):
    a = gateway_factory()
    b = gateway_factory.new(port=a.port)
    rc, _ = spawn_and_wait_exit(b)
    assert rc == 1
    assert f"127.0.0.1:{a.port}" in chela_lines(b.stderr())[0]
    assert http(a, "GET", "/health").status_code == 200


def test_state_dir_unusable(gateway_factory, tmp_path):
    f = tmp_path / "x" / "file"
    f.parent.mkdir()
    f.write_text("not a directory")
    g = gateway_factory.new(state=f / "sub", base=False)
    rc, elapsed = spawn_and_wait_exit(g)
    assert rc == 1, (rc, g.stderr())
    assert elapsed < 3.0
    lines = chela_lines(g.stderr())
    assert len(lines) == 1, g.stderr()
    assert str(f) in lines[0], lines


def test_state_dir_is_a_file(gateway_factory, tmp_path):
    f = tmp_path / "plainfile"
    f.write_text("x")
    g = gateway_factory.new(state=f, base=False)
    rc, _ = spawn_and_wait_exit(g)
    assert rc == 1, (rc, g.stderr())
    assert len(chela_lines(g.stderr())) == 1, g.stderr()


def test_newer_database_refused(gateway_factory, tmp_path):
    import sqlite3
    state = tmp_path / "newdb"
    state.mkdir(mode=0o700)
    db = sqlite3.connect(state / "chela.db")
    db.execute("PRAGMA user_version = 9999")
    db.commit()
    db.close()
    g = gateway_factory.new(state=state, base=False)
    rc, _ = spawn_and_wait_exit(g)
    assert rc == 1, (rc, g.stderr())
    lines = chela_lines(g.stderr())
    assert len(lines) == 1, g.stderr()
    assert "9999" in lines[0], lines


def test_state_dir_created_0700_and_default_config(gateway_factory, tmp_path):
    state = tmp_path / "fresh"
    g = gateway_factory.new(state=state, base=False).start()
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    cfg = state / "chela.json5"
    assert cfg.exists(), "no default config written on first start"
    assert g.config_line == str(cfg), g.stdout()
    assert g.admin_token and TOKEN_RE.match(g.admin_token)
    assert (state / "chela.db").exists()
    # The written default validates and says nothing secret.
    from e2elib import run_cli
    p = run_cli(None, "config", "validate", "--config", cfg, home=tmp_path)
    assert p.returncode == 0, p.stderr
    assert g.admin_token not in cfg.read_text()


def test_admin_token_printed_once(gateway_factory, tmp_path):
    state = tmp_path / "once"
    g1 = gateway_factory.new(state=state, base=False).start()
    out = g1.stdout().splitlines()
    admin = [l for l in out if ADMIN_RE.match(l)]
    assert len(admin) == 1, out
    assert out[-1].startswith("chela listening on http://127.0.0.1:"), out
    tok = g1.admin_token
    assert g1.stop() == 0
    assert tok not in g1.stderr()

    g2 = gateway_factory.new(state=state, base=False).start()
    assert g2.admin_token is None, g2.stdout()
    assert "Admin token" not in g2.stdout()
    assert "oc_tok_" not in g2.stdout()
    assert g2.stdout().splitlines()[-1].startswith("chela listening on ")
    # The first start's admin token still works.
    assert http(g2, "GET", "/api/v1/tokens", token=tok).status_code == 200


def test_gateway_json(gw):
    path = gw.state / "gateway.json"
    assert path.exists()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    j = json.loads(path.read_text())
    assert set(j) >= {"pid", "url", "port", "localToken"}, j
    assert j["pid"] == gw.pid
    assert j["port"] == gw.port
    assert j["url"] == f"http://127.0.0.1:{gw.port}"
    assert TOKEN_RE.match(j["localToken"]), j
    assert j["localToken"] != gw.admin_token
    r = http(gw, "GET", "/api/v1/tokens", token=j["localToken"])
    assert r.status_code == 200, r.text
    assert j["localToken"] not in r.text
    assert j["localToken"] not in gw.stderr()
    assert gw.stop() == 0
    assert not path.exists(), "gateway.json left behind after a clean exit"


def test_local_token_dies_with_gateway(gateway_factory, tmp_path):
    state = tmp_path / "lt"
    g1 = gateway_factory.new(state=state).start()
    local = g1.gateway_json()["localToken"]
    assert g1.stop() == 0
    g2 = gateway_factory.new(state=state).start()
    assert http(g2, "GET", "/api/v1/tokens", token=local).status_code == 401


@pytest.mark.signals
def test_sigterm_finishes_in_flight_request(gw):
    body = json.dumps({"name": "in-flight", "scope": ["read"]}).encode()
    half = len(body) // 2
    c = RawConn(gw.port)
    try:
        c.send(request_bytes("POST", "/api/v1/tokens", {
            "Authorization": f"Bearer {gw.admin_token}", "Content-Type": "application/json",
            "Content-Length": str(len(body)), "X-Request-Id": "inflight-1"}) + body[:half])
        time.sleep(0.3)
        gw.signal(signal.SIGTERM)
        time.sleep(0.5)
        assert gw.alive(), "gateway exited with a request in flight"
        # No new connections are accepted while draining.
        refused = False
        try:
            with socket.create_connection((HOST, gw.port), timeout=1) as s2:
                s2.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                s2.settimeout(1)
                refused = s2.recv(100) == b""
        except (ConnectionRefusedError, ConnectionResetError, socket.timeout):
            refused = True
        assert refused, "a new connection was served after SIGTERM"
        c.send(body[half:])
        r = c.read_response(timeout=5)
        assert r.status == 201, r
        assert r.header("x-request-id") == "inflight-1"
        j = r.json()
        assert j["name"] == "in-flight" and TOKEN_RE.match(j["token"])
    finally:
        c.close()
    rc = gw.wait(15)
    assert rc == 0, (rc, gw.stderr()[-2000:])
    assert not (gw.state / "gateway.json").exists()
    # The token created during shutdown was flushed to the store.
    from e2elib import run_cli
    p = run_cli(gw.state, "token", "list", "--json", home=gw.home)
    assert "in-flight" in [t["name"] for t in json.loads(p.stdout)["tokens"]]


@pytest.mark.signals
def test_sigterm_idle_exits_fast(gw):
    with RawConn(gw.port) as c:  # an idle keep-alive connection must not hold shutdown
        c.send(request_bytes("GET", "/health"))
        c.read_response()
        t0 = time.monotonic()
        gw.signal(signal.SIGTERM)
        rc = gw.wait(5)
    assert rc == 0, rc
    assert time.monotonic() - t0 < 2.0


@pytest.mark.signals
@pytest.mark.slow
def test_shutdown_grace_expires(gateway_factory):
    g = gateway_factory({"limits": {"shutdownGraceMs": 1000, "bodyTimeoutMs": 30000}})
    c = RawConn(g.port)
    try:
        c.send(request_bytes("POST", "/api/v1/tokens", {
            "Authorization": f"Bearer {g.admin_token}", "Content-Type": "application/json",
            "Content-Length": "100"}) + b'{"na')
        time.sleep(0.2)
        t0 = time.monotonic()
        g.signal(signal.SIGTERM)
        rc = g.wait(10)
        elapsed = time.monotonic() - t0
    finally:
        c.close()
    assert rc == 0, rc
    assert 0.8 <= elapsed <= 3.0, f"exit {elapsed:.2f}s after SIGTERM with shutdownGraceMs 1000"


@pytest.mark.signals
def test_sigint_exits_0(gw):
    gw.signal(signal.SIGINT)
    assert gw.wait(10) == 0


@pytest.mark.signals
def test_sighup_keeps_serving(gw):
    with RawConn(gw.port) as c:
        c.send(request_bytes("GET", "/health"))
        assert c.read_response().status == 200
        gw.signal(signal.SIGHUP)
        time.sleep(0.3)
        assert gw.alive()
        c.send(request_bytes("GET", "/health"))
        assert c.read_response().status == 200, "keep-alive connection broken by SIGHUP"
    for _ in range(3):
        gw.signal(signal.SIGHUP)
        time.sleep(0.1)
    assert http(gw, "GET", "/health").status_code == 200
    assert http(gw, "GET", "/health/detail", token=gw.admin_token).status_code == 200


@pytest.mark.signals
def test_sighup_reloads_allowlist_and_tokens(gateway_factory):
    from e2elib import deep_merge, write_config
    from conftest import BASE_CONFIG
    tok = "oc_tok_" + "h" * 43
    g = gateway_factory({"api": {"security": {"allowedIPs": ["127.0.0.0/8"]}}})
    assert http(g, "GET", "/health").status_code == 200
    assert http(g, "GET", "/health/detail", token=tok).status_code == 401
    write_config(g.config_path, deep_merge(BASE_CONFIG, {"api": {
        "security": {"allowedIPs": ["127.0.0.0/8"]},
        "auth": {"tokens": [{"name": "hup", "token": tok, "scope": ["read"]}]}}}))
    g.signal(signal.SIGHUP)
    assert wait_for(lambda: http(g, "GET", "/health/detail", token=tok).status_code == 200, 3.0), \
        "api.auth.tokens not reloaded on SIGHUP"
    write_config(g.config_path, deep_merge(BASE_CONFIG, {"api": {"security": {"allowedIPs": ["10.0.0.0/8"]}}}))
    g.signal(signal.SIGHUP)
    assert wait_for(lambda: http(g, "GET", "/health").status_code == 403, 3.0), \
        "allowedIPs not reloaded on SIGHUP"
    # Back, so teardown can stop it cleanly either way.
    write_config(g.config_path, BASE_CONFIG)
    g.signal(signal.SIGHUP)
    assert wait_for(lambda: http(g, "GET", "/health").status_code == 200, 3.0)


@pytest.mark.signals
def test_sighup_invalid_config_keeps_old(gateway_factory):
    g = gateway_factory()
    g.config_path.write_text("{ gateway: { bogus: 1 } }")
    g.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert g.alive(), "an invalid config on SIGHUP killed the gateway"
    assert http(g, "GET", "/health").status_code == 200
    assert "gateway.bogus" in g.stderr()


def test_env_port(gateway_factory):
    port = free_port()
    g = gateway_factory.new(port=None, env={"CHELA_GATEWAY_PORT": str(port)}).start()
    assert g.port == port
    port2 = free_port()
    g2 = gateway_factory.new(port=port2, env={"OPENCLAW_GATEWAY_PORT": str(port)}).start()
    assert g2.port == port2  # --port wins


def test_no_auth_non_loopback_refused(gateway_factory):
    g = gateway_factory.new({"gateway": {"auth": {"mode": "none"}}}, bind="0.0.0.0", port=0)
    rc, _ = spawn_and_wait_exit(g)
    assert rc == 2, (rc, g.stderr())
    assert "chela listening" not in g.stdout()


def test_stdout_is_only_the_banner(gateway_factory):
    """Stdout has the startup lines, the listening line last, and nothing
    after it: requests, logs and shutdown go to stderr."""
    g = gateway_factory()
    at_start = g.stdout()
    for _ in range(5):
        http(g, "GET", "/health")
    http(g, "GET", "/nope")
    assert g.stop() == 0
    assert g.stdout() == at_start
    lines = at_start.splitlines()
    assert lines[-1].startswith("chela listening on "), lines
    assert len([l for l in lines if ADMIN_RE.match(l)]) == 1, lines
    assert len([l for l in lines if l.startswith("Config: ")]) == 1, lines
    assert "access " not in at_start
    assert not sanitizer_lines(g.stderr())
