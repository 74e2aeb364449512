"""Chaos: "never loses their work" across repeated kills (issue #4).

A seeded random plan of hooks (some with idempotency keys, some repeated
with the same key, some sharing a persistent session so their runs queue
in one lane, native callbacks in `raw` and `envelope` mode, a few to a
receiver that refuses them for good) is posted by client threads while the
main thread kills the gateway 4-6 times at random moments and restarts it
on the same state directory (and port).  The fake LLM answers after small
random delays with JSON naming the hook it was asked about; the callback
receiver answers 200, 500/503 or 200 slowly, at random, never failing one
delivery more often than the retry budget allows.  Afterwards:

- every hook answered 2xx names a run that ends `ok` (none stuck queued or
  running); one idempotency key names one run; a keyed hook that got no
  answer (its connection died with the gateway) or a 503 is resent exactly
  as sent and then gets its run id;
- every ok run has exactly one callback delivery, received at least once
  (X-OpenClaw-Delivery and runId), every request correctly signed, one
  body per delivery id, `done` unless it went to the refusing receiver
  (then `dead`), and GET /api/v1/deliveries agrees with what the receiver
  saw;
- the transcript of each shared session holds each of its runs' messages
  once (user, [tool call, tool result,] answer: some hooks ask the fake
  for one tool round first), one run after another in lane order.

Variants: kills at random moments; kills while a delivery is in flight at
a slow receiver; SIGTERM mid-load (exit 0, nothing dropped); and, made
deterministic, the window the random test found: a hook reaching a
restarted gateway before it has requeued the runs the kill interrupted.

The seed is printed and in every failure message; CHAOS_SEED=N repeats a
plan (not the threads' timing); CHAOS_SCALE=N posts N times the hooks in
the same window (a soak, outside the time budget).  The outbox's attempt
timeout (30 s) is not configurable, so "slow" answers stay below it.
"""

import json
import os
import random
import re
import signal
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from agentlib import turns, wait_run
from e2elib import HOST, RawConn, http, request_bytes
from fakes.llm import FakeLLM
from hooklib import HOOK_TOKEN, hook, hooks_config
from receivers import verify_django, verify_v2, verify_webhook

pytestmark = pytest.mark.signals

SECRETS = {"/cfg": "chaos-cfg-secret", "/raw": "chaos-raw-secret", "/env": "chaos-env-secret",
           "/gone": "chaos-env-secret"}
MAX_ATTEMPTS = 4        # hooks.retry.maxAttempts; the receiver fails a delivery at most 3 times
LANES = 3               # shared persistent sessions
TAG_RE = re.compile(r"tag=(t\d{3})")


def base_seed():
    s = os.environ.get("CHAOS_SEED")
    return int(s) if s else random.SystemRandom().randrange(1, 1 << 31)


# ---------------------------------------------------------------- the fake LLM


class EchoLLM(FakeLLM):
    """An OpenAI-compatible fake answering every call, after a small random
    delay, with JSON naming the tag of the newest user message."""

    def __init__(self, seed, max_delay):
        super().__init__("openai")
        self.rng = random.Random(seed)
        self.max_delay = max_delay

    def _take(self, req):
        with self._lock:
            self._serial += 1
            serial = self._serial
            delay = self.rng.uniform(0, self.max_delay)
            chunks = self.rng.randint(1, 3)
        msgs = (req.json or {}).get("messages") or []
        users = [t for role, t in turns("openai", {"messages": msgs}) if role == "user"]
        m = TAG_RE.search(users[-1]) if users else None
        reply = {"first_byte_delay": delay, "chunks": chunks, "chunk_delay": 0.005}
        # A hook that asks for a tool gets one tool round first: a kill may
        # then land between the rounds, and the replay must continue the
        # run, not repeat it in the transcript.
        if users and "use-tool" in users[-1] and msgs and msgs[-1].get("role") != "tool":
            reply["tool_calls"] = [{"name": "current_time", "arguments": {}}]
            return reply, serial
        reply["text"] = json.dumps({"tag": m.group(1) if m else None, "answer": "done"})
        return reply, serial


