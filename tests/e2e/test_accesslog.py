"""Access log on stderr: one line per request, never a secret or a query
string (contract: Access log)."""

import json
import re

import pytest

from e2elib import RawConn, http, request_bytes

TEXT_RE = re.compile(
    r"access id=(?P<id>\S+) method=(?P<method>\S+) path=(?P<path>\S+) status=(?P<status>\d{3}) "
    r"bytes=(?P<bytes>\d+) latency_us=(?P<lat>\d+) token=(?P<token>\S+)")


def access_lines(text):
    return [m.groupdict() for m in (TEXT_RE.search(l) for l in text.splitlines()) if m]


def wait_access(g, rid, timeout=3.0):
    def find(text):
        m = [a for a in access_lines(text) if a["id"] == rid]
        return m or None
    return g.wait_stderr(find, timeout)


def test_access_line_anonymous(gw):
    r = http(gw, "GET", "/health?secretparam=zzz-query-value", headers={"X-Request-Id": "log-anon-1"})
    assert r.status_code == 200
    m = wait_access(gw, "log-anon-1")
    assert m and len(m) == 1, gw.stderr()[-2000:]
    a = m[0]
    assert a["method"] == "GET" and a["path"] == "/health" and a["status"] == "200"
    assert int(a["bytes"]) == len(r.content)
    assert a["token"] == "-"
    assert int(a["lat"]) < 5_000_000
    assert "zzz-query-value" not in gw.stderr()
    assert "secretparam" not in gw.stderr()


def test_access_line_token_name_no_secret(gw):
    tok = gw.create_token("log-named", "read")["token"]
    from e2elib import wait_ok
    wait_ok(gw, "/health/detail", tok)
    r = http(gw, "GET", "/health/detail", token=tok, headers={"X-Request-Id": "log-tok-1"})
    assert r.status_code == 200
    m = wait_access(gw, "log-tok-1")
    assert m and m[0]["token"] == "log-named" and m[0]["path"] == "/health/detail", m
    err = gw.stderr()
    assert tok not in err
    assert gw.admin_token not in err
    assert tok[7:20] not in err  # not even a fragment of the secret part


def test_access_line_errors(gw):
    http(gw, "GET", "/nope", headers={"X-Request-Id": "log-404"})
    http(gw, "GET", "/health/detail", headers={"X-Request-Id": "log-401",
                                              "Authorization": f"Bearer {gw.admin_token}x"})
    a = wait_access(gw, "log-404")
    assert a and a[0]["status"] == "404"
    b = wait_access(gw, "log-401")
    assert b and b[0]["status"] == "401" and b[0]["token"] == "-"
    assert gw.admin_token not in gw.stderr()


def test_one_line_per_request(gw):
    with RawConn(gw.port) as c:
        c.send(b"".join(request_bytes("GET", "/health", {"X-Request-Id": f"log-pipe-{i}"})
                        for i in range(5)))
        for _ in range(5):
            c.read_response()
    for i in range(5):
        m = wait_access(gw, f"log-pipe-{i}")
        assert m and len(m) == 1, (i, m)


def test_admin_token_only_on_stdout_banner(gw):
    http(gw, "GET", "/api/v1/tokens", token=gw.admin_token, headers={"X-Request-Id": "log-admin"})
    http(gw, "POST", "/api/v1/tokens", token=gw.admin_token,
         json={"name": "log-created", "scope": ["read"]}, headers={"X-Request-Id": "log-post"})
    assert wait_access(gw, "log-post")
    assert gw.admin_token not in gw.stderr()
    out = gw.stdout()
    assert out.count(gw.admin_token) == 1
    line = [l for l in out.splitlines() if gw.admin_token in l]
    assert line[0] == f"Admin token (shown once, store it now): {gw.admin_token}"


def test_json_log_format(gateway_factory):
    g = gateway_factory(args=("--log-format", "json"))
    http(g, "GET", "/health?q=hidden-query", headers={"X-Request-Id": "json-log-1"})

    def find(text):
        for l in text.splitlines():
            l = l.strip()
            if not l.startswith("{"):
                continue
            try:
                j = json.loads(l)
            except ValueError:
                continue
            if j.get("id") == "json-log-1":
                return j
        return None
    j = g.wait_stderr(find, 3.0)
    assert j, g.stderr()[-2000:]
    assert j["method"] == "GET" and j["path"] == "/health"
    assert j["status"] == 200 or j["status"] == "200"
    for k in ("bytes", "latency_us", "token"):
        assert k in j, j
    assert "hidden-query" not in g.stderr()
    # Every stderr line is JSON in this mode.
    bad = [l for l in g.stderr().splitlines() if l.strip() and not l.lstrip().startswith("{")]
    assert not bad, bad[:5]


@pytest.mark.parametrize("level", ["debug", "error"])
def test_log_level_flag(gateway_factory, level):
    g = gateway_factory(args=("--log-level", level))
    assert http(g, "GET", "/health").status_code == 200
