"""Per-token and global rate limits: 429 + Retry-After + JSON body,
X-RateLimit-* headers, recovery (contract: rate limit)."""

import time

import pytest

from e2elib import assert_error, http

RL_TOKEN = "oc_tok_" + "R" * 43
RL2_TOKEN = "oc_tok_" + "S" * 43


def rl_config(per_token=None, glob=None, tokens=None):
    rl = {"perToken": per_token or {"windowMs": 2000, "maxRequests": 3}}
    if glob:
        rl["global"] = glob
    return {"api": {
        "rateLimit": rl,
        "auth": {"tokens": tokens or [{"name": "rl", "token": RL_TOKEN, "scope": ["read"]}]},
    }}


def limit_headers(r):
    h = r.headers
    return tuple(h.get(n) for n in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"))


@pytest.mark.slow
def test_per_token_429_and_recovery(gateway_factory):
    g = gateway_factory(rl_config(), base=False)
    seen = []
    for i in range(3):
        r = http(g, "GET", "/health/detail", token=RL_TOKEN)
        assert r.status_code == 200, (i, r.status_code, r.text)
        lim, rem, reset = limit_headers(r)
        assert lim == "3", r.headers
        seen.append(int(rem))
        assert reset is not None and 0 <= int(reset) <= 2, r.headers
    assert seen == [2, 1, 0], seen

    r = http(g, "GET", "/health/detail", token=RL_TOKEN)
    j = assert_error(r, 429, "rate_limit_exceeded")
    ra = r.headers.get("retry-after")
    assert ra is not None and ra.isdigit() and 1 <= int(ra) <= 2, r.headers
    assert j.get("retryAfter") == int(ra), j
    assert set(j) >= {"error", "message", "retryAfter"}
    lim, rem, reset = limit_headers(r)
    assert lim == "3" and rem == "0", r.headers

    # One request's worth refills in 2000/3 ms; allow scheduling slack.
    t0 = time.monotonic()
    ok_at = None
    for _ in range(40):
        time.sleep(0.1)
        r = http(g, "GET", "/health/detail", token=RL_TOKEN)
        if r.status_code == 200:
            ok_at = time.monotonic() - t0
            break
        assert r.status_code == 429, r.text
        if time.monotonic() - t0 > 3.0:
            break
    assert ok_at is not None, "no recovery within 3 s"
    assert 0.4 <= ok_at <= 1.5, f"recovered after {ok_at:.2f}s; expected about 0.67 s"


@pytest.mark.slow
def test_buckets_are_per_token(gateway_factory):
    g = gateway_factory(rl_config(tokens=[
        {"name": "rl", "token": RL_TOKEN, "scope": ["read"]},
        {"name": "rl2", "token": RL2_TOKEN, "scope": ["read"]},
    ]), base=False)
    for _ in range(3):
        assert http(g, "GET", "/health/detail", token=RL_TOKEN).status_code == 200
    assert http(g, "GET", "/health/detail", token=RL_TOKEN).status_code == 429
    r = http(g, "GET", "/health/detail", token=RL2_TOKEN)
    assert r.status_code == 200, r.text
    assert r.headers.get("x-ratelimit-remaining") == "2"


def test_token_own_rate_limit(gateway_factory):
    """A token's own rateLimit (RPM) replaces perToken, 60 s window."""
    g = gateway_factory(rl_config(tokens=[
        {"name": "rl", "token": RL_TOKEN, "scope": ["read"], "rateLimit": 2}]), base=False)
    codes = [http(g, "GET", "/health/detail", token=RL_TOKEN).status_code for _ in range(3)]
    assert codes == [200, 200, 429], codes
    r = http(g, "GET", "/health/detail", token=RL_TOKEN)
    assert r.headers.get("x-ratelimit-limit") == "2"
    ra = int(r.headers["retry-after"])
    assert 20 <= ra <= 31, ra  # 60 s / 2 per window: about 30 s to the next


def test_cli_token_rate_limit(gw):
    tok = gw.create_token("cli-rl", "read", extra=("--rate-limit", "2"))["token"]
    codes = []
    for _ in range(40):
        r = http(gw, "GET", "/health/detail", token=tok)
        if r.status_code != 401:
            codes.append(r.status_code)
        if len(codes) == 3:
            break
        time.sleep(0.05 if r.status_code == 401 else 0)
    assert codes == [200, 200, 429], codes


def test_global_limit(gateway_factory):
    g = gateway_factory(rl_config(
        per_token={"windowMs": 60000, "maxRequests": 100},
        glob={"windowMs": 60000, "maxRequests": 4},
        tokens=[{"name": "rl", "token": RL_TOKEN, "scope": ["read"]},
                {"name": "rl2", "token": RL2_TOKEN, "scope": ["read"]}]), base=False)
    codes = []
    for i in range(6):
        r = http(g, "GET", "/health/detail", token=RL_TOKEN if i % 2 else RL2_TOKEN)
        codes.append(r.status_code)
    assert codes[:4] == [200] * 4, codes
    assert codes[4:] == [429, 429], codes
    assert_error(r, 429, "rate_limit_exceeded")
    assert r.headers.get("retry-after", "").isdigit()


def test_unauthenticated_health_not_limited_per_token(gateway_factory):
    g = gateway_factory(rl_config(), base=False)
    codes = {http(g, "GET", "/health").status_code for _ in range(10)}
    assert codes == {200}


def test_bucket_follows_a_changed_limit(gw):
    """Buckets are kept by token name and were sized once: a token revoked
    and made again with another rateLimit, or a limit changed in the
    database (the CLI's process), kept the first size until SIGHUP.  What
    was used in the window carries over at the new size."""
    import json
    import sqlite3

    def make(rpm):
        r = http(gw, "POST", "/api/v1/tokens", token=gw.admin_token, headers={"Content-Type": "application/json"},
                 data=json.dumps({"name": "rl-change", "scope": ["read"], "rateLimit": rpm}))
        assert r.status_code == 201, r.text
        return r.json()["token"]

    tok = make(2)
    codes = [http(gw, "GET", "/health/detail", token=tok).status_code for _ in range(3)]
    assert codes == [200, 200, 429], codes
    assert http(gw, "DELETE", "/api/v1/tokens/rl-change", token=gw.admin_token).status_code == 200
    tok = make(5)
    r = http(gw, "GET", "/health/detail", token=tok)
    assert r.status_code == 200, r.text
    assert limit_headers(r)[:2] == ("5", "2"), r.headers  # 2 used before, this one: 5 - 3
    # A limit changed in the database reaches the bucket with the next refresh (1 s).
    db = sqlite3.connect(str(gw.state / "chela.db"), timeout=5)
    with db:
        db.execute("UPDATE tokens SET rate_limit = 8 WHERE name = 'rl-change' AND revoked_ms = 0")
    db.close()
    for _ in range(2):  # two requests left at 5: wait out the refresh before each
        time.sleep(1.5)
        r = http(gw, "GET", "/health/detail", token=tok)
        assert r.status_code == 200, r.text
        if limit_headers(r)[0] == "8":
            break
    assert limit_headers(r)[0] == "8", r.headers
    assert int(limit_headers(r)[1]) >= 3  # 8 - the 4 or 5 used
