"""The durable outbox (issue #4 item 2): retries with backoff, Retry-After,
at-least-once across SIGTERM and SIGKILL, dead letters for permanent
refusals and exhausted retries, manual retry over REST and with
`chela deliveries retry`, and the REST listing.

Deliveries are mostly produced by a run.completed webhook (the same
engine the hook callbacks use); runs are started with POST /api/v1/chat
against the fake Anthropic upstream.  One test goes through /hooks/agent
with a native callback, i.e. through ch_outbox_enqueue.
"""

import json
import signal
import time

import pytest

from e2elib import assert_error, free_port, http, wait_for
from fakes.llm import FakeLLM
from hooklib import hook as post_hook
from hooklib import hooks_config
from receivers import Receiver
from test_webhooks_out import chat, deliveries, gateway

SECRET = "outbox-secret-1"


def hook(rx_url, attempts=3, backoff=100, events=("run.completed",)):
    return {"url": rx_url, "secret": SECRET, "events": list(events),
            "retry": {"maxAttempts": attempts, "backoffMs": backoff}}


def wait_delivery(gw, run_id, pred, timeout=15.0, token=None):
    """Poll the run's one delivery until pred(row) holds; returns the row."""
    last = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = deliveries(gw, token=token, runId=run_id)["deliveries"]
        if rows:
            last = rows[0]
            if pred(last):
                return last
        time.sleep(0.05)
    raise AssertionError(f"delivery of run {run_id} never matched; last: {last}")


def test_500_twice_then_200(gateway_factory):
    """Three attempts recorded, exactly one success, the same delivery id on
    each, every attempt signed afresh, waits growing."""
    with FakeLLM("anthropic") as fake, Receiver(script=[500, 500, 200], secret=SECRET) as rx:
        gw = gateway(gateway_factory, fake, [hook(rx.url(), attempts=3, backoff=200)])
        res = chat(gw, "go")
        reqs = rx.wait(3)
        row = wait_delivery(gw, res["runId"], lambda r: r["status"] == "done")
        assert row["attempts"] == 3 and row["lastStatus"] == 200 and row["lastError"] is None
        assert row["deliveredAt"]
        time.sleep(0.5)
        assert len(rx.received) == 3
        assert [r["status"] for r in rx.received] == [500, 500, 200]
        assert len({r["headers"]["x-openclaw-delivery"] for r in reqs}) == 1
        assert [r["headers"]["x-openclaw-attempt"] for r in reqs] == ["1", "2", "3"]
        assert all(r["sig_ok"] for r in reqs)
        assert len({r["body"] for r in reqs}) == 1  # the body never changes
        gap1, gap2 = reqs[1]["time"] - reqs[0]["time"], reqs[2]["time"] - reqs[1]["time"]
        assert 0.18 <= gap1 < 2.0 and 0.38 <= gap2 < 3.0, (gap1, gap2)  # 200 ms, then 400 ms (+10%)
        m = http(gw, "GET", "/metrics", token=gw.admin_token).text
        assert 'chela_delivery_attempts_total{result="5xx"} 2' in m
        assert 'chela_deliveries_total{outcome="retried"} 2' in m


def test_retry_after_is_honoured(gateway_factory):
    with FakeLLM("anthropic") as fake, \
            Receiver(script=[{"status": 429, "headers": {"Retry-After": "2"}}, 200], secret=SECRET) as rx:
        gw = gateway(gateway_factory, fake, [hook(rx.url(), backoff=50)])
        res = chat(gw, "go")
        reqs = rx.wait(2, timeout=10)
        assert reqs[1]["time"] - reqs[0]["time"] >= 1.9
        wait_delivery(gw, res["runId"], lambda r: r["status"] == "done" and r["attempts"] == 2)


