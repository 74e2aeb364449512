"""The loop's mask of the events REST webhooks want (webhooks.c) must never
lose a committed webhook: a `GET /api/v1/webhooks` whose table snapshot
was taken before a concurrent `POST /api/v1/webhooks` committed, and that
finishes after the POST, used to overwrite the mask and drop the new
webhook's events (no row, no log) until the next create, delete or list.
"""

import json
import threading
import time

import requests

from e2elib import HOST, RawConn, http, request_bytes
from receivers import Receiver

# Filler webhooks make every listing read a few hundred KiB, so listings
# overlap the creates' commits; they want an event nothing here emits.
FILLERS = 95
FILLER_HEADERS = {f"X-Filler-{i}": "f" * 480 for i in range(31)}
CYCLES = 60
HAMMERS = 8


def _hammer(gw, tok, stop, errors):
    with requests.Session() as s:
        s.trust_env = False
        url = f"http://{HOST}:{gw.port}/api/v1/webhooks"
        while not stop.is_set():
            r = s.get(url, headers={"Authorization": f"Bearer {tok}"}, timeout=10)
            if r.status_code != 200:
                errors.append(r.status_code)
                return


def test_listing_during_create_never_hides_the_new_webhook(gateway_factory):
    with Receiver() as rx:
        gw = gateway_factory()
        tok = gw.admin_token
        for i in range(FILLERS):
            r = http(gw, "POST", "/api/v1/webhooks", token=tok,
                     json={"url": rx.url(f"/filler{i}"), "events": ["channel.connected"],
                           "headers": FILLER_HEADERS})
            assert r.status_code == 201, r.text
        missed = []
        for cycle in range(CYCLES):
            stop, errors = threading.Event(), []
            threads = [threading.Thread(target=_hammer, args=(gw, tok, stop, errors)) for _ in range(HAMMERS)]
            for t in threads:
                t.start()
            time.sleep(0.02)
            # Listings stop once the create is on its way: the last ones to
            # finish are then those that overlapped its commit.
            with RawConn(gw.port, timeout=10) as c:
                c.send(request_bytes("POST", "/api/v1/webhooks", {
                    "Authorization": f"Bearer {tok}", "Content-Type": "application/json"},
                    json.dumps({"url": rx.url(f"/new{cycle}"), "events": ["message.sent"]})))
                stop.set()
                r = c.read_response()
            for t in threads:
                t.join(10)
            assert r.status_code == 201, r.text
            assert not errors, errors
            wh = r.json()["id"]
            r = http(gw, "POST", "/api/v1/send", token=tok,
                     json={"channel": "webhook", "chatId": f"c{cycle}", "message": "hello"})
            assert r.status_code == 200, r.text
            deadline = time.monotonic() + 1
            while time.monotonic() < deadline and not any(q["path"] == f"/new{cycle}" for q in rx.received):
                time.sleep(0.02)
            if not any(q["path"] == f"/new{cycle}" for q in rx.received):
                missed.append(cycle)
            assert http(gw, "DELETE", f"/api/v1/webhooks/{wh}", token=tok).status_code == 200
        assert not missed, f"new webhooks that never got their event: cycles {missed} of {CYCLES}"
