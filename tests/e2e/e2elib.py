"""Helpers for the chela end-to-end tests.

Everything here talks to 127.0.0.1 only, and every wait is bounded in time
(and, where it loops, in count).  Three ways to speak HTTP:

- `http()` / `Client`: `requests` with proxies ignored, for plain checks;
- `RawConn`: a socket with its own response parser, for pipelining,
  partial heads and bodies, timeouts and anything where bytes matter;
- `run_cli()`: the chela binary's client subcommands.

The gateway process itself is `Gateway`, started by the fixtures in
conftest.py.
"""

import json
import os
import re
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"

TOKEN_RE = re.compile(r"^oc_tok_[A-Za-z0-9_-]{43}$")
LISTEN_RE = re.compile(r"^chela listening on (http://([0-9.]+|\[[0-9a-fA-F:]+\]):(\d+))\s*$")
ADMIN_RE = re.compile(r"^Admin token \(shown once, store it now\): (\S+)\s*$")
CONFIG_RE = re.compile(r"^Config: (.+?)\s*$")

# Lines a sanitizer prints when it finds something.
SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:")

START_TIMEOUT = float(os.environ.get("CHELA_E2E_START_TIMEOUT", "10"))
STOP_TIMEOUT = 20.0


def chela_bin():
    p = os.environ.get("CHELA_BIN") or str(REPO / "build" / "chela")
    return str(Path(p) if os.path.isabs(p) else (REPO / p))


def clean_env(home, extra=None):
    """The environment for a chela process: no inherited chela/OpenClaw
    settings, no proxies, HOME pointing into the test's temp dir."""
    env = {}
    for k, v in os.environ.items():
        ku = k.upper()
        if ku.startswith(("CHELA_", "OPENCLAW_")) or ku.endswith("_PROXY"):
            continue
        env[k] = v
    env["HOME"] = str(home)
    if extra:
        env.update(extra)
    return env


def sanitizer_lines(text):
    return [l for l in text.splitlines() if SANITIZER_RE.search(l)]


def free_port():
    """A port that was free a moment ago (races are possible but rare)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def fd_targets(pid):
    """{fd: readlink target} of a process's open files (racy by nature)."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def socket_fd_count(pid):
    """Open sockets only: the listener plus connections.  Store files that
    worker threads open lazily do not count, so this is the exact measure of
    a connection leak."""
    return sum(1 for t in fd_targets(pid).values() if t.startswith("socket:"))


