"""IP allowlist and CORS (contract: middleware order).  The allowlist
applies to every route, /health included; CORS runs before
authentication, so a preflight needs no token."""

import pytest

from e2elib import assert_error, http

ORIGIN = "https://app.example.com"
OTHER = "https://evil.example.net"


def cors_config(**extra):
    c = {"enabled": True, "origins": [ORIGIN], "methods": ["GET", "POST", "DELETE"]}
    c.update(extra)
    return {"api": {"security": {"cors": c}}}


@pytest.mark.parametrize("path", ["/health", "/ready", "/health/detail", "/api/v1/tokens", "/nope"])
def test_allowlist_refuses_outside(gateway_factory, path):
    g = gateway_factory({"api": {"security": {"allowedIPs": ["10.0.0.0/8"]}}})
    r = http(g, "GET", path, token=g.admin_token)
    assert_error(r, 403, "forbidden_ip")
    assert r.headers.get("x-request-id")


@pytest.mark.parametrize("cidrs", [["127.0.0.0/8"], ["10.0.0.0/8", "127.0.0.0/8"]])
def test_allowlist_allows_inside(gateway_factory, cidrs):
    g = gateway_factory({"api": {"security": {"allowedIPs": cidrs}}})
    assert http(g, "GET", "/health").status_code == 200
    assert http(g, "GET", "/health/detail", token=g.admin_token).status_code == 200


def test_allowlist_single_address(gateway_factory):
    g = gateway_factory({"api": {"security": {"allowedIPs": ["127.0.0.1"]}}})
    assert http(g, "GET", "/health").status_code == 200
    g2 = gateway_factory({"api": {"security": {"allowedIPs": ["127.0.0.2"]}}})
    assert_error(http(g2, "GET", "/health"), 403, "forbidden_ip")


def test_allowlist_before_auth(gateway_factory):
    """Outside the list, even a bad token gets 403 forbidden_ip, not 401."""
    g = gateway_factory({"api": {"security": {"allowedIPs": ["10.0.0.0/8"]}}})
    assert_error(http(g, "GET", "/health/detail", token="oc_tok_" + "x" * 43), 403, "forbidden_ip")


def test_cors_preflight_allowed(gateway_factory):
    g = gateway_factory(cors_config())
    r = http(g, "OPTIONS", "/api/v1/tokens", headers={
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    })
    assert r.status_code == 204, (r.status_code, r.text, r.headers)
    assert r.headers.get("access-control-allow-origin") == ORIGIN
    methods = [m.strip().upper() for m in r.headers.get("access-control-allow-methods", "").split(",")]
    assert "POST" in methods, r.headers
    hdrs = [h.strip().lower() for h in r.headers.get("access-control-allow-headers", "").split(",")]
    assert "authorization" in hdrs and "content-type" in hdrs, r.headers
    assert int(r.headers.get("access-control-max-age", "-1")) >= 0, r.headers
    vary = [v.strip().lower() for v in r.headers.get("vary", "").split(",")]
    assert "origin" in vary, r.headers
    assert r.content == b""


def test_cors_preflight_refused_origin(gateway_factory):
    g = gateway_factory(cors_config())
    r = http(g, "OPTIONS", "/api/v1/tokens", headers={
        "Origin": OTHER,
        "Access-Control-Request-Method": "POST",
    })
    assert_error(r, 403, "cors_origin_denied")
    assert "access-control-allow-origin" not in r.headers, r.headers


def test_cors_simple_request(gateway_factory):
    g = gateway_factory(cors_config())
    r = http(g, "GET", "/health", headers={"Origin": ORIGIN})
    assert r.status_code == 200
    assert r.headers.get("access-control-allow-origin") == ORIGIN
    r = http(g, "GET", "/health", headers={"Origin": OTHER})
    assert "access-control-allow-origin" not in r.headers, r.headers
    r = http(g, "GET", "/health")
    assert "access-control-allow-origin" not in r.headers, r.headers


def test_cors_authenticated_simple_request(gateway_factory):
    g = gateway_factory(cors_config())
    r = http(g, "GET", "/health/detail", token=g.admin_token, headers={"Origin": ORIGIN})
    assert r.status_code == 200
    assert r.headers.get("access-control-allow-origin") == ORIGIN
    # Errors from a listed origin carry ACAO too, so the browser can read them.
    r = http(g, "GET", "/health/detail", headers={"Origin": ORIGIN})
    assert r.status_code == 401
    assert r.headers.get("access-control-allow-origin") == ORIGIN


def test_cors_default_refuses_every_origin(gw):
    r = http(gw, "OPTIONS", "/api/v1/tokens", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers, r.headers
    assert r.status_code in (403, 404, 405), r.status_code
