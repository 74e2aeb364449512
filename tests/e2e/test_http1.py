"""HTTP/1.x connection behaviour over raw sockets: pipelining, keep-alive,
HTTP/1.0, 100-continue, connection churn and file descriptors."""

import json
import socket
import time

import pytest

from e2elib import HOST, RawConn, fd_targets, http, request_bytes, socket_fd_count


def test_pipelined_three_in_one_write(gw):
    reqs = b"".join(request_bytes("GET", p, {"X-Request-Id": f"pipe-{i}"})
                    for i, p in enumerate(["/health", "/nope", "/ready"]))
    with RawConn(gw.port) as c:
        c.send(reqs)
        rs = [c.read_response() for _ in range(3)]
    assert [r.header("x-request-id") for r in rs] == ["pipe-0", "pipe-1", "pipe-2"]
    assert [r.status for r in rs] == [200, 404, 200]
    assert rs[0].json()["status"] == "live"
    assert rs[1].json()["error"] == "not_found"
    assert rs[2].json() == {"ready": True}


def test_pipelined_mixed_auth_and_post(gw):
    body = json.dumps({"name": "pipelined", "scope": ["read"]})
    reqs = (request_bytes("GET", "/health/detail", {"X-Request-Id": "p-a",
                                                    "Authorization": f"Bearer {gw.admin_token}"})
            + request_bytes("POST", "/api/v1/tokens", {"X-Request-Id": "p-b",
                                                       "Authorization": f"Bearer {gw.admin_token}",
                                                       "Content-Type": "application/json"}, body)
            + request_bytes("GET", "/health/detail", {"X-Request-Id": "p-c"}))
    with RawConn(gw.port) as c:
        c.send(reqs)
        rs = [c.read_response() for _ in range(3)]
    assert [r.header("x-request-id") for r in rs] == ["p-a", "p-b", "p-c"]
    assert [r.status for r in rs] == [200, 201, 401]


def test_pipelined_many(gw):
    n = 50
    reqs = b"".join(request_bytes("GET", "/health", {"X-Request-Id": f"m{i}"}) for i in range(n))
    with RawConn(gw.port) as c:
        c.send(reqs)
        ids = [c.read_response().header("x-request-id") for _ in range(n)]
    assert ids == [f"m{i}" for i in range(n)]


def test_keepalive_reuse(gw):
    with RawConn(gw.port) as c:
        for i in range(100):
            c.send(request_bytes("GET", "/health", {"X-Request-Id": f"ka-{i}"}))
            r = c.read_response()
            assert r.status == 200
            assert r.header("x-request-id") == f"ka-{i}"
            assert (r.header("connection") or "").lower() == "keep-alive", r
        assert not c.readable_within(0.1), "server closed a keep-alive connection"


def test_connection_close_honoured(gw):
    with RawConn(gw.port) as c:
        c.send(request_bytes("GET", "/health", {"Connection": "close"}))
        r = c.read_response()
        assert r.status == 200
        assert r.header("connection").lower() == "close"
        assert c.wait_closed(2)


