"""Dashboard fixes in headless Chromium: the size sliders show 8192 in full; the Settings tab shows the
values in force (under --demo: the simulator's URL, from the launcher); the Monitor says RAM for a CPU."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import browser_page, screenshot

from linkpix.config import LAUNCHER_ENV, ConfigHolder
from linkpix.dashboard.context import DashboardContext
from linkpix.dashboard.server import start
from linkpix.run.launcher import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]


@pytest.fixture
def page(api, project: Path, simulator) -> Iterator:
    """The dashboard as `start_server.py --demo` runs it: config.json names another ComfyUI, the launcher's
    environment names the simulator."""
    path = project / "config.json"
    config = json.loads(path.read_text())
    config.update(comfyui_url="http://192.0.2.1:8188", workflow_path="demo.json")
    path.write_text(json.dumps(config))
    environ = {"LINKPIX_API_URL": api.url, "LINKPIX_COMFYUI_URL": simulator.url,
               LAUNCHER_ENV: "comfyui_url=--demo: the simulator"}
    ctx = DashboardContext(path, ConfigHolder(path, use_env=False), environ=environ)
    running = start(ctx, port=free_port(), host="127.0.0.1", monitor_seconds=1.0)
    try:
        with browser_page() as page:
            page.set_viewport_size({"width": 1400, "height": 1000})
            page.set_default_timeout(20_000)
            page.goto(running.url)
            page.wait_for_selector("#lp-status:has-text('ComfyUI')")
            yield page
    finally:
        running.close()


def test_size_sliders_show_8192_in_full(page):
    page.get_by_role("tab", name="Generate").click()
    for name in ("width", "height"):
        block = f"#lp-param-{name}"
        page.wait_for_selector(block)
        box = page.locator(f"{block} input[type=number]")
        box.fill("8192")
        box.press("Enter")
        fits = page.evaluate(f"""(() => {{
            const b = document.querySelector('{block}');
            const max = b.querySelector('[data-testid=max-value]');
            const num = b.querySelector('input[type=number]');
            return [max.innerText, max.getBoundingClientRect().right <= b.getBoundingClientRect().right,
                    b.scrollWidth <= b.clientWidth, num.value, num.scrollWidth <= num.clientWidth];
        }})()""")
        assert fits == ["8192", True, True, "8192", True], (name, fits)
    screenshot(page, "dashboard-fixes-sliders")


def test_settings_show_the_values_in_force_and_their_source(page, simulator):
    page.get_by_role("tab", name="Settings").click()
    table = "#lp-set-in-force"
    page.wait_for_selector(f"{table}:has-text('{simulator.url}')")
    text = page.locator(table).inner_text()
    assert "launcher (--demo" in text and "192.0.2.1" not in text
    assert "config.json" in text and "default" in text
    screenshot(page, "dashboard-fixes-settings")


def test_monitor_calls_cpu_memory_ram(page):
    page.get_by_role("tab", name="Monitor").click()
    page.wait_for_selector("#lp-monitor-gpus:has-text('simulator')")
    text = page.locator("#lp-monitor-gpus").inner_text()
    assert "RAM" in text and "VRAM" not in text
