"""Token management through the CLI (while the gateway runs) and through
REST /api/v1/tokens (contract: Client subcommands, Routes)."""

import json
import re

import pytest

from e2elib import TOKEN_RE, assert_error, http, wait_ok

ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
LIST_KEYS = {"name", "scopes", "rateLimit", "createdAt", "lastUsedAt", "expiresAt", "source"}
CREATE_KEYS = {"name", "token", "scopes", "rateLimit", "createdAt", "expiresAt"}


def find(tokens, name):
    m = [t for t in tokens if t["name"] == name]
    assert len(m) == 1, (name, tokens)
    return m[0]


pytestmark = pytest.mark.cli


def test_cli_create_text_output(gw):
    p = gw.cli("token", "create", "--name", "text-out", "--scope", "chat,send,read")
    assert p.returncode == 0, p.stderr
    lines = dict(l.split(": ", 1) for l in p.stdout.strip().splitlines() if ": " in l)
    assert TOKEN_RE.match(lines["Token"]), p.stdout
    assert lines["Name"] == "text-out"
    assert lines["Scope"] == "chat, send, read"
    assert lines["Rate limit"] == "default"
    assert lines["Expires"] == "never"
    # The secret is on stdout only, never on stderr (logs).
    assert lines["Token"] not in p.stderr


def test_cli_create_with_rate_and_expiry(gw):
    p = gw.cli("token", "create", "--name", "rated", "--scope", "read", "--rate-limit", "60",
               "--expires", "90d")
    assert p.returncode == 0, p.stderr
    lines = dict(l.split(": ", 1) for l in p.stdout.strip().splitlines() if ": " in l)
    assert lines["Rate limit"] == "60 rpm"
    assert lines["Expires"] != "never" and re.search(r"\d{4}-\d{2}-\d{2}", lines["Expires"])


def test_cli_create_json_and_use(gw):
    j = gw.create_token("json-out", "read,chat", extra=("--rate-limit", "30"))
    assert set(j) == CREATE_KEYS, j
    assert TOKEN_RE.match(j["token"])
    assert j["name"] == "json-out"
    assert sorted(j["scopes"]) == ["chat", "read"]
    assert j["rateLimit"] == 30
    assert ISO_RE.match(j["createdAt"]), j
    assert j["expiresAt"] is None
    r = wait_ok(gw, "/health/detail", j["token"])
    assert r.status_code == 200, r.text
    assert r.headers.get("x-ratelimit-limit") == "30"
    r = http(gw, "GET", "/api/v1/tokens", token=j["token"])
    assert assert_error(r, 403, "forbidden")["missingScope"] == "admin"


def test_cli_list_never_shows_secrets(gw):
    made = [gw.create_token(f"lst-{i}", s) for i, s in enumerate(["read", "chat,send", "admin"])]
    p = gw.cli("token", "list", "--json")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for m in made:
        assert m["token"] not in out
    assert gw.admin_token not in out
    assert "oc_tok_" not in out
    j = json.loads(out)
    assert set(j) == {"tokens"}
    for t in j["tokens"]:
        assert set(t) == LIST_KEYS, t
        assert isinstance(t["scopes"], list)
        for k in ("createdAt", "lastUsedAt", "expiresAt"):
            assert t[k] is None or ISO_RE.match(t[k]), (k, t)
    t = find(j["tokens"], "lst-1")
    assert sorted(t["scopes"]) == ["chat", "send"]
    assert t["lastUsedAt"] is None
    # Text table.
    p = gw.cli("token", "list")
    assert p.returncode == 0, p.stderr
    header = p.stdout.splitlines()[0].split()
    assert header == ["NAME", "SCOPES", "RATE", "CREATED", "LAST-USED", "EXPIRES"], p.stdout
    assert "lst-0" in p.stdout and "lst-2" in p.stdout
    assert "oc_tok_" not in p.stdout


