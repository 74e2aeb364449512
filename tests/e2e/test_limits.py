"""Every request limit reached over a raw socket (contract: Limits).

Sizes come from the defaults (maxHeadBytes 32768, maxHeaders 100,
maxUriBytes 8192, maxBodySize 1MB) unless a test sets its own."""

import socket
import time

import pytest

from e2elib import Closed, RawConn, assert_error, http, request_bytes


def auth(gw):
    return {"Authorization": f"Bearer {gw.admin_token}"}


def test_413_decided_from_content_length(gw):
    """Only the head is sent: the 413 must come without the body."""
    with RawConn(gw.port) as c:
        c.send(request_bytes("POST", "/api/v1/tokens", {
            **auth(gw), "Content-Type": "application/json", "Content-Length": str(2 * 1024 * 1024)}))
        r = c.read_response(timeout=5)
        assert_error(r, 413)
        assert r.header("x-request-id")


def test_413_configured_size(gateway_factory):
    g = gateway_factory({"api": {"security": {"maxBodySize": "2KB"}}})
    body = '{"name":"n","scope":["read"],"pad":"' + "p" * 2100 + '"}'
    with RawConn(g.port) as c:
        c.send(request_bytes("POST", "/api/v1/tokens", {
            **auth(g), "Content-Type": "application/json", "Content-Length": str(len(body))}))
        assert_error(c.read_response(timeout=5), 413)
    # Just under the cap is read (and then judged on content).
    small = '{"name":"under-cap","scope":["read"]}'
    r = http(g, "POST", "/api/v1/tokens", token=g.admin_token, data=small,
             headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text


def test_413_with_expect_continue_no_100(gw):
    with RawConn(gw.port) as c:
        c.send(request_bytes("POST", "/api/v1/tokens", {
            **auth(gw), "Content-Type": "application/json", "Expect": "100-continue",
            "Content-Length": str(5 * 1024 * 1024)}))
        r = c.read_response(timeout=5)
        assert r.status == 413, r


def test_414_uri_too_long(gw):
    with RawConn(gw.port) as c:
        c.send(request_bytes("GET", "/health?q=" + "a" * 9000))
        r = c.read_response()
        assert_error(r, 414)
    with RawConn(gw.port) as c:
        c.send(request_bytes("GET", "/" + "b" * 9000))
        assert_error(c.read_response(), 414)


def test_uri_just_under_limit_ok(gw):
    with RawConn(gw.port) as c:
        c.send(request_bytes("GET", "/health?q=" + "a" * 8000))
        r = c.read_response()
        assert r.status == 200, r


def test_431_too_many_headers(gw):
    hdrs = [(f"X-H{i}", "v") for i in range(120)]
    with RawConn(gw.port) as c:
        c.try_send(request_bytes("GET", "/health", hdrs))
        assert_error(c.read_response(), 431)


def test_headers_at_limit_ok(gw):
    hdrs = [(f"X-H{i}", "v") for i in range(90)]  # + Host = 91 <= 100
    with RawConn(gw.port) as c:
        c.send(request_bytes("GET", "/health", hdrs))
        assert c.read_response().status == 200


def test_431_head_too_large(gw):
    with RawConn(gw.port) as c:
        c.try_send(request_bytes("GET", "/health", {"X-Big": "z" * 40000}))
        assert_error(c.read_response(), 431)
    # Many medium headers adding up past 32 KiB.
    hdrs = [(f"X-M{i}", "m" * 500) for i in range(70)]
    with RawConn(gw.port) as c:
        c.try_send(request_bytes("GET", "/health", hdrs))
        assert_error(c.read_response(), 431)


def test_431_closes(gw):
    with RawConn(gw.port) as c:
        c.try_send(request_bytes("GET", "/health", {"X-Big": "z" * 40000}))
        c.read_response()
        assert c.wait_closed(3), "connection still open after 431"


def test_411_post_without_length(gw):
    with RawConn(gw.port) as c:
        c.send(b"POST /api/v1/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Authorization: Bearer " + gw.admin_token.encode() +
               b"\r\nContent-Type: application/json\r\n\r\n")
        assert_error(c.read_response(), 411)


@pytest.mark.parametrize("garbage", [
    b"GARBAGE\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: a\r\nBad Header Name: x\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n",
    b"POST /api/v1/tokens HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
])
def test_400_garbage(gw, garbage):
    with RawConn(gw.port) as c:
        c.try_send(garbage)
        r = c.read_response()
        assert_error(r, 400)
        assert (r.header("connection") or "").lower() == "close", r
        assert c.wait_closed(3), "connection still open after 400"


def test_garbage_then_server_still_fine(gw):
    with RawConn(gw.port) as c:
        c.try_send(b"\x00\x01\x02\xff" * 100 + b"\r\n\r\n")
        c.read_until_close(3)
    assert http(gw, "GET", "/health").status_code == 200


def test_415_non_json_body(gw):
    body = '{"name":"x415","scope":["read"]}'
    r = http(gw, "POST", "/api/v1/tokens", token=gw.admin_token, data=body,
             headers={"Content-Type": "text/plain"})
    assert_error(r, 415)
    r = http(gw, "POST", "/api/v1/tokens", token=gw.admin_token, data=body)  # no type
    assert r.status_code == 415, r.text


def test_json_content_type_with_charset(gw):
    r = http(gw, "POST", "/api/v1/tokens", token=gw.admin_token,
             data='{"name":"charset-ok","scope":["read"]}',
             headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 201, r.text


# ------------------------------------------------------------ timeouts


def slow_client(port, first, trickle, total_s=8.0):
    """Send `first`, then one byte of `trickle` per second; returns
    (seconds from connect to the server's reaction, status or None)."""
    c = RawConn(port)
    t0 = time.monotonic()
    try:
        c.send(first)
        for i in range(int(total_s)):
            if c.readable_within(1.0):
                break
            if i < len(trickle) and not c.try_send(trickle[i:i + 1]):
                break
        elapsed = time.monotonic() - t0
        try:
            r = c.read_response(timeout=2)
            status = r.status
            closed = c.wait_closed(2)
        except (Closed, TimeoutError):
            status, closed = None, c.eof
        return elapsed, status, closed
    finally:
        c.close()


@pytest.mark.slow
def test_head_timeout_slowloris(gateway_factory):
    g = gateway_factory({"limits": {"headTimeoutMs": 2000}})
    elapsed, status, closed = slow_client(
        g.port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: " + b"a" * 20)
    assert status in (408, None), status
    assert closed, "not closed after the head timeout"
    assert 1.5 <= elapsed <= 4.0, f"cut off after {elapsed:.2f}s; headTimeoutMs=2000"
    assert http(g, "GET", "/health").status_code == 200


@pytest.mark.slow
def test_head_timeout_idle_connection(gateway_factory):
    g = gateway_factory({"limits": {"headTimeoutMs": 1000}})
    with RawConn(g.port) as c:
        t0 = time.monotonic()
        closed = c.wait_closed(4)
        elapsed = time.monotonic() - t0
    assert closed, "an idle new connection is not closed by headTimeoutMs"
    assert elapsed <= 3.0, elapsed


@pytest.mark.slow
def test_body_idle_timeout(gateway_factory):
    g = gateway_factory({"limits": {"bodyTimeoutMs": 2000}})
    head = request_bytes("POST", "/api/v1/tokens", {
        **auth(g), "Content-Type": "application/json", "Content-Length": "100"})
    with RawConn(g.port) as c:
        c.send(head + b'{"name":')
        t0 = time.monotonic()
        got = None
        try:
            r = c.read_response(timeout=5)
            got = r.status
        except Closed:
            pass
        elapsed = time.monotonic() - t0
        assert got in (408, None), got
        assert c.wait_closed(2)
    assert 1.5 <= elapsed <= 4.0, f"body idle cut off after {elapsed:.2f}s; bodyTimeoutMs=2000"


@pytest.mark.slow
def test_body_trickle_within_idle_timeout_ok(gateway_factory):
    """bodyTimeoutMs is an idle timeout: a body trickled at 2 bytes every
    0.5 s for ~3 s (longer than the limit in total) still completes."""
    g = gateway_factory({"limits": {"bodyTimeoutMs": 1500}})
    body = b'{"name":"trickle","scope":"read"}'
    with RawConn(g.port) as c:
        c.send(request_bytes("POST", "/api/v1/tokens", {
            **auth(g), "Content-Type": "application/json", "Content-Length": str(len(body))}))
        for i in range(0, len(body), 6):
            c.send(body[i:i + 6])
            time.sleep(0.5)
        r = c.read_response(timeout=5)
        assert r.status == 201, r


# ------------------------------------------------------------ connections


@pytest.mark.slow
def test_max_connections(gateway_factory):
    g = gateway_factory({"limits": {"maxConnections": 8}})
    idle = []
    try:
        for _ in range(8):
            idle.append(RawConn(g.port))
        time.sleep(0.3)
        ninth = RawConn(g.port)
        try:
            ninth.try_send(request_bytes("GET", "/health"))
            r = ninth.read_response(timeout=3)
            assert r.status == 503, r
            assert ninth.wait_closed(3), "the 9th connection was not closed after 503"
        finally:
            ninth.close()
        # The eight are still served.
        idle[0].send(request_bytes("GET", "/health"))
        assert idle[0].read_response().status == 200
    finally:
        for c in idle:
            c.close()
    ok = False
    for _ in range(40):
        try:
            if http(g, "GET", "/health", timeout=2).status_code == 200:
                ok = True
                break
        except Exception:
            pass
        time.sleep(0.05)
    assert ok, "/health not answered after the idle connections closed"
    d = http(g, "GET", "/health/detail", token=g.admin_token).json()
    assert d["connections"]["rejected"] >= 1, d


# ------------------------------------------------------------ keep-alive


def test_keepalive_requests_limit(gateway_factory):
    g = gateway_factory({"limits": {"keepaliveRequests": 3}})
    with RawConn(g.port) as c:
        for i in range(3):
            c.send(request_bytes("GET", "/health", {"X-Request-Id": f"kr{i}"}))
            r = c.read_response()
            assert r.status == 200
            want = "close" if i == 2 else "keep-alive"
            assert (r.header("connection") or "").lower() == want, (i, r)
        assert c.wait_closed(2), "not closed after keepaliveRequests"


def test_keepalive_requests_limit_pipelined(gateway_factory):
    """Pipelined past the limit: exactly keepaliveRequests answers, then close."""
    g = gateway_factory({"limits": {"keepaliveRequests": 2}})
    with RawConn(g.port) as c:
        c.send(b"".join(request_bytes("GET", "/health", {"X-Request-Id": f"kp{i}"}) for i in range(4)))
        data = c.read_until_close(3)
    assert data.count(b"HTTP/1.1 200") == 2, data


@pytest.mark.slow
def test_keepalive_timeout(gateway_factory):
    g = gateway_factory({"limits": {"keepaliveTimeoutMs": 1000}})
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/health"))
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.wait_closed(4), "idle keep-alive connection not closed"
        elapsed = time.monotonic() - t0
    assert 0.7 <= elapsed <= 2.5, f"closed after {elapsed:.2f}s with keepaliveTimeoutMs 1000"


def test_configured_head_limits(gateway_factory):
    g = gateway_factory({"limits": {"maxHeadBytes": 2048, "maxHeaders": 10, "maxUriBytes": 512}})
    with RawConn(g.port) as c:
        c.try_send(request_bytes("GET", "/health", {"X-Big": "z" * 2100}))
        assert_error(c.read_response(), 431)
    with RawConn(g.port) as c:
        c.try_send(request_bytes("GET", "/health", [(f"X-H{i}", "v") for i in range(12)]))
        assert_error(c.read_response(), 431)
    with RawConn(g.port) as c:
        c.try_send(request_bytes("GET", "/health?" + "u" * 600))
        assert_error(c.read_response(), 414)
    with RawConn(g.port) as c:
        c.send(request_bytes("GET", "/health?" + "u" * 400, [(f"X-H{i}", "v") for i in range(5)]))
        assert c.read_response().status == 200


@pytest.mark.slow
def test_write_queue_hard_cap_drops_non_reader(gateway_factory):
    """A client that pipelines requests and never reads is dropped once its
    queued output passes writeQueueHardBytes; the gateway stays healthy and
    keeps no fd for it."""
    from e2elib import HOST, fd_targets, socket_fd_count, wait_for
    g = gateway_factory({"limits": {"writeQueueHardBytes": 65536, "writeQueueSoftBytes": 16384,
                                    "writeQueueSoftMs": 500}})
    http(g, "GET", "/health")
    time.sleep(0.1)
    base = socket_fd_count(g.pid)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((HOST, g.port))
    assert wait_for(lambda: socket_fd_count(g.pid) > base, 2), "connection never accepted"
    s.settimeout(0.5)
    req = request_bytes("GET", "/metrics", {"Authorization": f"Bearer {g.admin_token}"})
    dropped = False
    deadline = time.monotonic() + 15
    sent = 0
    try:
        while time.monotonic() < deadline and sent < 200_000:
            try:
                s.sendall(req * 50)
                sent += 50
            except socket.timeout:
                time.sleep(0.1)  # the server stopped reading us: wait for the drop
            except (BrokenPipeError, ConnectionResetError):
                dropped = True
                break
            if sent > 100 and socket_fd_count(g.pid) <= base:
                dropped = True
                break
    finally:
        s.close()
    assert dropped, f"a non-reading client was not dropped after {sent} pipelined requests"
    assert wait_for(lambda: socket_fd_count(g.pid) <= base, 3), \
        f"socket left behind after the drop: {fd_targets(g.pid)}"
    assert http(g, "GET", "/health").status_code == 200
