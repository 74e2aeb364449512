"""CLI: config validate/get/schema, version, --help, health, status and
invalid configuration at gateway start (contract: CLI, exit codes)."""

import json
import re
import subprocess
import time

import pytest

from e2elib import REPO, Gateway, chela_bin, clean_env, free_port, run_cli, write_config

pytestmark = pytest.mark.cli

BAD_UNKNOWN = """{
  gateway: {
    bogus: 1,
  },
}
"""

# "abc" starts at line 3, column 11.
BAD_TYPE = """{
  gateway: {
    port: "abc",
  },
}
"""

BAD_TWO = """{
  gateway: {
    port: "abc",
    bogus: true,
  },
  limits: { headTimeoutMs: "slow" },
}
"""


def test_version(tmp_path):
    p = run_cli(None, "version", home=tmp_path)
    assert p.returncode == 0
    assert p.stdout.strip() == "chela 0.1.0"


@pytest.mark.parametrize("sub", [
    ["gateway"], ["token"], ["token", "create"], ["token", "list"], ["token", "revoke"],
    ["health"], ["status"], ["config"], ["config", "validate"], ["config", "get"],
    ["config", "schema"], ["version"],
])
def test_help_exits_0(tmp_path, sub):
    p = run_cli(None, *sub, "--help", home=tmp_path)
    assert p.returncode == 0, (sub, p.returncode, p.stderr)
    assert re.search(r"usage", p.stdout, re.I), (sub, p.stdout)


def test_top_level_help_and_unknown(tmp_path):
    p = run_cli(None, "--help", home=tmp_path)
    assert p.returncode == 0 and re.search(r"usage", p.stdout, re.I)
    p = run_cli(None, "frobnicate", home=tmp_path)
    assert p.returncode == 2, p
    p = run_cli(None, "gateway", "--no-such-flag", home=tmp_path)
    assert p.returncode == 2, p
    p = run_cli(None, home=tmp_path)
    assert p.returncode == 2, p