def test_permanent_4xx_is_dead_at_once_then_rest_retry(gateway_factory):
    with FakeLLM("anthropic") as fake, Receiver(script=[422], secret=SECRET) as rx:
        gw = gateway(gateway_factory, fake, [hook(rx.url(), attempts=5, backoff=50)])
        res = chat(gw, "go")
        row = wait_delivery(gw, res["runId"], lambda r: r["status"] == "dead")
        assert row["attempts"] == 1 and row["lastStatus"] == 422
        assert row["lastError"].startswith("permanent: HTTP 422")
        assert "scripted" in row["lastError"]  # the receiver's answer is kept (a snippet)
        time.sleep(0.4)
        assert len(rx.received) == 1  # no retry of a permanent refusal
        dead = deliveries(gw, status="dead")
        assert [d["id"] for d in dead["deliveries"]] == [row["id"]] and dead["counts"]["dead"] == 1
        # The receiver is fixed; a manual retry delivers it.
        r = http(gw, "POST", f"/api/v1/deliveries/{row['id']}/retry", token=gw.admin_token)
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True and r.json()["delivery"]["status"] == "pending"
        rx.wait(2)
        row = wait_delivery(gw, res["runId"], lambda d: d["status"] == "done")
        assert row["attempts"] == 2 and row["lastStatus"] == 200
        assert rx.received[1]["headers"]["x-openclaw-delivery"] == row["id"]
        assert rx.received[1]["sig_ok"]
        # Done cannot be retried; unknown ids are 404.
        assert_error(http(gw, "POST", f"/api/v1/deliveries/{row['id']}/retry", token=gw.admin_token), 409,
                     "conflict")
        assert_error(http(gw, "POST", "/api/v1/deliveries/nope/retry", token=gw.admin_token), 404, "not_found")
        assert_error(http(gw, "GET", "/api/v1/deliveries/nope", token=gw.admin_token), 404, "not_found")
        assert_error(http(gw, "GET", "/api/v1/deliveries?status=lost", token=gw.admin_token), 400)
        assert 'chela_deliveries_total{outcome="manual_retry"} 1' in \
            http(gw, "GET", "/metrics", token=gw.admin_token).text


def test_exhausted_retries_dead_then_cli_retry(gateway_factory):
    with FakeLLM("anthropic") as fake, Receiver(script=[503, 503], secret=SECRET) as rx:
        gw = gateway(gateway_factory, fake, [hook(rx.url(), attempts=2, backoff=100)])
        res = chat(gw, "go")
        row = wait_delivery(gw, res["runId"], lambda r: r["status"] == "dead")
        assert row["attempts"] == 2 and row["lastStatus"] == 503
        assert row["lastError"].startswith("gave up after the last attempt: HTTP 503")
        p = gw.cli("deliveries", "list", "--status", "dead", "--json")
        assert p.returncode == 0, p.stderr
        listed = json.loads(p.stdout)
        assert [d["id"] for d in listed["deliveries"]] == [row["id"]]
        p = gw.cli("deliveries", "list", "--status", "dead")
        assert p.returncode == 0 and row["id"] in p.stdout and "dead" in p.stdout, p.stdout
        p = gw.cli("deliveries", "retry", row["id"])
        assert p.returncode == 0, p.stderr
        assert row["id"] in p.stdout
        row = wait_delivery(gw, res["runId"], lambda r: r["status"] == "done")
        assert row["attempts"] == 3
        assert len(rx.received) == 3 and rx.received[2]["status"] == 200
        # A fresh budget after a manual retry: two more failures are allowed.
        p = gw.cli("deliveries", "show", row["id"])
        assert p.returncode == 0 and "done" in p.stdout
        p = gw.cli("deliveries", "retry", "no-such-id")
        assert p.returncode == 1 and "no-such-id" in p.stderr
        p = gw.cli("deliveries", "list", "--status", "bogus")
        assert p.returncode == 2


