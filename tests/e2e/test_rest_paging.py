"""Keyset cursors of the newest-first REST lists: GET /api/v1/runs and
GET /api/v1/sessions (and /api/v1/conversations).  An offset cursor
repeated rows when new ones arrived between pages (they come first and
shift every later row); a cursor now names the last row's position.  The
numeric offsets they gave before are still taken."""

import json

import pytest

from e2elib import assert_error, http
from fakes.llm import FakeLLM
from test_rest_chat import chat, start_agent_gateway


@pytest.fixture
def gw(gateway_factory):
    with FakeLLM("openai", default={"text": "ok"}) as fake:
        yield start_agent_gateway(gateway_factory, fake)


def say(gw, key):
    r = chat(gw, {"message": "hi", "conversationId": key})
    assert r.status_code == 200, r.text
    return r.json()["runId"]


def get(gw, path):
    r = http(gw, "GET", path, token=gw.admin_token)
    assert r.status_code == 200, r.text
    return r.json()


def walk(gw, path, rows_key, id_key, between=None):
    """Every row, page by page (limit 2); between(page_no) runs after each
    page.  The ids seen, the page count and the cursors given."""
    seen, cursors, cursor, pages = [], [], None, 0
    while pages < 20:
        j = get(gw, f"{path}?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        seen += [row[id_key] for row in j[rows_key]]
        pages += 1
        if between:
            between(pages)
        cursor = j["nextCursor"]
        if cursor is None:
            break
        cursors.append(cursor)
    return seen, pages, cursors


def opaque(cursors):
    # not offsets, and short enough for `chela sessions list`'s 31 characters
    return all(isinstance(c, str) and not c.isdigit() and len(c) < 32 for c in cursors)


def test_runs_cursor_survives_new_runs(gw):
    ids = [say(gw, f"paging-r{i}") for i in range(5)]
    made = []
    seen, pages, cursors = walk(gw, "/api/v1/runs", "runs", "runId",
                                lambda n: made.append(say(gw, "paging-late")) if n == 1 else None)
    assert seen == ids[::-1], seen  # no repeats, nothing skipped, newest first
    assert pages == 3 and opaque(cursors), cursors
    assert get(gw, "/api/v1/runs?limit=1")["runs"][0]["runId"] == made[0]
    # A filtered list pages the same way.
    assert walk(gw, "/api/v1/runs", "runs", "runId")[0] == made + ids[::-1]
    j = get(gw, "/api/v1/runs?limit=2&sessionKey=paging-r3")
    assert [r["runId"] for r in j["runs"]] == [ids[3]] and j["nextCursor"] is None and j["total"] == 1
    # The old numeric offset is still a cursor (its next one is a position).
    j = get(gw, "/api/v1/runs?limit=2&cursor=2")
    assert [r["runId"] for r in j["runs"]] == [ids[3], ids[2]] and len(j["nextCursor"]) == 22
    assert [r["runId"] for r in get(gw, f"/api/v1/runs?limit=9&cursor={j['nextCursor']}")["runs"]] == ids[1::-1]
    for bad in ("cursor=abc", "cursor=-1", "cursor=AAABi8_laHsAAAAAAAAAAA", "cursor=AAABi8_laHsAAAAAAAAAKg%3D%3D"):
        assert_error(http(gw, "GET", f"/api/v1/runs?{bad}", token=gw.admin_token), 400, "invalid_request")


@pytest.mark.cli
def test_sessions_cursor_survives_new_and_updated_sessions(gw):
    ids = [f"paging-s{i}" for i in range(5)]
    for k in ids:
        say(gw, k)
    # sessions list the stored (canonical) keys, conversations the ids
    keys = ["agent:main:" + k for k in ids]
    new = "agent:main:paging-new"

    def between(n):
        if n == 1:
            say(gw, "paging-new")  # a new session: first, before the position
            say(gw, ids[4])  # shown already: moves to the front, not shown again

    seen, pages, cursors = walk(gw, "/api/v1/sessions", "sessions", "key", between)
    assert seen == keys[::-1], seen
    assert pages == 3 and opaque(cursors), cursors
    assert [s["key"] for s in get(gw, "/api/v1/sessions?limit=2")["sessions"]] == [keys[4], new]
    assert walk(gw, "/api/v1/conversations", "conversations", "id")[0] == [ids[4], "paging-new"] + ids[3::-1]
    j = get(gw, "/api/v1/sessions?limit=2&cursor=3")
    assert [s["key"] for s in j["sessions"]] == keys[2:0:-1] and j["total"] == 6
    assert [s["key"] for s in get(gw, f"/api/v1/sessions?cursor={j['nextCursor']}")["sessions"]] == keys[:1]
    # `chela sessions list` (an HTTP client of this route) still lists them.
    p = gw.cli("sessions", "list", "--json")
    assert p.returncode == 0, p.stderr
    assert [s["key"] for s in json.loads(p.stdout)["sessions"]] == [keys[4], new] + keys[3::-1]