def wait_for(pred, timeout, interval=0.05):
    """Poll pred() until truthy or timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------- CLI


def run_cli(state, *args, timeout=15, env=None, home=None, input=None, check_sanitizer=True):
    """Run `chela <args...> --state <state>`; state=None omits --state."""
    argv = [chela_bin(), *[str(a) for a in args]]
    if state is not None:
        argv += ["--state", str(state)]
    home = home or (Path(state).parent if state is not None else Path("/tmp"))
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env=clean_env(home, env), input=input, stdin=None if input else subprocess.DEVNULL)
    if check_sanitizer:
        bad = sanitizer_lines(p.stderr)
        assert not bad, f"sanitizer report from {argv}:\n{p.stderr}"
    return p


# ---------------------------------------------------------------- gateway


class Gateway:
    """One running `chela gateway` with stdout/stderr captured to files."""

    def __init__(self, state, config=None, args=(), env=None, home=None, bind="127.0.0.1",
                 port=0, config_path=None):
        self.state = Path(state)
        self.home = Path(home) if home else self.state.parent
        self.logdir = self.home / f"logs-{self.state.name}-{time.monotonic_ns()}"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.config_path = Path(config_path) if config_path else self.state / "chela.json5"
        if config is not None:
            self.state.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_config(self.config_path, config)
        self.argv = [chela_bin(), "gateway", "--state", str(self.state)]
        if port is not None:
            self.argv += ["--port", str(port)]
        if bind is not None:
            self.argv += ["--bind", bind]
        if config_path:
            self.argv += ["--config", str(config_path)]
        self.argv += list(args)
        self.env = clean_env(self.home, env)
        self.proc = None
        self.url = None
        self.port = None
        self.admin_token = None
        self.config_line = None
        self.returncode = None
        self._out = self.logdir / "stdout"
        self._err = self.logdir / "stderr"

    # -- process

    def spawn(self):
        self._outf = open(self._out, "wb")
        self._errf = open(self._err, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self._outf, stderr=self._errf,
                                     stdin=subprocess.DEVNULL, env=self.env)
        self.t_spawn = time.monotonic()
        return self

    def start(self, timeout=START_TIMEOUT):
        """Spawn and wait (bounded) for the listening line; fail with stderr."""
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._parse_stdout():
                return self
            if self.proc.poll() is not None:
                self._parse_stdout()
                if self.url:
                    return self
                self._close_files()
                raise AssertionError(
                    f"gateway exited with {self.proc.returncode} before listening\n"
                    f"argv: {self.argv}\nstdout:\n{self.stdout()}\nstderr:\n{self.stderr()}")
            time.sleep(0.01)
        self.kill()
        raise AssertionError(f"gateway did not print its listening line within {timeout}s\n"
                             f"stdout:\n{self.stdout()}\nstderr:\n{self.stderr()}")

    def _parse_stdout(self):
        for line in self.stdout().splitlines():
            m = ADMIN_RE.match(line)
            if m:
                self.admin_token = m.group(1)
            m = CONFIG_RE.match(line)
            if m:
                self.config_line = m.group(1)
            m = LISTEN_RE.match(line)
            if m:
                self.url, self.port = m.group(1), int(m.group(3))
        return self.url is not None

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._close_files()
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait(timeout)
        if rc is None:
            self.kill()
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._close_files()

    def _close_files(self):
        for f in (getattr(self, "_outf", None), getattr(self, "_errf", None)):
            if f and not f.closed:
                f.close()

    # -- output

    def stdout(self):
        try:
            return self._out.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stderr(self):
        try:
            return self._err.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_stderr(self, pred, timeout=3.0):
        """Poll stderr until pred(text) is truthy; returns its value or None."""
        deadline = time.monotonic() + timeout
        while True:
            v = pred(self.stderr())
            if v or time.monotonic() >= deadline:
                return v
            time.sleep(0.02)

    # -- helpers

    def gateway_json(self):
        return json.loads((self.state / "gateway.json").read_text())

    def cli(self, *args, **kw):
        return run_cli(self.state, *args, home=self.home, **kw)

    def create_token(self, name, scope, extra=()):
        """`chela token create --json`; returns the parsed object."""
        p = self.cli("token", "create", "--name", name, "--scope", scope, "--json", *extra)
        assert p.returncode == 0, f"token create failed: {p.returncode}\n{p.stdout}\n{p.stderr}"
        return json.loads(p.stdout)

    def raw(self, timeout=5.0):
        return RawConn(self.port, timeout)


def write_config(path, config):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = config if isinstance(config, str) else json.dumps(config, indent=2)
    path.write_text(text)


def deep_merge(base, extra):
    out = dict(base)
    for k, v in (extra or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# ---------------------------------------------------------------- HTTP via requests


def http(gw, method, path, token=None, headers=None, timeout=5, **kw):
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    url = f"http://{HOST}:{gw.port}{path}"
    # A fresh connection each time keeps tests independent of pooling;
    # trust_env off: never a proxy, loopback only.
    with requests.Session() as s:
        s.trust_env = False
        return s.request(method, url, headers=h, timeout=timeout, allow_redirects=False, **kw)


def wait_ok(gw, path, token, timeout=3.0, method="GET"):
    """A token just created through the CLI (written straight to the db) may
    take up to the gateway's cache refresh to be accepted: poll, bounded."""
    deadline = time.monotonic() + timeout
    while True:
        r = http(gw, method, path, token=token)
        if r.status_code != 401 or time.monotonic() >= deadline:
            return r
        time.sleep(0.1)


def assert_error(resp, status, code=None):
    """Status plus the common error shape {"error","message"}; works for a
    requests.Response and for RawConn's Response."""
    body = resp.text
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {body!r}"
    ctype = resp.headers.get("content-type", "") or ""
    assert "application/json" in ctype, f"error content-type {ctype!r} body {body!r}"
    j = json.loads(body)
    assert isinstance(j.get("error"), str) and j["error"], j
    assert isinstance(j.get("message"), str) and j["message"], j
    if code is not None:
        assert j["error"] == code, f"expected error {code!r}, got {j}"
    return j


def assert_common_headers(resp):
    """Every response: X-Request-Id, Date, Content-Length or chunked, Connection."""
    h = resp.headers
    assert h.get("x-request-id"), f"missing X-Request-Id: {resp!r}"
    assert h.get("date"), "missing Date"
    te = (h.get("transfer-encoding") or "").lower()
    assert h.get("content-length") is not None or "chunked" in te, "no Content-Length nor chunked"
    assert h.get("connection"), "missing Connection"


# ---------------------------------------------------------------- raw sockets


