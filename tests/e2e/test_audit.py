"""The audit trail (api/audit.c, store/audit.c): one row per authenticated
request, written in batches off the loop; a clean stop commits every row
still buffered, and rows appear within milliseconds on an idle gateway."""

import sqlite3

from e2elib import http, wait_for


def audit_rows(gw):
    db = sqlite3.connect(f"file:{gw.state / 'chela.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT request_id, token_name, method, path, status FROM audit"
                          " ORDER BY id").fetchall()
    finally:
        db.close()


def test_rows_written_soon_and_on_stop(gateway_factory):
    gw = gateway_factory()
    r = http(gw, "GET", "/health/detail?x=1", token=gw.admin_token, headers={"X-Request-Id": "audit-one"})
    assert r.status_code == 200, r.text
    # Idle gateway: the batch still commits within a few ms (lazy write).
    assert wait_for(lambda: any(row[0] == "audit-one" for row in audit_rows(gw)), 3.0)
    row = [x for x in audit_rows(gw) if x[0] == "audit-one"][0]
    assert row[2:] == ("GET", "/health/detail", 200)  # no query string
    # A burst, then a clean stop right away: nothing buffered is lost.
    for i in range(150):
        r = http(gw, "GET", "/health/detail", token=gw.admin_token, headers={"X-Request-Id": f"burst-{i}"})
        assert r.status_code == 200
    assert gw.stop() == 0
    ids = {x[0] for x in audit_rows(gw)}
    assert {f"burst-{i}" for i in range(150)} <= ids
    # Unauthenticated requests are not audited.
    assert not any(x[1] == "" for x in audit_rows(gw))