def test_config_validate_ok(tmp_path):
    cfg = tmp_path / "ok.json5"
    write_config(cfg, "// comment\n{ gateway: { port: 18790, }, limits: { maxConnections: 10 }, }\n")
    p = run_cli(None, "config", "validate", "--config", cfg, home=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"config OK: {cfg}"


def test_config_validate_unknown_key(tmp_path):
    cfg = tmp_path / "bad.json5"
    write_config(cfg, BAD_UNKNOWN)
    p = run_cli(None, "config", "validate", "--config", cfg, home=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "gateway.bogus" in p.stderr, p.stderr


def test_config_validate_wrong_type_line_col(tmp_path):
    cfg = tmp_path / "bad.json5"
    write_config(cfg, BAD_TYPE)
    p = run_cli(None, "config", "validate", "--config", cfg, home=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    line = [l for l in p.stderr.splitlines() if "gateway.port" in l]
    assert line, p.stderr
    assert "3:11" in line[0], line


def test_config_validate_reports_every_error(tmp_path):
    cfg = tmp_path / "bad.json5"
    write_config(cfg, BAD_TWO)
    p = run_cli(None, "config", "validate", "--config", cfg, home=tmp_path)
    assert p.returncode == 2
    for key in ("gateway.port", "gateway.bogus", "limits.headTimeoutMs"):
        assert key in p.stderr, (key, p.stderr)


def test_config_validate_syntax_error(tmp_path):
    cfg = tmp_path / "bad.json5"
    write_config(cfg, "{\n  gateway: {\n    port: 1,,\n  }\n")
    p = run_cli(None, "config", "validate", "--config", cfg, home=tmp_path)
    assert p.returncode == 2
    # The position, as "3:13" or "line 3, column 13".
    assert re.search(r"\b3:\d+|line 3, column \d+", p.stderr), p.stderr


def test_config_validate_out_of_range_limit(tmp_path):
    cfg = tmp_path / "bad.json5"
    write_config(cfg, '{ limits: { maxConnections: 0 } }')
    p = run_cli(None, "config", "validate", "--config", cfg, home=tmp_path)
    assert p.returncode == 2
    assert "limits.maxConnections" in p.stderr


@pytest.mark.parametrize("text,key", [(BAD_UNKNOWN, "gateway.bogus"), (BAD_TYPE, "gateway.port")])
def test_gateway_refuses_invalid_config(tmp_path, text, key):
    state = tmp_path / "st"
    state.mkdir()
    write_config(state / "chela.json5", text)
    g = Gateway(state, home=tmp_path)
    g.spawn()
    rc = g.wait(10)
    if rc is None:
        g.kill()
        pytest.fail("gateway with an invalid config did not exit")
    assert rc == 2, (rc, g.stderr())
    assert key in g.stderr(), g.stderr()
    if key == "gateway.port":
        assert "3:11" in g.stderr()
    assert "chela listening" not in g.stdout()


def test_config_get(tmp_path):
    state = tmp_path / "st"
    state.mkdir()
    write_config(state / "chela.json5", '{ gateway: { port: 18790, auth: { token: "hunter2-secret-value" } } }')
    p = run_cli(state, "config", "get", "gateway.port", home=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == 18790
    p = run_cli(state, "config", "get", "gateway.auth.token", home=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == "__OPENCLAW_REDACTED__"
    assert "hunter2" not in p.stdout + p.stderr
    # An object with a secret inside is redacted inside.
    p = run_cli(state, "config", "get", "gateway.auth", home=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["token"] == "__OPENCLAW_REDACTED__"
    assert "hunter2" not in p.stdout
    # A default that the file does not set.
    p = run_cli(state, "config", "get", "limits.maxHeaders", home=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == 100
    p = run_cli(state, "config", "get", "gateway.nope", home=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stdout)


def test_config_get_with_config_flag(tmp_path):
    cfg = tmp_path / "c.json5"
    write_config(cfg, "{ gateway: { port: 18791 } }")
    p = run_cli(None, "config", "get", "gateway.port", "--config", cfg, home=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == 18791


def test_config_get_default_without_file(tmp_path):
    p = run_cli(tmp_path / "empty", "config", "get", "gateway.port", home=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == 18789


def test_config_env_override(tmp_path):
    p = run_cli(tmp_path / "e", "config", "get", "gateway.port", home=tmp_path,
                env={"OPENCLAW_GATEWAY_PORT": "18800", "CHELA_GATEWAY_PORT": "18801"})
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == 18801  # CHELA_ wins


def test_config_schema_markdown(tmp_path):
    p = run_cli(None, "config", "schema", "--markdown", home=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "limits.maxConnections" in p.stdout or "maxConnections" in p.stdout
    doc = REPO / "docs" / "configuration.md"
    if doc.exists():
        assert p.stdout == doc.read_text(), "docs/configuration.md is out of date"


def test_health_and_status_commands(gw):
    p = gw.cli("health")
    assert p.returncode == 0, (p.stdout, p.stderr)
    p = gw.cli("health", "--json")
    assert p.returncode == 0
    assert json.loads(p.stdout)["status"] == "live"
    p = gw.cli("health", "--url", gw.url)
    assert p.returncode == 0
    # status uses gateway.json's local token.
    p = gw.cli("status", "--json")
    assert p.returncode == 0, (p.stdout, p.stderr)
    j = json.loads(p.stdout)
    assert j["ok"] is True and j["pid"] == gw.pid
    p = gw.cli("status", "--url", gw.url, "--token", gw.admin_token, "--json")
    assert p.returncode == 0
    p = gw.cli("status", "--url", gw.url, "--token", "oc_tok_" + "n" * 43)
    assert p.returncode == 1, (p.returncode, p.stdout)
    assert gw.admin_token not in p.stdout + p.stderr


def test_health_command_no_gateway(tmp_path):
    port = free_port()
    t0 = time.monotonic()
    p = run_cli(tmp_path / "s", "health", "--url", f"http://127.0.0.1:{port}", home=tmp_path)
    assert p.returncode == 1, p
    assert time.monotonic() - t0 < 10


def test_cli_client_uses_gateway_json(gw):
    """Without --url/--token, clients read DIR/gateway.json."""
    p = gw.cli("status")
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert gw.gateway_json()["localToken"] not in p.stdout + p.stderr