# ---------------------------------------------------------------- the receiver


class _RxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.server.owner.handle(self, self.rfile.read(n) if n > 0 else b"")


class ChaosReceiver:
    """Callback receiver: checks all three signatures of every request and
    answers at random (seeded): 500/503, 200 after a delay, or 200; one
    delivery id is failed at most MAX_ATTEMPTS-1 times, so only /gone (410,
    a permanent refusal) may ever dead-letter a delivery.
    received: [{path, id, body, sig_ok, status, sent}]."""

    def __init__(self, seed, p_fail, p_slow, slow):
        self.rng = random.Random(seed)
        self.p_fail, self.p_slow, self.slow = p_fail, p_slow, slow
        self.received = []
        self.fails = defaultdict(int)
        self.active = 0
        self.lock = threading.Lock()
        self._srv = ThreadingHTTPServer((HOST, 0), _RxHandler)
        self._srv.daemon_threads = True
        self._srv.owner = self
        self._t = threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path):
        return f"http://{HOST}:{self._srv.server_address[1]}{path}"

    def handle(self, h, body):
        hd = {k.lower(): v for k, v in h.headers.items()}
        path = h.path.split("?")[0]
        secret = SECRETS.get(path)
        ok = bool(secret) and verify_webhook(body.decode("utf-8", "replace"), hd.get("x-signature-256", ""), secret) \
            and verify_django(body, hd.get("x-openclaw-signature"), secret) \
            and verify_v2(body, hd.get("x-openclaw-timestamp"), hd.get("x-openclaw-signature-v2"), secret)
        did = hd.get("x-openclaw-delivery")
        delay = 0.0
        with self.lock:
            roll = self.rng.random()
            if not ok:
                status = 401
            elif path == "/gone":
                status = 410
            elif roll < self.p_fail and self.fails[did] < MAX_ATTEMPTS - 1:
                self.fails[did] += 1
                status = self.rng.choice((500, 503))
            elif roll < self.p_fail + self.p_slow:
                status, delay = 200, self.rng.uniform(*self.slow)
            else:
                status = 200
            rec = {"path": path, "id": did, "body": body, "sig_ok": ok, "status": status, "sent": False}
            self.received.append(rec)
            self.active += 1
        try:
            if delay:
                time.sleep(delay)
            out = b'{"status":"ok"}' if status < 300 else b'{"error":"chaos"}'
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(out)))
            h.end_headers()
            h.wfile.write(out)
            h.wfile.flush()
            rec["sent"] = True
        except OSError:
            pass  # the gateway died (or gave up) during the attempt
        finally:
            with self.lock:
                self.active -= 1

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._srv.shutdown()
        self._srv.server_close()


# ---------------------------------------------------------------- the plan


def make_plan(rng, n, rx):
    """n hooks: [{tag, body, headers, key, lane, cb, dup_of}]."""
    plan = []
    for i in range(n):
        kind = rng.choices(("plain", "keyed", "shared", "gone", "dup"), (2, 3, 4, 1, 2))[0]
        keyed = [h for h in plan if h["key"] and h["dup_of"] is None]
        if kind == "dup" and keyed:
            src = rng.choice(keyed[-6:])
            plan.append(dict(src, dup_of=src["i"], i=i))
            continue
        if kind == "dup":
            kind = "keyed"
        tag = f"t{i:03d}"
        tool = " use-tool" if rng.random() < 0.25 else ""
        body = {"message": f"chaos hook tag={tag}:{tool} answer in JSON", "name": f"chaos-{kind}"}
        headers = {"Authorization": f"Bearer {HOOK_TOKEN}"}
        key = None if kind == "plain" else f"chaos-{tag}-{rng.randrange(1 << 30)}"
        where = rng.choice(("idempotencyKey", "Idempotency-Key", "X-OpenClaw-Idempotency-Key"))
        if key:  # in the body or in either header
            (body if where == "idempotencyKey" else headers)[where] = key
        lane = f"chaos:lane{rng.randrange(LANES)}" if kind == "shared" else None
        if lane:
            body.update(sessionKey=lane, sessionMode="persistent")
        elif rng.random() < 0.3:
            body["sessionKey"] = f"chaos:solo-{tag}"
        cb = "gone" if kind == "gone" else rng.choice(("cfg", "raw", "env"))
        if cb != "cfg":
            body["callback"] = {"url": rx.url("/" + cb), "mode": "raw" if cb == "raw" else "envelope",
                                "secret": SECRETS["/" + cb]}
        plan.append({"i": i, "tag": tag, "body": body, "headers": headers, "key": key, "lane": lane, "cb": cb,
                     "dup_of": None})
    return plan


