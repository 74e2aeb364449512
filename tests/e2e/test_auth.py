"""Authentication and scopes (contract: middleware order, Credentials)."""

import datetime
import json
import time

import pytest

from e2elib import TOKEN_RE, assert_error, http, wait_ok

FAKE = "oc_tok_" + "A" * 43


def assert_401(r):
    assert_error(r, 401, "unauthorized")
    assert r.headers.get("www-authenticate", "").split()[0] == "Bearer", r.headers


def test_admin_token_format(gw):
    assert TOKEN_RE.match(gw.admin_token), gw.admin_token


def test_missing_token_401(gw):
    assert_401(http(gw, "GET", "/health/detail"))
    assert_401(http(gw, "GET", "/api/v1/tokens"))


@pytest.mark.parametrize("value", [f"Bearer {FAKE}", "Bearer ", "Bearer not-a-token",
                                   "Basic dXNlcjpwYXNz", FAKE])
def test_wrong_token_401(gw, value):
    assert_401(http(gw, "GET", "/health/detail", headers={"Authorization": value}))


def test_wrong_x_openclaw_token_401(gw):
    assert_401(http(gw, "GET", "/health/detail", headers={"x-openclaw-token": FAKE}))


def test_admin_token_bearer(gw):
    r = http(gw, "GET", "/health/detail", token=gw.admin_token)
    assert r.status_code == 200, r.text


def test_x_openclaw_token_header(gw):
    r = http(gw, "GET", "/health/detail", headers={"x-openclaw-token": gw.admin_token})
    assert r.status_code == 200, r.text
    r = http(gw, "GET", "/api/v1/tokens", headers={"X-OpenClaw-Token": gw.admin_token})
    assert r.status_code == 200, r.text


def test_token_in_query_400(gw):
    r = http(gw, "GET", f"/health/detail?token={gw.admin_token}")
    assert_error(r, 400, "token_in_query")
    # Even together with a valid header.
    r = http(gw, "GET", f"/health/detail?token={gw.admin_token}", token=gw.admin_token)
    assert_error(r, 400, "token_in_query")
    # And never logged.
    time.sleep(0.2)
    assert gw.admin_token not in gw.stderr()


def test_revoked_token_refused_within_1s(gw):
    created = gw.create_token("to-revoke", "read")
    tok = created["token"]
    assert wait_ok(gw, "/health/detail", tok).status_code == 200
    p = gw.cli("token", "revoke", "to-revoke")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "Revoked to-revoke", p.stdout
    t0 = time.monotonic()
    deadline = t0 + 3.0
    status = None
    while time.monotonic() < deadline:
        r = http(gw, "GET", "/health/detail", token=tok)
        status = r.status_code
        if status == 401:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    assert status == 401, f"revoked token still accepted after {elapsed:.2f}s"
    assert_401(r)
    assert elapsed <= 1.5, f"revoked token refused only after {elapsed:.2f}s (contract: 1 s)"


def test_revoke_by_token_value(gw):
    tok = gw.create_token("revoke-by-value", "read")["token"]
    assert wait_ok(gw, "/health/detail", tok).status_code == 200
    p = gw.cli("token", "revoke", tok)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "Revoked revoke-by-value", p.stdout
    ok = False
    for _ in range(30):
        if http(gw, "GET", "/health/detail", token=tok).status_code == 401:
            ok = True
            break
        time.sleep(0.1)
    assert ok


def test_expired_token_401(gw):
    p = gw.cli("token", "create", "--name", "short-lived", "--scope", "read", "--expires", "1s", "--json")
    if p.returncode == 2:
        pytest.skip(f"the CLI does not accept --expires 1s (exit 2: {p.stderr.strip()})")
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    assert j["expiresAt"], j
    exp = datetime.datetime.fromisoformat(j["expiresAt"].replace("Z", "+00:00"))
    now = datetime.datetime.now(datetime.timezone.utc)
    assert -5 <= (exp - now).total_seconds() <= 2, (j["expiresAt"], now)
    tok = j["token"]
    # Valid for about a second; then refused.
    deadline = time.monotonic() + 4.0
    seen = []
    while time.monotonic() < deadline:
        r = http(gw, "GET", "/health/detail", token=tok)
        seen.append(r.status_code)
        if r.status_code == 401:
            break
        time.sleep(0.2)
    assert seen[-1] == 401, f"expired token still accepted: {seen}"
    assert_401(r)


def test_chat_token_on_read_route_403(gw):
    tok = gw.create_token("chat-only", "chat")["token"]
    r = wait_ok(gw, "/health/detail", tok)
    j = assert_error(r, 403, "forbidden")
    assert "read" in j["message"], j
    assert j.get("missingScope") == "read", j


def test_read_token_on_admin_route_403(gw):
    tok = gw.create_token("read-only", "read")["token"]
    r = wait_ok(gw, "/api/v1/tokens", tok)
    j = assert_error(r, 403, "forbidden")
    assert "admin" in j["message"], j
    assert j.get("missingScope") == "admin", j
    r = http(gw, "POST", "/api/v1/tokens", token=tok, json={"name": "x", "scope": ["read"]})
    j = assert_error(r, 403, "forbidden")
    assert j.get("missingScope") == "admin"


def test_scopes_granted(gw):
    tok = gw.create_token("multi", "chat,send,read")["token"]
    r = wait_ok(gw, "/health/detail", tok)
    assert r.status_code == 200, r.text
    assert http(gw, "GET", "/metrics", token=tok).status_code == 200


def test_admin_token_has_every_scope(gw):
    for path in ("/health/detail", "/metrics", "/api/v1/tokens"):
        r = http(gw, "GET", path, token=gw.admin_token)
        assert r.status_code == 200, (path, r.text)


def test_config_token_and_password(gateway_factory):
    secret = "oc_tok_" + "c" * 43
    g = gateway_factory({
        "gateway": {"auth": {"token": secret}},
        "api": {"auth": {"tokens": [
            {"name": "cfg-reader", "token": "oc_tok_" + "r" * 43, "scope": ["read"], "rateLimit": 120},
        ]}},
    })
    # A configured gateway token: no admin banner.
    assert g.admin_token is None, g.stdout()
    assert "Admin token" not in g.stdout()
    assert http(g, "GET", "/api/v1/tokens", token=secret).status_code == 200
    r = http(g, "GET", "/health/detail", token="oc_tok_" + "r" * 43)
    assert r.status_code == 200, r.text
    assert r.headers.get("x-ratelimit-limit") == "120", r.headers
    r = http(g, "GET", "/api/v1/tokens", token="oc_tok_" + "r" * 43)
    assert assert_error(r, 403, "forbidden")["missingScope"] == "admin"


def test_env_gateway_token(gateway_factory):
    secret = "oc_tok_" + "e" * 43
    g = gateway_factory(env={"CHELA_GATEWAY_TOKEN": secret})
    assert g.admin_token is None, g.stdout()
    assert http(g, "GET", "/api/v1/tokens", token=secret).status_code == 200
    assert_401(http(g, "GET", "/api/v1/tokens", token="oc_tok_" + "f" * 43))
    assert secret not in g.stderr()


def test_openclaw_env_gateway_token(gateway_factory):
    secret = "oc_tok_" + "o" * 43
    g = gateway_factory(env={"OPENCLAW_GATEWAY_TOKEN": secret})
    assert g.admin_token is None, g.stdout()
    assert http(g, "GET", "/health/detail", token=secret).status_code == 200
