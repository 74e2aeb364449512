"""Fixtures for the chela end-to-end suite.

`gateway_factory` starts `$CHELA_BIN gateway --port 0 --bind 127.0.0.1
--state <tmp>/state` (with an optional config written to
<state>/chela.json5), waits for the `chela listening on` line, and at
teardown stops every gateway still running with SIGTERM, asserting exit 0
and a stderr free of sanitizer reports.  `gw` is one such gateway on the
suite's base config.

The base config lifts the per-token rate limit, so tests that make many
authenticated requests are not cut off at 60/min by the default, and the
failed-authentication lockout; the rate limit tests set their own.
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2elib import Gateway, chela_bin, deep_merge, sanitizer_lines  # noqa: E402

BASE_CONFIG = {
    "api": {"rateLimit": {"perToken": {"windowMs": 60000, "maxRequests": 10000}}},
    # Tests poll with not-yet-visible or revoked tokens; keep the failed-auth
    # lockout out of their way.
    "gateway": {"auth": {"rateLimit": {"maxAttempts": 1000000}}},
}


def pytest_report_header(config):
    return f"chela binary: {chela_bin()}"


@pytest.fixture(scope="session", autouse=True)
def _binary_exists():
    b = chela_bin()
    if not os.access(b, os.X_OK):
        pytest.fail(f"chela binary {b} not found: build it (make) or set CHELA_BIN", pytrace=False)


class _Factory:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.gateways = []
        self.n = 0

    def new(self, config=None, *, base=True, state=None, args=(), env=None, bind="127.0.0.1",
            port=0, config_path=None):
        """A Gateway object, not yet spawned.  config: dict merged over the
        base config (base=False: exactly this), a str written verbatim, or
        None (base config when base=True, else no file at all)."""
        self.n += 1
        state = Path(state) if state else self.tmp / ("state" if self.n == 1 else f"state{self.n}")
        if isinstance(config, str):
            cfg = config
        elif config is None and not base:
            cfg = None
        else:
            cfg = deep_merge(BASE_CONFIG, config or {}) if base else config
        g = Gateway(state, config=cfg, args=args, env=env, home=self.tmp, bind=bind, port=port,
                    config_path=config_path)
        self.gateways.append(g)
        return g

    def __call__(self, config=None, **kw):
        return self.new(config, **kw).start()

    def teardown(self):
        problems = []
        for g in self.gateways:
            if g.proc is None:
                continue
            if g.alive():
                rc = g.stop()
                if rc != 0:
                    problems.append(f"gateway {g.argv} exited {rc} on SIGTERM at teardown\n"
                                    f"stderr tail:\n{g.stderr()[-3000:]}")
            else:
                g.wait(1)
            bad = sanitizer_lines(g.stderr())
            if bad:
                problems.append(f"sanitizer report from {g.argv}:\n{g.stderr()[-8000:]}")
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def gateway_factory(tmp_path):
    f = _Factory(tmp_path)
    yield f
    f.teardown()


@pytest.fixture
def gw(gateway_factory):
    """A gateway on the base config, admin token captured from stdout."""
    g = gateway_factory()
    assert g.admin_token, f"no admin token banner on first start:\n{g.stdout()}"
    return g