# ---------------------------------------------------------------- the harness


class Chaos:
    def __init__(self, factory, variant, offset, *, hooks, gap, slow, p_slow, llm_delay=0.4):
        self.base = base_seed()
        self.factory, self.variant, self.seed = factory, variant, self.base + offset
        seed = self.seed
        self.rng = random.Random(seed)
        # CHAOS_SCALE=N (default 1) posts N times the hooks in the same
        # window: a soak at a higher rate, outside the time budget.
        self.scale = int(os.environ.get("CHAOS_SCALE") or 1)
        self.n_hooks, self.gap = min(999, hooks * self.scale), gap
        self.max_concurrent = self.rng.choice((2, 4, 8))  # 2: most runs wait queued
        self.rx = ChaosReceiver(seed + 1, p_fail=0.3, p_slow=p_slow, slow=slow)
        self.fake = EchoLLM(seed + 2, llm_delay)
        self.g = self.port = self.token = None
        self.lock = threading.Lock()
        self.log = defaultdict(list)     # hook index -> outcomes of its sends
        self.run_of = {}                 # hook index -> runId
        self.unknown = set()             # unkeyed hooks whose answer was lost: queued or not
        self.errors = []                 # unexpected answers (client side)
        self.events = []                 # (t, what) for failure messages

    def ctx(self):
        return f"[chaos {self.variant}, seed {self.base}: CHAOS_SEED={self.base} repeats the plan]"

    def note(self, what):
        self.events.append((round(time.monotonic() - self.t0, 3), what))

    def config(self):
        cfg = hooks_config({"p": self.fake}, hooks={
            "allowedSessionKeyPrefixes": ["chaos:", "hook:"],
            "callback": {"url": self.rx.url("/cfg"), "secret": SECRETS["/cfg"], "mode": "envelope"},
            "retry": {"maxAttempts": MAX_ATTEMPTS, "backoffMs": 50}}, agents={"maxConcurrent": self.max_concurrent})
        cfg["limits"] = {"shutdownGraceMs": 3000}
        return cfg

    # -- gateway

    def start(self, state=None):
        cfg = self.config()
        if state is None:
            g = self.factory(cfg)
            self.token = g.admin_token
            assert self.token, f"{self.ctx()} no admin token:\n{g.stdout()}"
        else:
            try:
                g = self.factory.new(cfg, state=state, port=self.port).start()
            except AssertionError:
                # The old port was taken meanwhile: clients follow the new one.
                self.note("restart on the same port failed; taking a new one")
                g = self.factory.new(cfg, state=state).start()
            g.admin_token = self.token
        self.g, self.port = g, g.port
        self.note(f"started pid {g.pid} on {g.port}")

    def stop(self, sig):
        g = self.g
        t = time.monotonic()
        g.signal(sig)
        rc = g.wait(25)
        self.note(f"{signal.Signals(sig).name} pid {g.pid}: rc {rc}")
        assert rc is not None, f"{self.ctx()} gateway did not exit on {sig}\n{g.stderr()[-3000:]}"
        if sig == signal.SIGTERM:
            assert rc == 0, f"{self.ctx()} SIGTERM exit {rc}\n{g.stderr()[-3000:]}"
            assert time.monotonic() - t < 15, f"{self.ctx()} SIGTERM took {time.monotonic() - t:.1f}s"

    def http(self, method, path, headers=None, **kw):
        """A fresh connection to the current gateway (admin token unless
        headers say otherwise): never a pooled one that died with the last."""
        with requests.Session() as s:
            s.trust_env = False
            return s.request(method, f"http://{HOST}:{self.port}{path}", timeout=10,
                             headers=headers or {"Authorization": f"Bearer {self.token}"}, **kw)

    # -- clients

    def send(self, h):
        try:
            r = self.http("POST", "/hooks/agent", json=h["body"], headers=h["headers"])
        except requests.RequestException as e:
            return None, type(e).__name__
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, {}

    def client(self, t, items, deadline):
        rng = random.Random(self.seed * 7 + t)
        queue, retry = list(items), []
        for _ in range(100 * (len(items) + 1)):  # bounded in count as in time
            if time.monotonic() >= deadline:
                break
            due = [x for x in retry if x[0] <= time.monotonic()]
            if due:
                retry.remove(due[0])
                h = due[0][1]
            elif queue:
                h = queue.pop(0)
            elif retry:
                time.sleep(0.05)
                continue
            else:
                return
            status, j = self.send(h)
            with self.lock:
                self.log[h["i"]].append(status if status is not None else j)
                if status in (200, 202) and isinstance(j.get("runId"), str):
                    self.run_of.setdefault(h["i"], []).append(j["runId"])
                    self.unknown.discard(h["i"])
                elif status is None and not h["key"]:
                    self.unknown.add(h["i"])  # maybe queued, maybe not: no key to ask with
                elif status is None or status == 503:
                    # The same request again; soon, so that some land in the
                    # first milliseconds of the next gateway (a window where
                    # the runs of the last one are still being read back).
                    retry.append((time.monotonic() + rng.uniform(0.01, 0.3), h))
                else:
                    self.errors.append((h["tag"], status, j))
            time.sleep(rng.uniform(0, 2 * self.pace))
        with self.lock:
            for h in [x[1] for x in retry] + queue:
                self.errors.append((h["tag"], "never answered 2xx before the deadline", self.log[h["i"]]))

    # -- the run

    def run(self, signals, in_flight=False):
        self.t0 = time.monotonic()
        plan = make_plan(self.rng, self.n_hooks, self.rx)
        self.plan = plan
        print(f"{self.ctx()} {len(plan)} hooks, maxConcurrent {self.max_concurrent}, "
              f"signals {[signal.Signals(s).name for s in signals]}")
        # Spread the plan over the whole window of signals: each client
        # thread sends a third of it, pausing pace seconds on average.
        window = len(signals) * (sum(self.gap) / 2 + 0.25)
        self.pace = window / (len(plan) / 3)
        self.start()
        threads = []
        deadline = time.monotonic() + 40 * self.scale
        for t in range(3):
            th = threading.Thread(target=self.client, args=(t, plan[t::3], deadline), daemon=True)
            th.start()
            threads.append(th)
        for sig in signals:
            time.sleep(self.rng.uniform(*self.gap))
            if in_flight:  # land the kill while an attempt waits at the (slow) receiver
                end = time.monotonic() + 3
                while self.rx.active == 0 and time.monotonic() < end:
                    time.sleep(0.01)
                self.note(f"receiver has {self.rx.active} attempt(s) in flight")
            self.stop(sig)
            time.sleep(self.rng.uniform(0, 0.2))  # down for a moment: clients see refusals
            self.start(self.g.state)
        for th in threads:  # bounded: the clients stop at the deadline
            th.join(max(0.0, deadline - time.monotonic()) + 5)
        assert not any(th.is_alive() for th in threads), f"{self.ctx()} client threads did not finish"
        self.settle(25 * self.scale)
        self.check()

    def get(self, path):
        r = self.http("GET", path, params={"limit": 1000})
        assert r.status_code == 200, r.text
        return r.json()

    def runs_by_id(self):
        return {x["runId"]: x for x in self.get("/api/v1/runs")["runs"]}

    def settle(self, timeout=25):
        """Wait (bounded) until no run is queued or running, every answered
        run has its callback row, and no delivery is pending or sending."""
        known = {rid for ids in self.run_of.values() for rid in ids}
        end, why = time.monotonic() + timeout, None
        for _ in range(int(timeout / 0.2) + 1):
            if time.monotonic() >= end:
                break
            runs = self.runs_by_id()
            busy = [k for k, v in runs.items() if v["status"] in ("queued", "running")]
            missing = known - set(runs)
            d = self.get("/api/v1/deliveries")
            undelivered = {k for k, v in runs.items() if v["status"] == "ok"} - {x["runId"] for x in d["deliveries"]}
            open_rows = d["counts"].get("pending", 0) + d["counts"].get("sending", 0)
            why = (f"busy runs {busy}, missing runs {sorted(missing)}, ok runs without a delivery "
                   f"{sorted(undelivered)}, open deliveries {open_rows}")
            if not busy and not missing and not undelivered and not open_rows:
                self.note("settled")
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.ctx()} never settled: {why}\nevents: {self.events}\n"
                             f"stderr tail:\n{self.g.stderr()[-4000:]}")

    # -- invariants

    def check(self):
        ctx, plan = self.ctx(), self.plan
        assert not self.errors, f"{ctx} unexpected answers: {self.errors}\nevents: {self.events}"
        origin = {h["i"]: (h["dup_of"] if h["dup_of"] is not None else h["i"]) for h in plan}
        # 1. one run per idempotency key (a dup names its original's run);
        #    every keyed hook ended up with a run id.
        run_of_origin = {}
        for h in plan:
            ids = set(self.run_of.get(h["i"], []))
            if h["key"]:
                assert ids, f"{ctx} keyed hook {h['tag']} never got a run id: {self.log[h['i']]}"
            assert len(ids) <= 1, f"{ctx} hook {h['tag']} got several run ids {ids} for one request"
            for rid in ids:
                o = origin[h["i"]]
                prev = run_of_origin.setdefault(o, rid)
                assert prev == rid, f"{ctx} idempotency key of {h['tag']} named runs {prev} and {rid}"
        tag_of_run, delivery_of = {rid: plan[o]["tag"] for o, rid in run_of_origin.items()}, {}
        assert len(tag_of_run) == len(run_of_origin), f"{ctx} two requests share a run id"
        # 2. every run that was answered 2xx ended ok, as GET /api/v1/runs/<id> says
        #    (and no other run, answered or not, ended otherwise).
        other = {k: v["status"] for k, v in self.runs_by_id().items() if v["status"] != "ok"}
        assert not other, f"{ctx} runs that did not end ok: {other}"
        for rid, tag in tag_of_run.items():
            r = self.http("GET", f"/api/v1/runs/{rid}")
            assert r.status_code == 200, f"{ctx} run {rid} ({tag}): {r.status_code} {r.text}"
            run = r.json()
            assert run["status"] == "ok", f"{ctx} run {rid} ({tag}) is {run['status']}: {run}"
            h = plan[int(tag[1:])]
            assert json.loads(run["result"]["text"])["tag"] == tag, f"{ctx} run {rid} answered {run['result']}"
            cb = (run.get("delivery") or {}).get("callback") or {}
            assert cb.get("state") == "queued" and cb.get("deliveryId"), f"{ctx} run {rid} ({tag}) delivery {run}"
            delivery_of[rid] = cb["deliveryId"]
            if h["lane"]:
                assert run["sessionKey"] == "agent:main:" + h["lane"], run
        # 3. deliveries: one per run, done (dead only at /gone), matching the receiver.
        rows = self.get("/api/v1/deliveries")["deliveries"]
        seen = defaultdict(list)
        for rec in list(self.rx.received):
            seen[rec["id"]].append(rec)
        by_run = defaultdict(list)
        for d in rows:
            by_run[d["runId"]].append(d)
        unknown_tags = {plan[i]["tag"] for i in self.unknown}
        for run_id, ds in by_run.items():
            assert len(ds) == 1, f"{ctx} run {run_id} has {len(ds)} deliveries: {ds}"
            d = ds[0]
            assert delivery_of.get(run_id, d["id"]) == d["id"], f"{ctx} run {run_id} names another delivery: {d}"
            assert d["kind"] == "callback" and d["signed"] is True, f"{ctx} {d}"
            got = seen.get(d["id"], [])
            assert got, f"{ctx} delivery {d['id']} (run {run_id}) never reached the receiver: {d}"
            bodies = {g["body"] for g in got}
            assert len(bodies) == 1, f"{ctx} delivery {d['id']} arrived with {len(bodies)} different bodies"
            body = json.loads(next(iter(bodies)))
            tag = tag_of_run.get(run_id)
            if tag is None:  # a run nobody was told about: only an unanswered unkeyed hook may own it
                t2 = body["tag"] if got[0]["path"] == "/raw" else body["json"]["tag"]
                assert t2 in unknown_tags, f"{ctx} run {run_id} ({t2}) belongs to no unanswered request"
                tag = t2
            h = plan[int(tag[1:])]
            assert all(g["path"] == "/" + h["cb"] for g in got), f"{ctx} {tag}: wrong callback path"
            if h["cb"] == "raw":
                assert body == {"tag": tag, "answer": "done"}, f"{ctx} raw callback of {tag}: {body}"
            else:
                assert body["runId"] == run_id and body["status"] == "ok" and body["json"]["tag"] == tag, \
                    f"{ctx} envelope of {tag}: {body}"
            bad = [g for g in got if not g["sig_ok"]]
            assert not bad, f"{ctx} delivery {d['id']}: {len(bad)} request(s) failed the signature checks"
            assert d["attempts"] <= len(got), f"{ctx} {d['id']}: {d['attempts']} attempts, {len(got)} received"
            if h["cb"] == "gone":
                assert d["status"] == "dead" and d["lastStatus"] == 410, f"{ctx} /gone delivery {d}"
            else:
                assert d["status"] == "done", f"{ctx} delivery of {tag} is {d['status']}: {d}\nreceiver: " \
                    f"{[(g['status'], g['sent']) for g in got]}"
                assert any(g["status"] < 300 and g["sent"] for g in got), f"{ctx} {d['id']} done without a 2xx sent"
        assert set(tag_of_run) <= set(by_run), f"{ctx} ok runs without a delivery: {set(tag_of_run) - set(by_run)}"
        stray = set(seen) - {d["id"] for d in rows}
        assert not stray, f"{ctx} the receiver got delivery ids the gateway does not list: {stray}"
        # 4. shared sessions: each run's messages once, together, in lane order.
        for lane in sorted({h["lane"] for h in plan if h["lane"]}):
            mine = {rid for rid, tag in tag_of_run.items() if plan[int(tag[1:])]["lane"] == lane}
            r = self.http("GET", f"/sessions/{lane}/history")
            if not mine and r.status_code == 404:
                continue
            assert r.status_code == 200, f"{ctx} history of {lane}: {r.status_code} {r.text}"
            pairs = [(m["role"], m.get("runId"), "".join(c.get("text", "") for c in m["content"]))
                     for m in r.json()["messages"]]
            ids = {rid for _, rid, _ in pairs}
            assert ids == mine, f"{ctx} {lane}: runs {ids} in the transcript, expected {mine}"
            # Lane order: each run's messages in one block, its user message
            # first and once, its final answer last and once, only its tool
            # round (at most one assistant call and one result) between.
            blocks = []
            for p in pairs:
                if not blocks or blocks[-1][0] != p[1]:
                    blocks.append((p[1], []))
                blocks[-1][1].append(p)
            assert len(blocks) == len(mine), f"{ctx} {lane}: a run's messages are split: {pairs}"
            for rid, ms in blocks:
                tag = tag_of_run[rid]
                roles = [m[0] for m in ms]
                tool = "use-tool" in ms[0][2]
                want = ["user", "assistant", "toolResult", "assistant"] if tool else ["user", "assistant"]
                assert roles == want and f"tag={tag}" in ms[0][2] and json.loads(ms[-1][2])["tag"] == tag, \
                    f"{ctx} {lane}: run {rid} ({tag}) has {roles}, expected {want}: {ms}"
        print(f"{ctx} ok: {len(tag_of_run)} runs, {len(rows)} deliveries, {len(self.rx.received)} callback "
              f"requests, {len(self.unknown)} unanswered unkeyed hooks; events {self.events}")


