"""The Monitor's plots in headless Chromium (issue 15 item 2): the last hour from the API's own
figures (GET /api/stats/history), drawn as four lines; screenshot in tests/artifacts/monitor-plots.png."""

from __future__ import annotations

import time

import pytest
from browser import browser_page, screenshot
from jobs_support import wait_until

from linkpix.dashboard.plots import frames

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
              # gradio's LinePlot on pandas 3 warns about its own pandas calls
              pytest.mark.filterwarnings("ignore:The default formatting of datetime"),
              pytest.mark.filterwarnings("ignore:is_categorical_dtype is deprecated")]


def three_minutes_of_traffic(api) -> None:
    """Requests in three minutes: the sampler's minute boundaries are passed by hand (tick)."""
    ops = api.app.extensions["linkpix.ops"]
    now, total = time.time(), ops.metrics.total_requests
    for minute, count in enumerate((4, 9, 6), start=1):
        for i in range(count):
            assert api.get(f"/prompt/plotted%20{minute}%20{i % 3}?width=64&height=64").status_code == 200
        total += count  # a request is counted once its answer is sent: wait for the last one's
        wait_until(lambda: ops.metrics.total_requests == total, 10, "the requests to be counted")  # noqa: B023
        assert ops.history.tick(now + 60 * minute)


def test_the_monitor_plots_the_last_hour(api, dashboard):
    three_minutes_of_traffic(api)
    points = api.get("/api/stats/history").json()["points"]
    # The last three closed minutes are the test's (ticked by hand, ahead of the clock); a real minute
    # boundary passed since the API started may have closed one more before them, with 0 requests.
    closed = [p for p in points if not p["partial"]]
    assert [p["requests"] for p in closed[-3:]] == [4, 9, 6] and len(closed) in (3, 4), closed
    with browser_page() as page:
        page.set_viewport_size({"width": 1400, "height": 1100})
        page.set_default_timeout(20_000)
        page.goto(dashboard.url)
        page.get_by_role("tab", name="Monitor").click()
        page.wait_for_selector(f"#lp-monitor-plots-note:has-text('The last {len(closed)} minutes')")
        for name in ("requests", "hit-rate", "generation-seconds", "queue"):
            page.wait_for_selector(f"#lp-plot-{name} canvas, #lp-plot-{name} svg.marks", state="attached")
        assert "Requests per minute" in page.locator("#lp-plot-requests").inner_text()
        page.locator("#lp-plot-requests").scroll_into_view_if_needed()
        path = screenshot(page, "monitor-plots")
    assert path.stat().st_size > 10_000


def test_frames_leave_out_minutes_without_a_figure():
    points = [{"time": 0, "requests": 3, "hit_rate": None, "generation_seconds": 1.5, "queue": 0},
              {"time": 60, "requests": 5, "hit_rate": 0.5, "generation_seconds": None, "queue": 2}]
    requests, hits, seconds, queue = frames(points)
    assert list(requests["minute"]) == [-1, 0] and list(hits["minute"]) == [0]
    assert list(requests["value"]) == [3, 5] and list(hits["value"]) == [50.0]
    assert list(seconds["value"]) == [1.5] and list(queue["value"]) == [0, 2]
