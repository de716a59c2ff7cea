"""The Monitor's plots draw as soon as the tab opens (issue 22 item 5), without Vega's "Infinite extent" warning."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import browser_page
from jobs_support import wait_until

from linkpix.config import ConfigHolder
from linkpix.dashboard.context import DashboardContext
from linkpix.dashboard.server import Running, start
from linkpix.run.launcher import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
              pytest.mark.filterwarnings("ignore:The default formatting of datetime"),
              pytest.mark.filterwarnings("ignore:is_categorical_dtype is deprecated")]


@pytest.fixture
def dashboard(api, project: Path, simulator) -> Iterator[Running]:
    path = project / "config.json"
    config = json.loads(path.read_text())
    config.update(comfyui_url=simulator.url, workflow_path="demo.json")
    path.write_text(json.dumps(config))
    ctx = DashboardContext(path, ConfigHolder(path, use_env=False), environ={"LINKPIX_API_URL": api.url})
    running = start(ctx, port=free_port(), host="127.0.0.1", monitor_seconds=60.0)  # no timer tick meanwhile
    try:
        yield running
    finally:
        running.close()


def test_the_monitor_draws_every_plot_when_the_tab_opens(api, dashboard):
    ops = api.app.extensions["linkpix.ops"]
    now = time.time()
    for minute in (1, 2):
        total = ops.metrics.total_requests + 3
        for i in range(3):
            assert api.get(f"/prompt/drawn%20{minute}%20{i % 2}?width=64&height=64").status_code == 200
        wait_until(lambda: ops.metrics.total_requests == total, 10, "the requests to be counted")  # noqa: B023
        assert ops.history.tick(now + 60 * minute)
    warnings: list[str] = []
    with browser_page() as page:
        page.on("console", lambda msg: warnings.append(msg.text))
        page.set_viewport_size({"width": 1400, "height": 1100})
        page.goto(dashboard.url)
        page.get_by_role("tab", name="Monitor").click()
        started = time.monotonic()
        for name in ("requests", "hit-rate", "generation-seconds", "queue"):
            page.wait_for_selector(f"#lp-plot-{name} .mark-line path", state="attached", timeout=8000)
        drawn = time.monotonic() - started
    assert drawn < 5.0
    assert not [w for w in warnings if "Infinite extent" in w], warnings


def test_plots_without_figures_yet_draw_empty_without_a_warning(api, dashboard):
    warnings: list[str] = []
    with browser_page() as page:
        page.on("console", lambda msg: warnings.append(msg.text))
        page.goto(dashboard.url)
        page.get_by_role("tab", name="Monitor").click()
        page.wait_for_selector("#lp-monitor-plots-note:has-text('minute')", timeout=8000)
        page.wait_for_timeout(1000)
    assert not [w for w in warnings if "Infinite extent" in w], warnings