def test_chaos_sigkill_at_random_moments(gateway_factory):
    c = Chaos(gateway_factory, "sigkill", 0, hooks=72, gap=(0.4, 1.2), slow=(0.2, 0.8), p_slow=0.15)
    with c.fake, c.rx:
        c.run([signal.SIGKILL] * c.rng.randint(4, 6))


def test_chaos_sigkill_with_deliveries_in_flight(gateway_factory):
    c = Chaos(gateway_factory, "in-flight", 1, hooks=48, gap=(0.3, 0.8), slow=(0.5, 1.5), p_slow=0.6)
    with c.fake, c.rx:
        c.run([signal.SIGKILL] * c.rng.randint(4, 5), in_flight=True)


def test_chaos_sigterm_mid_load(gateway_factory):
    c = Chaos(gateway_factory, "sigterm", 2, hooks=48, gap=(0.5, 1.2), slow=(0.2, 1.0), p_slow=0.3)
    with c.fake, c.rx:
        c.run([signal.SIGTERM, signal.SIGKILL, signal.SIGTERM])


def test_chaos_hook_at_restart_waits_for_resumed_runs(gateway_factory):
    """The window the random test found (under ASan): a hook that reaches
    a restarted gateway before it has put the runs a kill interrupted back
    in their lanes must queue behind them, not run first.  A run of a
    persistent session hangs at the model, many runs wait behind it, the
    gateway is killed; a client already knocking on the port posts the
    session's next hook the moment the new gateway listens."""
    with FakeLLM("openai") as fake:
        fake.push({"text": "never", "first_byte_delay": 30, "times": -1})
        cfg = hooks_config({"p": fake}, hooks={"allowedSessionKeyPrefixes": ["chaos:", "hook:"]},
                           agents={"maxConcurrent": 1, "queueSize": 1000})
        g = gateway_factory(cfg)
        lane = {"sessionKey": "chaos:order", "sessionMode": "persistent"}
        r = hook(g, body=dict(lane, message="first tag=t001"))
        assert r.status_code == 202, r.text
        first = r.json()["runId"]
        fake.wait_requests(1)
        for i in range(150):  # the resume job has many unfinished runs to read back
            assert hook(g, body={"message": f"filler {i}", "sessionKey": f"chaos:fill{i}"}).status_code == 202
        g.signal(signal.SIGKILL)
        assert g.wait(10) is not None
        fake.clear()
        fake.push({"text": "done", "times": -1})
        raw = request_bytes("POST", "/hooks/agent", {"Authorization": f"Bearer {HOOK_TOKEN}",
                                                     "Content-Type": "application/json"},
                            json.dumps(dict(lane, message="second tag=t002")))
        box = {}

        def knock():
            end = time.monotonic() + 15
            for _ in range(15000):  # until the new gateway listens (bounded)
                if time.monotonic() >= end:
                    return
                try:
                    c = RawConn(g.port, timeout=10)
                except OSError:
                    time.sleep(0.001)
                    continue
                with c:
                    c.send(raw)
                    box["answer"] = c.read_response()
                return

        t = threading.Thread(target=knock, daemon=True)
        t.start()
        g2 = gateway_factory.new(cfg, state=g.state, port=g.port).start()
        g2.admin_token = g.admin_token
        t.join(15)
        assert box.get("answer") is not None and box["answer"].status == 202, box
        second = box["answer"].json()["runId"]
        wait_run(g2, second, timeout=30)
        r = http(g2, "GET", "/sessions/chaos:order/history", token=g2.admin_token)
        msgs = [(m["role"], m["runId"]) for m in r.json()["messages"]]
        assert msgs == [("user", first), ("assistant", first), ("user", second), ("assistant", second)], \
            f"the hook posted at the restart ran before the run it should follow: {msgs}"