def test_cli_list_last_used(gw):
    tok = gw.create_token("used-one", "read")["token"]
    assert wait_ok(gw, "/health/detail", tok).status_code == 200
    import time
    last = None
    for _ in range(30):  # last-used is written behind the request (bounded wait)
        p = gw.cli("token", "list", "--json")
        last = find(json.loads(p.stdout)["tokens"], "used-one")["lastUsedAt"]
        if last:
            break
        time.sleep(0.1)
    assert last and ISO_RE.match(last), last


def test_cli_duplicate_name_exit_1(gw):
    gw.create_token("dup", "read")
    p = gw.cli("token", "create", "--name", "dup", "--scope", "read")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "dup" in p.stderr
    assert "oc_tok_" not in p.stdout


def test_cli_revoke_unknown_exit_1(gw):
    p = gw.cli("token", "revoke", "no-such-token")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip()


def test_cli_revoke_twice(gw):
    gw.create_token("twice", "read")
    assert gw.cli("token", "revoke", "twice").returncode == 0
    assert gw.cli("token", "revoke", "twice").returncode == 1
    # A revoked name can be reused.
    j = gw.create_token("twice", "chat")
    assert j["scopes"] == ["chat"]


@pytest.mark.parametrize("args", [
    ("--name", "bad-scope", "--scope", "read,fly"),
    ("--name", "", "--scope", "read"),
    ("--scope", "read"),
    ("--name", "no-scope"),
    ("--name", "bad-rate", "--scope", "read", "--rate-limit", "-3"),
    ("--name", "bad-exp", "--scope", "read", "--expires", "soon"),
])
def test_cli_create_bad_args_exit_2(gw, args):
    p = gw.cli("token", "create", *args)
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    assert "oc_tok_" not in p.stdout


def test_cli_works_without_gateway(tmp_path):
    """token create/list write the db directly: no gateway needed."""
    from e2elib import run_cli
    state = tmp_path / "offline"
    p = run_cli(state, "token", "create", "--name", "offline", "--scope", "read", "--json")
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    assert TOKEN_RE.match(j["token"])
    p = run_cli(state, "token", "list", "--json")
    assert p.returncode == 0, p.stderr
    assert find(json.loads(p.stdout)["tokens"], "offline")["scopes"] == ["read"]


# ------------------------------------------------------------ REST


def post_token(gw, body, token=None, ctype="application/json"):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return http(gw, "POST", "/api/v1/tokens", token=token or gw.admin_token, data=data,
                headers={"Content-Type": ctype})


def test_rest_create_list_delete(gw):
    r = post_token(gw, {"name": "rest-one", "scope": ["read"], "rateLimit": 45})
    assert r.status_code == 201, r.text
    j = r.json()
    assert set(j) == CREATE_KEYS, j
    assert TOKEN_RE.match(j["token"])
    assert j["scopes"] == ["read"] and j["rateLimit"] == 45 and j["expiresAt"] is None
    # Works immediately over HTTP with its scope.
    r = wait_ok(gw, "/health/detail", j["token"])
    assert r.status_code == 200, r.text
    assert assert_error(http(gw, "GET", "/api/v1/tokens", token=j["token"]), 403)["missingScope"] == "admin"

    r = http(gw, "GET", "/api/v1/tokens", token=gw.admin_token)
    assert r.status_code == 200
    assert j["token"] not in r.text and "oc_tok_" not in r.text
    lst = r.json()
    assert set(lst) == {"tokens"}
    t = find(lst["tokens"], "rest-one")
    assert set(t) == LIST_KEYS and t["rateLimit"] == 45

    # The CLI sees it too.
    p = gw.cli("token", "list", "--json")
    find(json.loads(p.stdout)["tokens"], "rest-one")

    r = http(gw, "DELETE", "/api/v1/tokens/rest-one", token=gw.admin_token)
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True, "name": "rest-one"}
    r = http(gw, "DELETE", "/api/v1/tokens/rest-one", token=gw.admin_token)
    assert_error(r, 404)
    import time
    status = None
    for _ in range(30):
        status = http(gw, "GET", "/health/detail", token=j["token"]).status_code
        if status == 401:
            break
        time.sleep(0.05)
    assert status == 401, "token deleted over REST still accepted"
    names = [t["name"] for t in http(gw, "GET", "/api/v1/tokens", token=gw.admin_token).json()["tokens"]]
    assert "rest-one" not in names


