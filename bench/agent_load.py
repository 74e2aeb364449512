#!/usr/bin/python3
"""bench/agent_load.py: a counted load for bench/agent.sh (not a test).

Sends exactly --count chat requests to a chela gateway over --concurrency
keep-alive connections (asyncio, one connection per worker, raw HTTP/1.1)
and prints one JSON line: count, ok, errors, seconds, rps, p50_us, p99_us.

Conversation ids: "<prefix>-<n>" with n the request number (a new session
per request), or n modulo --sessions when --sessions > 0 (a fixed pool of
sessions, each getting several turns; turns of one session serialise in
the gateway).  --direct sends an upstream body to a fake LLM instead (the
baseline for the added-latency figure).  wrk drives the throughput
figures; this client is for runs that must have an exact size (10,000
sessions, the soak), where Python's own speed does not matter.
--heap-every S also reads /health/detail every S seconds on its own
connection while the load runs and reports the highest heapBytes seen
(heap_peak_kb): a sampled peak of chela's live heap, i.e. the working set
of the turns in flight, which the heap at rest does not show.
"""

import argparse
import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    hdr = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdr[k.strip().lower()] = v.strip()
    if "chunked" in hdr.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            body += await reader.readexactly(size + 2)
    else:
        body = await reader.readexactly(int(hdr.get("content-length", "0")))
    return status, hdr, bytes(body)


class Load:
    def __init__(self, a):
        self.a = a
        u = urlsplit(a.url)
        self.host, self.port, self.path = u.hostname, u.port, u.path or "/"
        self.next = 0
        self.lat = []
        self.ok = 0
        self.errors = 0
        self.first_error = None

    def body(self, n):
        if self.a.direct:
            return json.dumps({"model": "fake-model", "messages": [{"role": "user", "content": "hi"}],
                               "stream": True, "stream_options": {"include_usage": True}})
        conv = f"{self.a.prefix}-{n % self.a.sessions if self.a.sessions else n}"
        return json.dumps({"message": f"hello {n}", "conversationId": conv})

    async def worker(self):
        reader = writer = None
        while self.next < self.a.count:
            n = self.next
            self.next += 1
            if writer is None:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            body = self.body(n).encode()
            req = (f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                   f"Authorization: Bearer {self.a.token}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            t0 = time.perf_counter()
            try:
                writer.write(req)
                status, hdr, resp = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
                self.errors += 1
                self.first_error = self.first_error or repr(e)
                writer.close()
                reader = writer = None
                continue
            self.lat.append(time.perf_counter() - t0)
            if status == 200 and (not self.path.endswith("/stream") or b'"type":"done"' in resp):
                self.ok += 1
            else:
                self.errors += 1
                self.first_error = self.first_error or f"{status} {resp[:300]!r}"
            if hdr.get("connection", "").lower() == "close":
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    async def sample_heap(self):
        """Highest memory.heapBytes of /health/detail while the workers run."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        req = (f"GET /health/detail HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
               f"Authorization: Bearer {self.a.token}\r\n\r\n").encode()
        try:
            while not self.done:
                writer.write(req)
                status, _, body = await read_response(reader)
                if status == 200:
                    heap = json.loads(body)["memory"]["heapBytes"]
                    self.heap_peak = max(self.heap_peak or 0, heap)
                await asyncio.sleep(self.a.heap_every)
        finally:
            writer.close()

    async def run(self):
        t0 = time.perf_counter()
        self.done = False
        self.heap_peak = None
        sampler = asyncio.ensure_future(self.sample_heap()) if self.a.heap_every > 0 else None
        await asyncio.gather(*(self.worker() for _ in range(self.a.concurrency)))
        secs = time.perf_counter() - t0
        self.done = True
        if sampler:
            try:
                await sampler
            except (OSError, asyncio.IncompleteReadError, ValueError, KeyError):
                pass
        return secs


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="http://127.0.0.1:PORT/api/v1/chat (or /chat/stream)")
    ap.add_argument("--token", default="")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--sessions", type=int, default=0, help="pool size; 0: a new session per request")
    ap.add_argument("--prefix", default="bench")
    ap.add_argument("--direct", action="store_true", help="POST an upstream body (fake LLM baseline)")
    ap.add_argument("--heap-every", type=float, default=0,
                    help="seconds between /health/detail reads for heap_peak_kb; 0: none")
    a = ap.parse_args()
    load = Load(a)
    secs = asyncio.run(load.run())
    out = {"count": a.count, "ok": load.ok, "errors": load.errors, "seconds": round(secs, 3),
           "rps": round(a.count / secs, 1) if secs > 0 else None,
           "p50_us": round(pct(load.lat, 50) * 1e6) if load.lat else None,
           "p99_us": round(pct(load.lat, 99) * 1e6) if load.lat else None,
           "first_error": load.first_error}
    if a.heap_every > 0:
        out["heap_peak_kb"] = load.heap_peak // 1024 if load.heap_peak is not None else None
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