def test_manual_retry_gets_a_fresh_budget(gateway_factory):
    with FakeLLM("anthropic") as fake, Receiver(script=[500, 500, 500, 500], secret=SECRET) as rx:
        gw = gateway(gateway_factory, fake, [hook(rx.url(), attempts=2, backoff=50)])
        res = chat(gw, "go")
        row = wait_delivery(gw, res["runId"], lambda r: r["status"] == "dead")
        assert row["attempts"] == 2
        assert http(gw, "POST", f"/api/v1/deliveries/{row['id']}/retry", token=gw.admin_token).status_code == 200
        row = wait_delivery(gw, res["runId"], lambda r: r["status"] == "dead" and r["attempts"] == 4)
        assert len(rx.received) == 4


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_receiver_down_until_after_restart(gateway_factory, sig):
    """The receiver is down (connection refused); the gateway is stopped
    between attempts; after a restart with the receiver up, the pending
    delivery is sent, once."""
    port = free_port()
    with FakeLLM("anthropic") as fake:
        gw = gateway(gateway_factory, fake, [hook(f"http://127.0.0.1:{port}/late", attempts=10, backoff=300)])
        tok = gw.admin_token
        res = chat(gw, "go")
        row = wait_delivery(gw, res["runId"], lambda r: r["attempts"] >= 1 and r["status"] == "pending")
        assert row["lastStatus"] is None and row["lastError"], row  # a transport error, no HTTP status
        gw.signal(sig)
        gw.wait(20)
        with Receiver(secret=SECRET, port=port) as rx:
            gw2 = gateway_factory(state=gw.state, config=None, base=False)
            req = rx.wait(1, timeout=15)[0]
            assert req["sig_ok"]
            assert req["headers"]["x-openclaw-delivery"] == row["id"]
            assert json.loads(req["body"])["data"]["runId"] == res["runId"]
            row = wait_delivery(gw2, res["runId"], lambda r: r["status"] == "done", token=tok)
            time.sleep(0.5)
            assert len(rx.received) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_attempt_in_flight_at_stop_is_sent_again(gateway_factory, sig):
    """A receiver that hangs: the gateway stops during the attempt (SIGTERM
    aborts it and exits promptly; SIGKILL leaves it `sending`); at the
    next start it is pending again and delivered (at least once)."""
    with FakeLLM("anthropic") as fake, Receiver(script=[{"status": 200, "delay": 8}], secret=SECRET) as rx:
        gw = gateway(gateway_factory, fake, [hook(rx.url(), attempts=3, backoff=100)])
        tok = gw.admin_token
        res = chat(gw, "go")
        rx.wait(1)
        t0 = time.monotonic()
        gw.signal(sig)
        rc = gw.wait(20)
        if sig == signal.SIGTERM:
            assert rc == 0 and time.monotonic() - t0 < 5, "an in-flight attempt must not hold up the shutdown"
        gw2 = gateway_factory(state=gw.state, config=None, base=False)
        reqs = rx.wait(2, timeout=15)
        assert reqs[0]["headers"]["x-openclaw-delivery"] == reqs[1]["headers"]["x-openclaw-delivery"]
        row = wait_delivery(gw2, res["runId"], lambda r: r["status"] == "done", token=tok)
        assert row["attempts"] == 1  # the interrupted attempt is not counted against the budget
        if sig == signal.SIGKILL:
            assert "will be sent again" in gw2.stderr()


def test_listing_filters_and_paging(gateway_factory):
    with FakeLLM("anthropic") as fake, Receiver() as rx:
        gw = gateway(gateway_factory, fake, [{"url": rx.url(), "events": ["message.sent", "run.completed"]}])
        runs = [chat(gw, f"m{i}")["runId"] for i in range(3)]
        rx.wait(6)
        assert wait_for(lambda: deliveries(gw)["counts"]["done"] == 6, 10)
        page = deliveries(gw, limit=4)
        assert len(page["deliveries"]) == 4 and page["total"] == 6 and page["nextCursor"]
        rest = deliveries(gw, limit=4, cursor=page["nextCursor"])
        assert len(rest["deliveries"]) == 2 and rest["nextCursor"] is None
        ids = [d["id"] for d in page["deliveries"] + rest["deliveries"]]
        assert len(set(ids)) == 6
        created = [d["createdAt"] for d in page["deliveries"] + rest["deliveries"]]
        assert created == sorted(created, reverse=True)  # newest first
        one = deliveries(gw, runId=runs[1])
        assert one["total"] == 2 and {d["event"] for d in one["deliveries"]} == {"message.sent", "run.completed"}
        assert deliveries(gw, status="pending")["deliveries"] == []
        assert_error(http(gw, "GET", "/api/v1/deliveries?limit=0", token=gw.admin_token), 400)