def test_rest_scope_as_string_and_expires(gw):
    r = post_token(gw, {"name": "rest-str", "scope": "read,chat", "expires": "90d"})
    assert r.status_code == 201, r.text
    j = r.json()
    assert sorted(j["scopes"]) == ["chat", "read"]
    assert j["expiresAt"] and ISO_RE.match(j["expiresAt"]), j


def test_rest_duplicate_409(gw):
    assert post_token(gw, {"name": "rest-dup", "scope": ["read"]}).status_code == 201
    assert_error(post_token(gw, {"name": "rest-dup", "scope": ["read"]}), 409, "conflict")


@pytest.mark.parametrize("body", [
    "not json",
    "[]",
    "{}",
    '{"name":"x"}',
    '{"scope":["read"]}',
    '{"name":"x","scope":["fly"]}',
    '{"name":"x","scope":42}',
    '{"name":42,"scope":["read"]}',
    '{"name":"","scope":["read"]}',
    '{"name":"x","scope":["read"],"rateLimit":-1}',
    '{"name":"x","scope":["read"],"rateLimit":"fast"}',
    '{"name":"x","scope":["read"],"expires":"whenever"}',
    '{"name":"x","scope":["read"]',
])
def test_rest_bad_body_400(gw, body):
    assert_error(post_token(gw, body), 400, "invalid_request")


def test_rest_415(gw):
    assert_error(post_token(gw, {"name": "x", "scope": ["read"]}, ctype="text/plain"), 415)
    assert_error(post_token(gw, {"name": "x", "scope": ["read"]}, ctype="application/x-www-form-urlencoded"), 415)


def test_rest_delete_unknown_404(gw):
    assert_error(http(gw, "DELETE", "/api/v1/tokens/never-was", token=gw.admin_token), 404)


def test_rest_needs_admin(gw):
    assert_error(http(gw, "GET", "/api/v1/tokens"), 401, "unauthorized")
    assert_error(http(gw, "DELETE", "/api/v1/tokens/x"), 401, "unauthorized")
    assert_error(post_token(gw, {"name": "x", "scope": ["read"]}, token="oc_tok_" + "z" * 43), 401)


def test_rest_wrong_method_405(gw):
    r = http(gw, "PUT", "/api/v1/tokens", token=gw.admin_token, data=b"")
    assert_error(r, 405, "method_not_allowed")
    allow = {m.strip() for m in r.headers.get("allow", "").split(",")}
    assert {"GET", "POST"} <= allow, r.headers
    r = http(gw, "GET", "/api/v1/tokens/some-name", token=gw.admin_token)
    assert_error(r, 405, "method_not_allowed")
    assert "DELETE" in r.headers.get("allow", "")


def test_rest_expires_must_be_a_duration_string(gw):
    """A non-string expires is a mistake, not "never expires" (it was a 201
    with expiresAt null); null still means never."""
    for expires in (1, 0, True, ["90d"], {"d": 90}):
        j = assert_error(post_token(gw, {"name": "exp-typed", "scope": ["read"], "expires": expires}), 400,
                         "invalid_request")
        assert "expires" in j["message"], (expires, j)
    names = [t["name"] for t in http(gw, "GET", "/api/v1/tokens", token=gw.admin_token).json()["tokens"]]
    assert "exp-typed" not in names
    r = post_token(gw, {"name": "exp-null", "scope": ["read"], "expires": None})
    assert r.status_code == 201, r.text
    assert r.json()["expiresAt"] is None


def test_rest_name_shaped_like_a_secret_400(gw):
    """The store refuses names starting oc_tok_ (revoke takes a name or a
    secret); REST said 500 store_error."""
    j = assert_error(post_token(gw, {"name": "oc_tok_lookalike", "scope": ["read"]}), 400, "invalid_request")
    assert "oc_tok_" in j["message"], j
    assert post_token(gw, {"name": "my_oc_tok_name", "scope": ["read"]}).status_code == 201
