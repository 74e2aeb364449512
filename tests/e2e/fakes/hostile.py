"""A hostile HTTP peer for chela's outbound side (tests/e2e/test_outbound_hostile.py).

Stdlib only, raw sockets, one thread per connection, so it can misbehave
at the byte level where http.server would not let it.  The mode is the
first path segment of the request, so one server serves every mode and a
provider's baseUrl may point at it (`http://127.0.0.1:<port>/<mode>`: the
provider's own path follows).  A mode may take an argument after a colon,
`/head_stall:503/...` (a status code).

| mode | what the peer does after reading the request head |
|---|---|
| `ok[:status]` | a normal small JSON answer, `{"ok": true}` (control) |
| `silent` | nothing, ever: accept, read, never answer |
| `head_stall[:status]` | a complete head (`Content-Length: 1000`), then nothing |
| `trickle_head` | the status line and headers, one byte a second, never finished |
| `trickle_body[:status]` | a chunked head, then one body byte a second forever |
| `endless` | a 200 head without length, then body bytes as fast as they go, until the peer leaves |
| `endless_chunked` | the same in chunks, never the last one |
| `huge_head` | a status line, then header lines forever (thousands of `X-Pad-N`) |
| `long_header_line` | one header line of 1 MB without its end |
| `big_cl[:status]` | `Content-Length: 1073741824`, 100 bytes, then nothing |
| `gzip_bomb` | `Content-Encoding: gzip`: 255 KB on the wire that inflate to 256 MB of zeros |
| `redirect_loop` | 302 back to the same URL, forever |
| `redirect_meta` | 302 to http://169.254.169.254/latest/meta-data/ (cloud metadata) |
| `redirect_canary` | 302 to `canary_url` (another listener that must never be reached) |
| `reset_mid_body` | `Content-Length: 100000`, 1000 bytes, then a TCP reset |
| `reply_reset[:status]` | a whole small answer (401 by default), then at once a reset (the request left unread) |
| `bad_chunked` | `Transfer-Encoding: chunked` with a chunk size `zz` |
| `continue_forever` | `HTTP/1.1 100 Continue` heads, forever |
| `banner` | an SSH banner, not HTTP, then silence |
| `tls_garbage` | TLS record bytes (a ServerHello and an alert) on a cleartext socket |
| `sse_keepalive` | a 200 `text/event-stream`, then only `: keepalive` comments, forever |
| `sse_huge_line` | a 200 `text/event-stream`, then `data: ` and 100 MB without a newline |

Every complete answer (`ok`, the redirects, `gzip_bomb`, an unknown mode's
404) says `Connection: close` and closes: a connection is never reused, so
a stalled mode cannot catch a request meant for another one, and a client
following a redirect connects again, as it would to another host.

Every connection is recorded (`conns()`): mode, path, the request head,
when it was accepted and when the peer (chela) closed it, and bytes sent.
Nothing runs forever: every mode gives up after `max_conn_s` (default 120
s), and `close()` ends every connection at once.
"""

import select
import socket
import struct
import threading
import time
import zlib

HOST = "127.0.0.1"

MODES = ("ok", "silent", "head_stall", "trickle_head", "trickle_body", "endless", "endless_chunked",
         "huge_head", "long_header_line", "big_cl", "gzip_bomb", "redirect_loop", "redirect_meta",
         "redirect_canary", "reset_mid_body", "reply_reset", "bad_chunked", "continue_forever", "banner", "tls_garbage",
         "sse_keepalive", "sse_huge_line")

META_URL = "http://169.254.169.254/latest/meta-data/"


class Conn:
    """One accepted connection."""

    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer
        self.mode = None
        self.arg = None
        self.path = None
        self.head = b""
        self.accepted = time.monotonic()
        self.peer_closed = None  # monotonic time the peer closed or reset it
        self.ended = None  # monotonic time we stopped handling it
        self.sent = 0

    @property
    def open_s(self):
        """How long the peer kept it open (so far)."""
        end = self.peer_closed or self.ended or time.monotonic()
        return end - self.accepted

    def __repr__(self):
        return (f"<Conn {self.mode}:{self.arg} {self.path!r} open {self.open_s:.1f}s "
                f"peer_closed={self.peer_closed is not None} sent={self.sent}>")


class _PeerGone(Exception):
    pass