class Response:
    def __init__(self, version, status, reason, headers, body, raw):
        self.version, self.status, self.reason = version, status, reason
        self.headers_list = headers
        self.body = body
        self.raw = raw

    def header(self, name):
        vals = [v for k, v in self.headers_list if k.lower() == name.lower()]
        return ", ".join(vals) if vals else None

    def headers_named(self, name):
        return [v for k, v in self.headers_list if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    @property
    def status_code(self):
        return self.status

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    class _H:
        def __init__(self, r):
            self.r = r

        def get(self, name, default=None):
            v = self.r.header(name)
            return default if v is None else v

        def __getitem__(self, name):
            v = self.r.header(name)
            if v is None:
                raise KeyError(name)
            return v

        def __contains__(self, name):
            return self.r.header(name) is not None

    @property
    def headers(self):
        return Response._H(self)

    def __repr__(self):
        return f"<Response {self.status} {self.headers_list} {self.body[:200]!r}>"


class Closed(Exception):
    """The peer closed before a full response arrived."""


class RawConn:
    """A client socket with a read buffer and a strict response parser."""

    def __init__(self, port, timeout=5.0, connect=True):
        self.port = port
        self.timeout = timeout
        self.buf = b""
        self.eof = False
        self.reset = False
        self.sock = None
        if connect:
            self.sock = socket.create_connection((HOST, port), timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self):
        if self.sock:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def try_send(self, data):
        """sendall, but report a closed peer instead of raising."""
        try:
            self.send(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self, deadline):
        """Read more bytes; False on EOF/reset; raises TimeoutError past deadline."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data before deadline")
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            raise TimeoutError("no data before deadline")
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            self.eof = self.reset = True
            return False
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def readable_within(self, timeout):
        """True if data or EOF arrives within timeout (without consuming)."""
        if self.buf or self.eof:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    def wait_closed(self, timeout=3.0):
        """Drain until EOF/reset; True if the peer closed within timeout."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
        except TimeoutError:
            return False
        return True

    def read_until_close(self, timeout=5.0):
        self.wait_closed(timeout)
        data, self.buf = self.buf, b""
        return data

    def read_response(self, timeout=None, head_request=False):
        """Read exactly one response (a 1xx counts as one)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise AssertionError("response head over 1 MiB")
            if not self._fill(deadline):
                raise Closed(f"closed before a response head; got {self.buf!r}")
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"^(HTTP/\d\.\d) (\d{3}) ?(.*)$", lines[0])
        assert m, f"bad status line {lines[0]!r}"
        version, status, reason = m.group(1), int(m.group(2)), m.group(3)
        headers = []
        for l in lines[1:]:
            assert ":" in l, f"bad header line {l!r}"
            k, v = l.split(":", 1)
            assert k == k.strip() and k, f"bad header name {k!r}"
            headers.append((k, v.strip()))
        self.buf = rest
        raw_head = head + b"\r\n\r\n"
        hdr = {k.lower(): v for k, v in headers}
        if 100 <= status < 200 or status in (204, 304) or head_request:
            return Response(version, status, reason, headers, b"", raw_head)
        te = hdr.get("transfer-encoding", "").lower()
        if "chunked" in te:
            body = self._read_chunked(deadline)
        elif "content-length" in hdr:
            n = int(hdr["content-length"])
            while len(self.buf) < n:
                if not self._fill(deadline):
                    raise Closed(f"closed mid-body: {len(self.buf)}/{n}")
            body, self.buf = self.buf[:n], self.buf[n:]
        else:
            while self._fill(deadline):
                pass
            body, self.buf = self.buf, b""
        return Response(version, status, reason, headers, body, raw_head + body)

    def _read_chunked(self, deadline):
        body = b""
        while True:
            while b"\r\n" not in self.buf:
                if not self._fill(deadline):
                    raise Closed("closed in chunk size")
            line, self.buf = self.buf.split(b"\r\n", 1)
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while b"\r\n" not in self.buf:
                    if not self._fill(deadline):
                        raise Closed("closed in trailer")
                # skip trailers up to the empty line
                while not self.buf.startswith(b"\r\n"):
                    _, self.buf = self.buf.split(b"\r\n", 1)
                    while b"\r\n" not in self.buf:
                        if not self._fill(deadline):
                            raise Closed("closed in trailer")
                self.buf = self.buf[2:]
                return body
            while len(self.buf) < size + 2:
                if not self._fill(deadline):
                    raise Closed("closed in chunk")
            body += self.buf[:size]
            self.buf = self.buf[size + 2:]


def request_bytes(method, path, headers=None, body=None, version="HTTP/1.1", host=True):
    h = list((headers or {}).items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in h}
    if host and "host" not in names:
        h.insert(0, ("Host", "127.0.0.1"))
    if body is not None:
        if isinstance(body, str):
            body = body.encode()
        if "content-length" not in names and "transfer-encoding" not in names:
            h.append(("Content-Length", str(len(body))))
    out = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h) + "\r\n"
    return out.encode("latin-1") + (body or b"")


def raw_request(port, data, timeout=5.0, head_request=False):
    """One request on a fresh connection; returns the Response."""
    with RawConn(port, timeout) as c:
        c.send(data)
        return c.read_response(head_request=head_request)


# ---------------------------------------------------------------- metrics


METRIC_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*')


def parse_prometheus(text):
    """[(name, {labels}, value)], strict about each sample line's syntax."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = METRIC_RE.match(line)
        assert m, f"bad metrics line {line!r}"
        labels = {}
        if m.group(3):
            pos = 0
            s = m.group(3)
            while pos < len(s):
                lm = LABEL_RE.match(s, pos)
                assert lm, f"bad labels in {line!r}"
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
        out.append((m.group(1), labels, float(m.group(4))))
    return out
