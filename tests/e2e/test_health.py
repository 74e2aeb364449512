"""Health, readiness, detail, routing basics and the headers every response
carries (contract: HTTP routes)."""

import json

import pytest

from e2elib import (RawConn, assert_common_headers, assert_error, http, raw_request,
                    request_bytes, wait_ok)

HEALTH_PATHS = ["/health", "/healthz", "/api/health"]


@pytest.mark.parametrize("path", HEALTH_PATHS)
def test_health_shape(gw, path):
    r = http(gw, "GET", path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert_common_headers(r)
    j = r.json()
    assert set(j) == {"ok", "status", "version", "uptimeMs"}, j
    assert j["ok"] is True
    assert j["status"] == "live"
    assert j["version"] == "0.1.0"
    assert isinstance(j["uptimeMs"], int) and not isinstance(j["uptimeMs"], bool)
    assert 0 <= j["uptimeMs"] < 600_000


def test_uptime_grows(gw):
    import time
    a = http(gw, "GET", "/health").json()["uptimeMs"]
    time.sleep(0.3)
    b = http(gw, "GET", "/health").json()["uptimeMs"]
    assert b - a >= 250, (a, b)


@pytest.mark.parametrize("path", HEALTH_PATHS)
def test_health_head(gw, path):
    with RawConn(gw.port) as c:
        c.send(request_bytes("HEAD", path))
        r = c.read_response(head_request=True)
        assert r.status == 200
        assert_common_headers(r)
        # No body follows a HEAD response: the next response on the same
        # connection must start right after the head.
        c.send(request_bytes("GET", path, {"X-Request-Id": "after-head"}))
        r2 = c.read_response()
        assert r2.status == 200, r2
        assert r2.header("x-request-id") == "after-head"
        assert r2.json()["status"] == "live"
        # HEAD's Content-Length, when given, is GET's (same digits count may
        # differ only in uptimeMs, so compare loosely).
        if r.header("content-length") is not None:
            assert abs(int(r.header("content-length")) - len(r2.body)) <= 3


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_health_wrong_method_405(gw, method):
    r = http(gw, method, "/health", data=b"")
    j = assert_error(r, 405, "method_not_allowed")
    assert r.headers.get("allow") == "GET, HEAD", r.headers
    assert_common_headers(r)
    assert j


@pytest.mark.parametrize("path", ["/ready", "/readyz"])
def test_ready(gw, path):
    r = http(gw, "GET", path)
    assert r.status_code == 200, r.text
    assert r.json() == {"ready": True}
    assert_common_headers(r)


@pytest.mark.parametrize("path", ["/startup", "/startupz"])
def test_startup_probe(gw, path):
    """OpenClaw v4's startup probe: public, GET and HEAD only."""
    r = http(gw, "GET", path)
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["ok"] is True and b["status"] == "started" and b["version"] and b["uptimeMs"] >= 0, b
    assert http(gw, "HEAD", path).status_code == 200
    r = http(gw, "POST", path, data=b"")
    assert r.status_code == 405 and r.headers.get("allow") == "GET, HEAD"


def test_unknown_path_404(gw):
    r = http(gw, "GET", "/no/such/thing")
    assert_error(r, 404, "not_found")
    assert_common_headers(r)


def test_request_id_echo_and_generated(gw):
    r = http(gw, "GET", "/health", headers={"X-Request-Id": "e2e-req-42"})
    assert r.headers["x-request-id"] == "e2e-req-42"
    a = http(gw, "GET", "/health").headers["x-request-id"]
    b = http(gw, "GET", "/health").headers["x-request-id"]
    assert a and b and a != b, (a, b)
    # Not sane (far too long): replaced by a generated id, never echoed.
    long_id = "x" * 500
    r = http(gw, "GET", "/health", headers={"X-Request-Id": long_id})
    assert r.status_code == 200
    assert r.headers["x-request-id"] and r.headers["x-request-id"] != long_id
    # Not sane (control characters cannot be sent by requests; use raw).
    resp = raw_request(gw.port, request_bytes("GET", "/health", {"X-Request-Id": "a\x01b"}))
    assert resp.status in (200, 400)
    assert resp.header("x-request-id") and resp.header("x-request-id") != "a\x01b"


def test_error_responses_have_common_headers(gw):
    r = http(gw, "GET", "/health/detail")
    assert_common_headers(r)
    r = http(gw, "GET", "/nope")
    assert_common_headers(r)


DETAIL_SHAPE = {
    "ok": bool, "version": str, "uptimeMs": int, "pid": int, "configPath": (str, type(None)),
    "stateDir": str,
    "connections": {"open": int, "total": int, "rejected": int},
    "requests": {"total": int},
    "memory": {"rssBytes": int, "rssAnonBytes": int, "heapBytes": int},
    "eventLoop": {"lagMs": (int, float), "lagMaxMs": (int, float), "busyPoll": dict},
    "store": {"ok": bool, "path": str, "schemaVersion": int, "writeQueueDepth": int,
              "writeQueueMax": int, "commits": int, "writes": int, "walWrites": int,
              "walPieces": int, "walDropped": int, "writerYields": int, "busyPoll": dict},
    "tokens": {"live": int},
}


def check_shape(obj, shape, where="$"):
    assert isinstance(obj, dict), f"{where} is not an object: {obj!r}"
    missing = set(shape) - set(obj)
    assert not missing, f"{where} lacks {sorted(missing)}: {obj}"
    for k, t in shape.items():
        v = obj[k]
        if isinstance(t, dict):
            check_shape(v, t, f"{where}.{k}")
        else:
            assert isinstance(v, t) and not (isinstance(v, bool) and t in (int, (int, float))), \
                f"{where}.{k} = {v!r} is not {t}"


def test_health_detail_with_read_token(gw):
    tok = gw.create_token("detail-reader", "read")["token"]
    r = wait_ok(gw, "/health/detail", tok)
    assert r.status_code == 200, r.text
    j = r.json()
    check_shape(j, DETAIL_SHAPE)
    assert j["ok"] is True
    assert j["version"] == "0.1.0"
    assert j["pid"] == gw.pid
    assert j["stateDir"] == str(gw.state)
    assert j["connections"]["open"] >= 1
    assert j["connections"]["total"] >= j["connections"]["open"]
    assert j["requests"]["total"] >= 1
    assert j["memory"]["rssBytes"] > 0
    assert 0 < j["memory"]["rssAnonBytes"] <= j["memory"]["rssBytes"]
    assert j["store"]["ok"] is True
    assert j["store"]["path"] == str(gw.state / "chela.db")
    assert j["store"]["schemaVersion"] >= 1
    # Creating the token committed: each commit is one write of its WAL
    # frames, every frame two pieces (header and page).
    assert j["store"]["walWrites"] >= 1
    assert j["store"]["walPieces"] >= 2 * j["store"]["walWrites"]
    assert j["tokens"]["live"] >= 1
    assert r.headers.get("x-ratelimit-limit") is not None


def test_health_detail_without_token_401(gw):
    r = http(gw, "GET", "/health/detail")
    assert_error(r, 401, "unauthorized")
    assert r.headers.get("www-authenticate", "").startswith("Bearer")


def test_health_detail_counts_connections(gw):
    """connections.total moves by exactly the connections opened."""
    tok = gw.admin_token
    with RawConn(gw.port) as a:
        def detail():
            a.send(request_bytes("GET", "/health/detail", {"Authorization": f"Bearer {tok}"}))
            r = a.read_response()
            assert r.status == 200, r
            return r.json()
        before = detail()
        with RawConn(gw.port) as b:
            for i in range(20):
                b.send(request_bytes("GET", "/health"))
                assert b.read_response().status == 200
        after = detail()
    assert after["connections"]["total"] - before["connections"]["total"] == 1, (before, after)
    assert after["requests"]["total"] - before["requests"]["total"] == 21, (before, after)


def test_json_bodies_are_json(gw):
    for p in ("/health", "/ready", "/nope"):
        r = http(gw, "GET", p)
        json.loads(r.text)
