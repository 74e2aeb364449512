"""GET /metrics: Prometheus text behind the read scope, or public with
metrics.public (contract: Routes)."""

from e2elib import assert_error, http, parse_prometheus, wait_ok

NAMED = [
    "chela_http_requests_total",
    "chela_http_request_duration_seconds_bucket",
    "chela_http_request_duration_seconds_sum",
    "chela_http_request_duration_seconds_count",
    "chela_connections_open",
    "chela_connections_total",
    "chela_process_resident_memory_bytes",
    "chela_store_write_queue_depth",
    "chela_event_loop_lag_seconds",
]


def series(samples, name, **labels):
    return [(l, v) for n, l, v in samples if n == name and all(l.get(k) == v2 for k, v2 in labels.items())]


def check_metrics_text(text):
    samples = parse_prometheus(text)
    names = {n for n, _, _ in samples}
    missing = [n for n in NAMED if n not in names]
    assert not missing, f"missing series {missing}\n{text}"
    # The contract's example series, after at least one GET /health.
    hits = series(samples, "chela_http_requests_total", route="/health", status="200")
    assert hits and hits[0][1] >= 1, f'no chela_http_requests_total{{route="/health",status="200"}}\n{text}'
    assert 'chela_http_requests_total{route="/health",status="200"}' in text
    # Histogram: a TYPE line, buckets with le, +Inf bucket == _count.
    assert "# TYPE chela_http_request_duration_seconds histogram" in text
    buckets = series(samples, "chela_http_request_duration_seconds_bucket")
    assert buckets and all("le" in l for l, _ in buckets)
    inf = [(l, v) for l, v in buckets if l["le"] == "+Inf"]
    assert inf, "no le=\"+Inf\" bucket"
    for l, v in inf:
        rest = {k: x for k, x in l.items() if k != "le"}
        cnt = series(samples, "chela_http_request_duration_seconds_count", **rest)
        assert cnt and cnt[0][1] == v, f"+Inf bucket {v} != _count {cnt} for {rest}"
    # Buckets are cumulative: non-decreasing in le for each label set.
    groups = {}
    for l, v in buckets:
        key = tuple(sorted((k, x) for k, x in l.items() if k != "le"))
        le = float("inf") if l["le"] == "+Inf" else float(l["le"])
        groups.setdefault(key, []).append((le, v))
    for key, pts in groups.items():
        vals = [v for _, v in sorted(pts)]
        assert vals == sorted(vals), f"buckets not cumulative for {key}: {sorted(pts)}"
    opened = series(samples, "chela_connections_open")
    assert opened and opened[0][1] >= 1
    rss = series(samples, "chela_process_resident_memory_bytes")
    assert rss and rss[0][1] > 1_000_000
    return samples


def test_metrics_with_read_token(gw):
    assert http(gw, "GET", "/health").status_code == 200
    tok = gw.create_token("metrics-reader", "read")["token"]
    r = wait_ok(gw, "/metrics", tok)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    check_metrics_text(r.text)


def test_metrics_counter_moves(gw):
    http(gw, "GET", "/health")
    a = series(parse_prometheus(http(gw, "GET", "/metrics", token=gw.admin_token).text),
               "chela_http_requests_total", route="/health", status="200")[0][1]
    for _ in range(5):
        http(gw, "GET", "/health")
    b = series(parse_prometheus(http(gw, "GET", "/metrics", token=gw.admin_token).text),
               "chela_http_requests_total", route="/health", status="200")[0][1]
    assert b - a == 5, (a, b)


def test_metrics_needs_token_by_default(gw):
    r = http(gw, "GET", "/metrics")
    assert_error(r, 401, "unauthorized")


def test_metrics_chat_scope_forbidden(gw):
    tok = gw.create_token("metrics-chat", "chat")["token"]
    r = wait_ok(gw, "/metrics", tok)
    j = assert_error(r, 403, "forbidden")
    assert j.get("missingScope") == "read"


def test_metrics_public(gateway_factory):
    g = gateway_factory({"metrics": {"public": True}})
    http(g, "GET", "/health")
    r = http(g, "GET", "/metrics")
    assert r.status_code == 200, r.text
    check_metrics_text(r.text)


def test_metrics_runs_and_model_calls(gateway_factory):
    """Runs by status, model calls by result and failure class, tokens
    and retries: the agent's figures as Prometheus series, moved by real
    runs against the fake provider."""
    from agentlib import chat, chat_ok, llm_config, start
    from fakes.llm import FakeLLM

    with FakeLLM("anthropic") as fake:
        cfg = llm_config({"p": fake})
        g = start(gateway_factory, cfg)
        fake.push({"text": "one", "usage": {"input": 11, "output": 4}})
        chat_ok(g, "hello")
        fake.push({"status": 401, "error_kind": "auth"})
        r = chat(g, "fails")
        assert r.status_code >= 400, r.text
        samples = parse_prometheus(http(g, "GET", "/metrics", token=g.admin_token).text)

        def one(name, **labels):
            got = series(samples, name, **labels)
            assert len(got) == 1, (name, labels, got)
            return got[0][1]

        assert one("chela_runs_total", status="ok") == 1
        assert one("chela_runs_total", status="error") == 1
        assert one("chela_runs_total", status="aborted") == 0
        assert one("chela_runs_running") == 0 and one("chela_runs_queued") == 0
        assert one("chela_llm_calls_total", result="ok") == 1
        assert one("chela_llm_calls_total", result="failed") == 1
        assert one("chela_llm_call_failures_total", **{"class": "auth"}) == 1
        assert one("chela_llm_tokens_total", kind="input") == 11
        assert one("chela_llm_tokens_total", kind="output") == 4
        assert one("chela_llm_attempts_total") >= 2
        assert one("chela_llm_calls_in_flight") == 0
        assert one("chela_retention_deleted_total", table="runs") == 0