class HostileServer:
    def __init__(self, host=HOST, port=0, max_conn_s=120.0, canary_url=None):
        self.host = host
        self.max_conn_s = max_conn_s
        self.canary_url = canary_url
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((host, port))
        self._lsock.listen(128)
        self.port = self._lsock.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns = []
        self._threads = []
        self._t = threading.Thread(target=self._accept_loop, daemon=True)

    # ------------------------------------------------------------ lifecycle

    def start(self):
        self._t.start()
        return self

    def close(self):
        self._stop.set()
        try:
            self._lsock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.sock.close()
            except OSError:
                pass
        for t in list(self._threads):
            t.join(timeout=2)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.close()

    # ------------------------------------------------------------ for tests

    @property
    def origin(self):
        return f"http://{self.host}:{self.port}"

    def url(self, mode, rest=""):
        return f"{self.origin}/{mode}{rest}"

    def conns(self, mode=None):
        with self._lock:
            return [c for c in self._conns if mode is None or c.mode == mode]

    def wait_conns(self, n=1, mode=None, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            got = [c for c in self.conns() if c.head and (mode is None or c.mode == mode)]
            if len(got) >= n or time.monotonic() >= deadline:
                return got
            time.sleep(0.02)

    def wait_peer_closed(self, mode=None, timeout=10.0):
        """True once every recorded connection (of mode) was closed by the peer."""
        deadline = time.monotonic() + timeout
        while True:
            cs = self.conns(mode)
            if cs and all(c.peer_closed for c in cs):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    # ------------------------------------------------------------ plumbing

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self._lsock], [], [], 0.1)
                if not r:
                    continue
                sock, peer = self._lsock.accept()
            except OSError:
                return
            c = Conn(sock, peer)
            with self._lock:
                self._conns.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            self._threads.append(t)
            t.start()

    def _deadline(self, c):
        return c.accepted + self.max_conn_s

    def _alive(self, c):
        return not self._stop.is_set() and time.monotonic() < self._deadline(c)

    def _poll_peer(self, c, wait):
        """Wait up to `wait` seconds for the peer; drain what it sends.
        Raises _PeerGone when it closed or reset the connection."""
        try:
            r, _, _ = select.select([c.sock], [], [], max(0.0, wait))
            if r:
                data = c.sock.recv(65536)
                if not data:
                    raise _PeerGone()
        except (ConnectionError, OSError, ValueError):
            raise _PeerGone() from None

    def _send(self, c, data):
        """Send everything, watching for the peer leaving; never blocks past
        the connection's deadline."""
        view = memoryview(data)
        while view:
            if not self._alive(c):
                raise _PeerGone()
            try:
                r, w, _ = select.select([c.sock], [c.sock], [], 0.2)
                if r:
                    if not c.sock.recv(65536):
                        raise _PeerGone()
                if w:
                    n = c.sock.send(view)
                    c.sent += n
                    view = view[n:]
            except (ConnectionError, OSError, ValueError):
                raise _PeerGone() from None

    def _hold(self, c):
        """Keep the connection open, saying nothing, until the peer leaves."""
        while self._alive(c):
            self._poll_peer(c, 0.2)

    def _read_head(self, c):
        buf = b""
        while b"\r\n\r\n" not in buf:
            if len(buf) > (1 << 20) or not self._alive(c):
                return False
            r, _, _ = select.select([c.sock], [], [], 0.2)
            if not r:
                continue
            try:
                data = c.sock.recv(65536)
            except (ConnectionError, OSError):
                return False
            if not data:
                return False
            buf += data
        head, _ = buf.split(b"\r\n\r\n", 1)
        c.head = head
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        c.path = parts[1] if len(parts) > 1 else "/"
        seg = c.path.lstrip("/").split("/", 1)[0].split("?", 1)[0]
        c.mode, _, arg = seg.partition(":")
        c.arg = arg or None
        return True

    def _serve(self, c):
        try:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not self._read_head(c):
                c.peer_closed = time.monotonic()
                return
            fn = getattr(self, "_m_" + c.mode, None) if c.mode in MODES else None
            if fn is None:
                self._send(c, _resp(404, b'{"error":"unknown hostile mode"}'))
            else:
                fn(c)
        except _PeerGone:
            c.peer_closed = time.monotonic()
        finally:
            c.ended = time.monotonic()
            try:
                c.sock.close()
            except OSError:
                pass

    def _status(self, c, default):
        try:
            return int(c.arg) if c.arg else default
        except ValueError:
            return default

    # ------------------------------------------------------------ modes

    def _m_ok(self, c):
        self._send(c, _resp(self._status(c, 200), b'{"ok": true}'))

    def _m_silent(self, c):
        self._hold(c)

    def _m_head_stall(self, c):
        st = self._status(c, 200)
        self._send(c, f"HTTP/1.1 {st} X\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n".encode())
        self._hold(c)

    def _m_trickle_head(self, c):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Slow: " + b"s" * 10000
        for i in range(len(head)):
            self._send(c, head[i:i + 1])
            self._poll_peer(c, 1.0)
        self._hold(c)

    def _m_trickle_body(self, c):
        st = self._status(c, 200)
        ctype = "text/event-stream" if st == 200 else "application/json"
        self._send(c, f"HTTP/1.1 {st} X\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        while self._alive(c):
            self._send(c, b"1\r\n:\r\n" if st == 200 else b"1\r\n \r\n")
            self._poll_peer(c, 1.0)

    def _m_endless(self, c):
        self._send(c, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        block = b"a" * 65536
        while self._alive(c):
            self._send(c, block)

    def _m_endless_chunked(self, c):
        self._send(c, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
        block = b"10000\r\n" + b"b" * 65536 + b"\r\n"
        while self._alive(c):
            self._send(c, block)

    def _m_huge_head(self, c):
        self._send(c, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        i = 0
        while self._alive(c):
            self._send(c, b"".join(b"X-Pad-%d: %s\r\n" % (i + k, b"p" * 40) for k in range(1000)))
            i += 1000

    def _m_long_header_line(self, c):
        self._send(c, b"HTTP/1.1 200 OK\r\nX-Long: ")
        self._send(c, b"L" * (1 << 20))
        self._hold(c)

    def _m_big_cl(self, c):
        st = self._status(c, 200)
        self._send(c, f"HTTP/1.1 {st} X\r\nContent-Type: application/json\r\n"
                      f"Content-Length: 1073741824\r\n\r\n".encode() + b"{" + b" " * 99)
        self._hold(c)

    def _m_gzip_bomb(self, c):
        bomb = _gzip_bomb()
        self._send(c, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(bomb) + bomb)

    def _redirect(self, c, location):
        self._send(c, f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"
                      f"Connection: close\r\n\r\n".encode())

    def _m_redirect_loop(self, c):
        self._redirect(c, self.origin + c.path)

    def _m_redirect_meta(self, c):
        self._redirect(c, META_URL)

    def _m_redirect_canary(self, c):
        self._redirect(c, self.canary_url or META_URL)

    def _m_reset_mid_body(self, c):
        self._send(c, b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 100000\r\n\r\n"
                   + b": x\n" * 250)
        time.sleep(0.1)
        # SO_LINGER with a zero timeout: close() sends RST, not FIN.
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.sock.close()
        c.peer_closed = time.monotonic()

    def _m_reply_reset(self, c):
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._send(c, _resp(self._status(c, 401), b'{"error": "no"}'))
        c.sock.close()
        c.peer_closed = time.monotonic()

    def _m_bad_chunked(self, c):
        self._send(c, b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"zz\r\nhello\r\n")
        self._hold(c)

    def _m_continue_forever(self, c):
        block = b"HTTP/1.1 100 Continue\r\n\r\n" * 256
        while self._alive(c):
            self._send(c, block)
            self._poll_peer(c, 0.01)

    def _m_banner(self, c):
        self._send(c, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
        self._hold(c)

    def _m_tls_garbage(self, c):
        # A TLS 1.2 ServerHello record header and body, then a fatal alert:
        # what an https server says to a client that spoke cleartext.
        hello = bytes([0x16, 0x03, 0x03, 0x00, 0x31, 0x02, 0x00, 0x00, 0x2d, 0x03, 0x03]) + bytes(range(32)) + \
            bytes([0x00, 0x13, 0x01, 0x00, 0x00, 0x05, 0xff, 0x01, 0x00, 0x01, 0x00])
        self._send(c, hello + bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]))
        self._hold(c)

    def _m_sse_keepalive(self, c):
        self._send(c, b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        while self._alive(c):
            self._send(c, b"d\r\n: keepalive\n\n\r\n")
            self._poll_peer(c, 0.1)

    def _m_sse_huge_line(self, c):
        self._send(c, b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: ")
        block = b"x" * 65536
        for _ in range(100 * 16):  # 100 MB
            if not self._alive(c):
                break
            self._send(c, block)
        self._hold(c)


_bomb = []
_bomb_lock = threading.Lock()


def _gzip_bomb():
    """256 MB of zeros, gzip level 9: about 255 KB, built once (0.7 s)."""
    with _bomb_lock:
        if not _bomb:
            z = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip wrapper
            zero = b"\0" * (1 << 20)
            _bomb.append(b"".join(z.compress(zero) for _ in range(256)) + z.flush())
        return _bomb[0]


def _resp(status, body, ctype="application/json"):
    return (f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode() + body


if __name__ == "__main__":
    import sys
    srv = HostileServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print(f"hostile listening on {srv.origin}; modes: {', '.join(MODES)}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.close()
