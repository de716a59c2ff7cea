"""The Monitor's fair-share panel in headless Chromium: GPU-seconds per user and day from GET /api/usage,
and the fair queue per user from /health while one user's backlog waits in LinkPix; screenshot in
tests/artifacts/monitor-usage.png."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import browser_page, screenshot
from jobs_support import JobsServer, wait_until

from linkpix.config import ConfigHolder
from linkpix.dashboard.context import DashboardContext
from linkpix.dashboard.server import Running, start
from linkpix.dashboard.usage_panel import queue_rows, usage_frame
from linkpix.run.launcher import free_port

pytestmark = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
              pytest.mark.filterwarnings("ignore:is_categorical_dtype is deprecated")]


@pytest.fixture
def server(project: Path, simulator) -> Iterator[JobsServer]:
    api = JobsServer(project, simulator.url, jobs_max_queued_per_user=20)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def dashboard(server, project: Path, simulator) -> Iterator[Running]:
    path = project / "config.json"
    config = json.loads(path.read_text())
    config.update(comfyui_url=simulator.url, workflow_path="demo.json")
    path.write_text(json.dumps(config))
    ctx = DashboardContext(path, ConfigHolder(path, use_env=False), environ={"LINKPIX_API_URL": server.url})
    running = start(ctx, port=free_port(), host="127.0.0.1", monitor_seconds=1.0)
    try:
        yield running
    finally:
        running.close()


@pytest.mark.browser
@pytest.mark.slow
def test_the_monitor_shows_gpu_seconds_per_user_and_the_queue(server, dashboard, simulator):
    for user in ("ada", "bo"):
        assert server.get(f"/prompt/usage%20of%20{user}?width=64&height=64&user={user}").status_code == 200
    simulator.faults.run_delay = 3.0
    backlog = [server.submit(prompt=f"backlog {i}", seed=i, user="ada") for i in range(8)]
    wait_until(lambda: server.get("/health").json()["fair_queue"]["waiting"] >= 3, 10, "a backlog in LinkPix")
    with browser_page() as page:
        page.set_viewport_size({"width": 1400, "height": 1400})
        page.set_default_timeout(20_000)
        page.goto(dashboard.url)
        page.get_by_role("tab", name="Monitor").click()
        page.wait_for_selector("#lp-monitor-usage-note:has-text('wait in LinkPix')")
        page.wait_for_selector("#lp-plot-gpu-seconds canvas, #lp-plot-gpu-seconds svg.marks", state="attached")
        page.wait_for_function("document.querySelector('#lp-monitor-fair-queue').textContent.includes('ada')")
        assert "GPU-seconds per user and day" in page.locator("#lp-plot-gpu-seconds").inner_text()
        page.locator("#lp-plot-gpu-seconds").scroll_into_view_if_needed()
        path = screenshot(page, "monitor-usage")
    assert path.stat().st_size > 10_000
    simulator.faults.run_delay = 0.0
    for job_id in backlog:
        assert server.wait_for(job_id, timeout=30)["status"] == "succeeded"


def test_the_panel_reads_usage_and_queue_as_the_api_gives_them():
    frame = usage_frame({"days": [{"user": "a", "day": "2026-12-06", "gpu_seconds": 1.5, "runs": 2},
                                  {"user": "b", "day": "2026-12-07", "gpu_seconds": 0.25, "runs": 1}]})
    assert list(frame["user"]) == ["a", "b"] and list(frame["gpu_seconds"]) == [1.5, 0.25]
    assert list(frame["bar"]) == ["a 12-06", "b 12-07"]
    assert usage_frame({}).empty
    health = {"fair_queue": {"waiting": 3, "users": [
        {"user": "a", "waiting": 2, "interactive": 1, "positions": [1, 3], "running": 2, "recent_gpu_seconds": 4.2},
        {"user": "b", "waiting": 1, "interactive": 0, "positions": [2], "running": 0, "recent_gpu_seconds": 0}]}}
    assert queue_rows(health) == [["a", 2, 1, "1, 3", 2, 4.2], ["b", 1, 0, "2", 0, 0]]
    assert queue_rows(None) == []
