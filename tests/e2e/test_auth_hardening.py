"""Security review fixes around authentication: a request without
credentials is not a failed attempt (no lockout of the user's own token by
a web page's credential-less requests), token secrets stay out of the
access log, the audit table and error messages, and a provider baseUrl's
userinfo and query never reach /health/detail or the log."""

import sqlite3

from agentlib import health_detail, llm_config, start
from e2elib import http, wait_for
from fakes.llm import FakeLLM
from hooklib import hook, hooks_config

LOCKOUT = {"gateway": {"auth": {"rateLimit": {"maxAttempts": 3, "windowMs": 60000, "lockoutMs": 300000}}}}


def test_missing_credentials_do_not_lock_out(gateway_factory):
    g = gateway_factory(LOCKOUT)
    for _ in range(12):  # four times maxAttempts, like <img> tags on a web page
        r = http(g, "GET", "/api/v1/sessions")
        assert r.status_code == 401 and r.json()["error"] == "unauthorized", r.text
    r = http(g, "GET", "/api/v1/sessions", token=g.admin_token)
    assert r.status_code == 200, r.text
    # a presented wrong secret still counts
    for i in range(3):
        assert http(g, "GET", "/api/v1/sessions", token=f"oc_tok_wrong{i:040d}").status_code == 401
    r = http(g, "GET", "/api/v1/sessions", token=g.admin_token)
    assert r.status_code == 429 and r.json()["error"] == "too_many_failed_attempts", r.text


def test_missing_credentials_on_hooks_do_not_lock_out(gateway_factory):
    with FakeLLM("openai") as fake:
        fake.push({"text": "ok", "times": -1})
        cfg = hooks_config({"p": fake})
        del cfg["hooks"]["token"]  # hooks take the gateway's credentials and share its limiter
        cfg["gateway"] = LOCKOUT["gateway"]
        g = start(gateway_factory, cfg)
        for _ in range(25):  # past both the gateway's 3 and the hooks' own 20
            assert hook(g, body={"message": "x"}, token=None).status_code == 401
        assert hook(g, body={"message": "x"}, token=g.admin_token).status_code == 202
        assert http(g, "GET", "/api/v1/sessions", token=g.admin_token).status_code == 200


def _audit_paths(g):
    db = sqlite3.connect(f"file:{g.state / 'chela.db'}?mode=ro", uri=True)
    try:
        return [row[0] for row in db.execute("SELECT path FROM audit WHERE request_id = 'del-secret'")]
    finally:
        db.close()


def test_delete_by_secret_leaks_nothing(gw):
    secret = gw.create_token("victim", "read")["token"]
    tail = secret[len("oc_tok_"):]
    r = http(gw, "DELETE", f"/api/v1/tokens/{secret}", token=gw.admin_token, headers={"X-Request-Id": "del-secret"})
    assert r.status_code == 404, r.text
    assert tail[:4] not in r.text, r.text
    assert wait_for(lambda: bool(_audit_paths(gw)), 3.0)
    path = _audit_paths(gw)[0]
    assert path.startswith("/api/v1/tokens/oc_tok_") and tail[:4] not in path, path
    assert gw.wait_stderr(lambda t: "del-secret" in t, 3.0)
    err = gw.stderr()
    line = [x for x in err.splitlines() if "del-secret" in x][0]
    assert "oc_tok_" in line and tail[:4] not in line, line
    assert tail[:4] not in err


def test_delete_by_percent_encoded_secret_leaks_nothing(gw):
    """The same secret percent-encoded in the path (oc%5Ftok%5F..., escapes
    inside it too): neither the access log, the audit row nor the answer
    shows it (they show the decoded path, masked; the masker also knows the
    encoded prefix, unit-tested in test_core.c)."""
    secret = gw.create_token("victim2", "read")["token"]
    tail = secret[len("oc_tok_"):]
    enc = secret.replace("_", "%5F")
    r = http(gw, "DELETE", f"/api/v1/tokens/{enc}", token=gw.admin_token, headers={"X-Request-Id": "del-enc"})
    assert r.status_code == 404, r.text
    assert tail[:4] not in r.text, r.text
    db = sqlite3.connect(f"file:{gw.state / 'chela.db'}?mode=ro", uri=True)
    try:
        rows = lambda: [x[0] for x in db.execute("SELECT path FROM audit WHERE request_id = 'del-enc'")]  # noqa: E731
        assert wait_for(lambda: bool(rows()), 3.0)
        assert tail[:4] not in rows()[0] and rows()[0].endswith("****"), rows()
    finally:
        db.close()
    assert gw.wait_stderr(lambda t: "del-enc" in t, 3.0)
    line = [x for x in gw.stderr().splitlines() if "del-enc" in x][0]
    assert "oc_tok_****" in line or "oc%5Ftok%5F****" in line, line
    assert enc[len("oc%5Ftok%5F"):][:6] not in gw.stderr()


def _breaker_gateway(gateway_factory, fake, suffix=""):
    cfg = llm_config({"p": fake}, breaker={"failureThreshold": 1, "cooldownMs": 60000})
    cfg["models"]["providers"]["p"]["baseUrl"] = fake.base_url.replace("://", "://alice:hunter2pw@", 1) + suffix
    g = start(gateway_factory, cfg)
    http(g, "POST", "/api/v1/chat", token=g.admin_token, json={"message": "x"}, timeout=20)
    br = health_detail(g)["llm"]["breakers"]
    assert br, br
    return g, br[0]["endpoint"]


def test_breaker_endpoint_without_userinfo_or_query(gateway_factory):
    with FakeLLM("openai") as fake:
        g, ep = _breaker_gateway(gateway_factory, fake, "?key=querysecret42")
        assert ep == fake.base_url, ep


def test_breaker_log_without_userinfo(gateway_factory):
    with FakeLLM("openai", default={"status": 500}) as fake:
        g, ep = _breaker_gateway(gateway_factory, fake)
        assert ep == fake.base_url, ep
        assert g.wait_stderr(lambda t: "circuit open" in t, 5.0), g.stderr()[-2000:]
        line = [x for x in g.stderr().splitlines() if "circuit open" in x][0]
        assert fake.base_url in line and "hunter2pw" not in line and "alice" not in line, line