def test_hook_callback_goes_through_the_outbox(gateway_factory):
    """A /hooks/agent native callback (ch_outbox_enqueue, kind callback):
    retried after a 500, signed with the callback secret, listed by run."""
    with FakeLLM("anthropic", default={"text": '{"decision": "buy"}'}) as fake, \
            Receiver(script=[500, 200], secret="cb-secret-123") as rx:
        cfg = hooks_config({"p": fake}, hooks={"retry": {"maxAttempts": 3, "backoffMs": 100}})
        g = gateway_factory(cfg)
        r = post_hook(g, body={"message": "analyse", "callback": {
            "url": rx.url("/cb"), "mode": "raw", "secret": "cb-secret-123",
            "headers": {"Authorization": "Bearer cb-token"}}})
        assert r.status_code == 202, r.text
        run_id = r.json()["runId"]
        reqs = rx.wait(2)
        assert all(x["sig_ok"] for x in reqs)
        assert reqs[1]["body"] == b'{"decision": "buy"}'  # raw mode: the agent's JSON, byte for byte
        assert reqs[1]["headers"]["authorization"] == "Bearer cb-token"
        assert "x-openclaw-event" not in reqs[1]["headers"]
        row = wait_delivery(g, run_id, lambda d: d["status"] == "done", token=g.admin_token)
        assert row["kind"] == "callback" and row["attempts"] == 2 and row["event"] is None
        assert row["headers"] == ["Authorization"] and row["signed"] is True
        assert reqs[0]["headers"]["x-openclaw-delivery"] == row["id"]


def test_listing_refuses_bad_query_values(gateway_factory):
    """A control byte or an over-long runId is the caller's mistake (400),
    not a store error (it was 500 store_error)."""
    gw = gateway_factory()
    for q in ("runId=%01", "runId=a%0Ab", "runId=" + "r" * 129, "status=done&runId=%7F"):
        j = assert_error(http(gw, "GET", f"/api/v1/deliveries?{q}", token=gw.admin_token), 400, "invalid_request")
        assert "runId" in j["message"], (q, j)
    assert http(gw, "GET", "/api/v1/deliveries?runId=" + "r" * 128, token=gw.admin_token).status_code == 200


@pytest.mark.parametrize("answer, kept", [
    # 199 ASCII bytes then a 2-byte character: the 200-byte cut splits it.
    ("x" * 199 + "\u00e9" + "tail", "x" * 199),
    # Bytes that are not UTF-8 at all.
    (b"bad \xff\xfe bytes \xc3(", "bad \ufffd\ufffd bytes \ufffd("),
], ids=["cut-character", "invalid-bytes"])
def test_last_error_is_always_valid_text(gateway_factory, answer, kept):
    """The receiver's answer kept in lastError is cut on a character
    boundary and made valid UTF-8, so lastError is never dropped."""
    body = answer.encode() if isinstance(answer, str) else answer
    with Receiver(script=[{"status": 422, "body": body}]) as rx:
        gw = gateway_factory({"api": {"webhooks": {"outgoing": [
            {"url": rx.url(), "events": ["message.sent"], "retry": {"maxAttempts": 1, "backoffMs": 50}}]}}})
        r = http(gw, "POST", "/api/v1/send", token=gw.admin_token,
                 json={"channel": "webhook", "chatId": "1", "message": "x"})
        assert r.status_code == 200, r.text
        rx.wait(1)
        assert wait_for(lambda: deliveries(gw)["counts"]["dead"] == 1, 10)
        row = deliveries(gw, status="dead")["deliveries"][0]
        assert row["lastStatus"] == 422
        assert row["lastError"] == f"permanent: HTTP 422: {kept}", row["lastError"]
        one = http(gw, "GET", f"/api/v1/deliveries/{row['id']}", token=gw.admin_token).json()
        assert one["lastError"] == row["lastError"]
