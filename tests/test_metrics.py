"""GET /metrics and GET /api/stats/history (issue 15 items 1 and 2): the figures parse with
prometheus_client's own parser and move as requests are made, over real sockets."""

from __future__ import annotations

import time

from jobs_support import wait_until
from prometheus_client.parser import text_string_to_metric_families
from support import ApiServer

PROMPT_RULE = "/prompt/<path:text>"


def scrape(server: ApiServer, **kwargs) -> dict[str, list]:
    """Every sample of /metrics by sample name: [(labels, value), ...]."""
    r = server.get("/metrics", **kwargs)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def value(samples: dict[str, list], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when there is none)."""
    return sum(v for got, v in samples.get(name, []) if all(got.get(k) == want for k, want in labels.items()))


def settled(server: ApiServer, name: str, expected: float, **labels: str) -> dict[str, list]:
    """A scrape once `name` reaches `expected`: a request is counted when its answer has been sent, which
    can be a moment after the client has read it."""
    return wait_until(lambda: (lambda s: s if value(s, name, **labels) == expected else None)(scrape(server)),
                      10, f"{name} {labels} to reach {expected}")


def test_requests_runs_and_cache_figures_move_as_links_are_opened(api):
    before = scrape(api)
    assert value(before, "linkpix_http_requests_total", route=PROMPT_RULE) == 0
    assert value(before, "linkpix_cache_files") == 0 and value(before, "linkpix_runs_in_flight") == 0
    link = "/prompt/a%20metered%20fox?width=64&height=64"
    first = api.get(link)
    second = api.get(link)  # answered by the memoised hit path, outside Flask
    other = api.get("/prompt/another%20fox?width=64&height=64")
    assert [r.status_code for r in (first, second, other)] == [200, 200, 200]
    assert second.headers["X-LinkPix-Cache"] == "hit"
    after = settled(api, "linkpix_http_requests_total", 3, route=PROMPT_RULE, method="GET", status="200")
    # the route label is the URL rule: two prompts, one label value, no prompt text anywhere
    assert {labels["route"] for labels, _ in after["linkpix_http_requests_total"]} >= {PROMPT_RULE, "/metrics"}
    assert not any("fox" in labels["route"] for labels, _ in after["linkpix_http_requests_total"])
    assert value(after, "linkpix_generation_seconds_count", workflow="demo.json") == 2
    assert value(after, "linkpix_generation_seconds_sum", workflow="demo.json") > 0
    assert value(after, "linkpix_runs_total", workflow="demo.json", outcome="ok") == 2
    assert value(after, "linkpix_cache_misses_total") == 2
    assert value(after, "linkpix_cache_files") == 2
    assert value(after, "linkpix_cache_bytes") == len(first.content) + len(other.content)
    backends = {labels["backend"] for labels, _ in after["linkpix_generation_seconds_count"]}
    assert backends and all("@" not in b for b in backends)


def test_unmatched_and_failed_requests_are_counted_with_bounded_labels(api, simulator):
    for path in ("/no/such/thing", "/another/unknown/path"):
        assert api.get(path).status_code == 404
    simulator.faults.fail_class = "KSampler"
    assert api.get("/prompt/doomed?width=64&height=64").status_code == 502
    samples = settled(api, "linkpix_http_requests_total", 1, route=PROMPT_RULE, status="502")
    assert value(samples, "linkpix_http_requests_total", route="unmatched", status="404") == 2
    assert value(samples, "linkpix_runs_total", outcome="execution_failed") == 1
    assert value(samples, "linkpix_generation_seconds_count") == 0  # only successful runs are timed


def test_jobs_by_state_and_webhook_deliveries(jobs, receiver):
    job_id = jobs.submit(prompt="counted job", webhook_url=receiver.url, webhook_secret="s")
    jobs.wait_for(job_id)
    wait_until(lambda: jobs.job(job_id)["webhook"]["state"] == "delivered", 20, "the delivery")
    samples = scrape(jobs)
    assert value(samples, "linkpix_jobs", state="succeeded") == 1
    assert value(samples, "linkpix_jobs", state="queued") == 0 and value(samples, "linkpix_jobs_queued") == 0
    assert value(samples, "linkpix_webhook_deliveries_total", outcome="delivered") == 1
    assert value(samples, "linkpix_webhook_attempts_total", result="2xx") == 1
    assert value(samples, "linkpix_http_requests_total", route="/generate", method="POST", status="202") == 1


def test_openmetrics_when_asked(api):
    r = api.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")


def test_with_network_access_metrics_and_history_need_a_key(project, simulator):
    server = ApiServer(project, simulator.url, network_access=True, api_keys={"k1": "ops"})
    try:
        for path in ("/metrics", "/api/stats/history"):
            r = server.get(path)
            assert r.status_code == 401 and r.json()["error"] == "unauthorized", path
            assert server.get(path, headers={"Authorization": "Bearer k1"}).status_code == 200, path
        assert server.get("/metrics", headers={"X-API-Key": "wrong"}).status_code == 401
    finally:
        server.close()


def test_each_app_counts_only_its_own_requests(project, simulator, api):
    other = ApiServer(project, simulator.url)
    try:
        assert api.get("/prompt/only%20here?width=64&height=64").status_code == 200
        settled(api, "linkpix_http_requests_total", 1, route=PROMPT_RULE)
        theirs = scrape(other)
        assert value(theirs, "linkpix_http_requests_total", route=PROMPT_RULE) == 0
    finally:
        other.close()


def test_history_has_the_minute_under_way_and_closes_minutes(api):
    for i in range(3):
        assert api.get(f"/prompt/history%20{i % 2}?width=64&height=64").status_code == 200
    ops = api.app.extensions["linkpix.ops"]
    wait_until(lambda: ops.metrics.total_requests >= 3, 10, "the links to be counted")
    body = api.get("/api/stats/history").json()
    assert body["minutes"] == 60
    now = body["points"][-1]
    assert now["partial"] is True and now["requests"] >= 3
    assert now["runs"] == 2 and now["generation_seconds"] > 0
    assert now["hit_rate"] is not None and 0 < now["hit_rate"] < 1
    assert ops.history.tick(time.time() + 60)  # the sampler's work, a minute early
    points = api.get("/api/stats/history").json()["points"]
    closed, current = points[-2], points[-1]
    assert closed["partial"] is False and closed["requests"] >= 3 and closed["runs"] == 2
    assert current["requests"] == 0 and current["runs"] == 0 and current["generation_seconds"] is None


def test_metrics_routes_are_described_in_openapi(api):
    paths = api.get("/openapi.json").json()["paths"]
    assert "/metrics" in paths and "/api/stats/history" in paths
    schema = paths["/api/stats/history"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert "points" in schema["properties"]