def test_http10_closes(gw):
    with RawConn(gw.port) as c:
        c.send(b"GET /health HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert r.version in ("HTTP/1.0", "HTTP/1.1")
        assert (r.header("connection") or "").lower() == "close", r
        assert r.json()["ok"] is True
        assert c.wait_closed(2), "HTTP/1.0 connection left open"


def test_http10_keepalive_optional(gw):
    """HTTP/1.0 with Connection: keep-alive: either kept (and said so) or closed."""
    with RawConn(gw.port) as c:
        c.send(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        conn = (r.header("connection") or "").lower()
        if conn == "keep-alive":
            c.send(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            assert c.read_response().status == 200
        else:
            assert conn == "close"
            assert c.wait_closed(2)


def test_http11_without_host(gw):
    with RawConn(gw.port) as c:
        c.send(b"GET /health HTTP/1.1\r\n\r\n")
        r = c.read_response()
        assert r.status in (200, 400), r


def test_100_continue(gw):
    body = json.dumps({"name": "continued", "scope": ["read", "chat"]}).encode()
    with RawConn(gw.port) as c:
        c.send(request_bytes("POST", "/api/v1/tokens", {
            "Authorization": f"Bearer {gw.admin_token}", "Content-Type": "application/json",
            "Expect": "100-continue", "Content-Length": str(len(body))}))
        r = c.read_response(timeout=3)
        assert r.status == 100, r
        c.send(body)
        r = c.read_response(timeout=5)
        assert r.status == 201, r
        assert r.json()["name"] == "continued"


def test_100_continue_unauthorized_no_100(gw):
    with RawConn(gw.port) as c:
        c.send(request_bytes("POST", "/api/v1/tokens", {
            "Content-Type": "application/json", "Expect": "100-continue", "Content-Length": "20"}))
        r = c.read_response(timeout=3)
        assert r.status == 401, r


def test_head_split_across_writes(gw):
    data = request_bytes("GET", "/health", {"X-Request-Id": "split"})
    with RawConn(gw.port) as c:
        for i in range(len(data)):
            c.send(data[i:i + 1])
        r = c.read_response()
        assert r.status == 200 and r.header("x-request-id") == "split"


@pytest.mark.slow
def test_1000_sequential_connections_no_fd_leak(gw):
    http(gw, "GET", "/health")
    time.sleep(0.2)
    base = socket_fd_count(gw.pid)
    for i in range(1000):
        with socket.create_connection((HOST, gw.port), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            assert data.startswith(b"HTTP/1.1 200 "), (i, data[:200])
    now = None
    for _ in range(60):
        now = socket_fd_count(gw.pid)
        if now <= base:
            break
        time.sleep(0.05)
    assert now <= base, f"sockets {base} -> {now} after 1000 connections: {fd_targets(gw.pid)}"
    assert gw.alive()


@pytest.mark.slow
def test_clients_that_vanish(gw):
    """Connections dropped mid-head, mid-body and right after sending a
    request leave no fd behind."""
    http(gw, "GET", "/health")
    time.sleep(0.2)
    base = socket_fd_count(gw.pid)
    for i in range(100):
        c = RawConn(gw.port)
        if i % 3 == 0:
            c.send(b"GET /hea")
        elif i % 3 == 1:
            c.send(request_bytes("POST", "/api/v1/tokens", {
                "Authorization": f"Bearer {gw.admin_token}", "Content-Type": "application/json",
                "Content-Length": "50"}) + b'{"na')
        else:
            c.send(request_bytes("GET", "/health"))
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # RST
    now = None
    for _ in range(60):
        now = socket_fd_count(gw.pid)
        if now <= base:
            break
        time.sleep(0.05)
    assert now <= base, f"sockets {base} -> {now}: {fd_targets(gw.pid)}"
    assert http(gw, "GET", "/health").status_code == 200


# ------------------------------------------------------------ framing edge cases


def test_content_length_and_chunked_rejected(gw):
    """Both framings at once is the classic smuggling vector: 400 and close."""
    with RawConn(gw.port) as c:
        c.try_send(b"POST /api/v1/tokens HTTP/1.1\r\nHost: a\r\n"
                   b"Authorization: Bearer " + gw.admin_token.encode() + b"\r\n"
                   b"Content-Type: application/json\r\nContent-Length: 4\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert r.status == 400, r
        assert c.wait_closed(3)
        assert b"HTTP/1.1 200" not in c.buf


def test_chunked_post_answers(gw):
    """A chunked body is framed: the gateway answers (201, or 411 if it
    insists on Content-Length), never hangs."""
    body = json.dumps({"name": "chunked-body", "scope": ["read"]}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with RawConn(gw.port) as c:
        c.send(b"POST /api/v1/tokens HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer "
               + gw.admin_token.encode() + b"\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
        r = c.read_response(timeout=3)
        assert r.status in (201, 411), r


@pytest.mark.parametrize("cl", ["99999999999999999999999", "1e3", "+5", "0x10", "5, 5"])
def test_bad_content_length(gw, cl):
    with RawConn(gw.port) as c:
        c.try_send(request_bytes("POST", "/api/v1/tokens", {
            "Authorization": f"Bearer {gw.admin_token}", "Content-Type": "application/json",
            "Content-Length": cl}))
        r = c.read_response(timeout=3)
        assert r.status in (400, 413), r


def test_keepalive_survives_error_responses(gw):
    """4xx answers to requests without a body leave the connection usable."""
    with RawConn(gw.port) as c:
        for path, tok, want in [("/nope", None, 404), ("/health/detail", None, 401),
                                ("/health/detail?token=x", None, 400), ("/health", None, 200),
                                ("/health/detail", gw.admin_token, 200)]:
            h = {"Authorization": f"Bearer {tok}"} if tok else {}
            c.send(request_bytes("GET", path, h))
            r = c.read_response()
            assert r.status == want, (path, r)
        c.send(request_bytes("POST", "/health", {"Content-Length": "0"}))
        assert c.read_response().status == 405
        c.send(request_bytes("GET", "/health"))
        assert c.read_response().status == 200


def test_nul_in_header_rejected(gw):
    with RawConn(gw.port) as c:
        c.try_send(b"GET /health HTTP/1.1\r\nHost: a\r\nX-Bad: a\x00b\r\n\r\n")
        r = c.read_response()
        assert r.status == 400, r


def test_lowercase_method_rejected(gw):
    with RawConn(gw.port) as c:
        c.try_send(b"get /health HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert r.status in (400, 405, 501), r
