"""The dashboard's Characters tab in headless Chromium, against the real API (waitress) and the simulator: a
character saved there (with a reference picture uploaded from the tab) is used by a link at once; a bad LoRA
strength shows the API's reason."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import browser_page, screenshot
from PIL import Image

from linkpix.config import ConfigHolder
from linkpix.dashboard.context import DashboardContext
from linkpix.dashboard.server import Running, start
from linkpix.run.launcher import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]


@pytest.fixture
def page(api, project: Path, simulator, tmp_path: Path) -> Iterator:
    path = project / "config.json"
    config = json.loads(path.read_text())
    config.update(comfyui_url=simulator.url, workflow_path="demo.json")
    path.write_text(json.dumps(config))
    ctx = DashboardContext(path, ConfigHolder(path, use_env=False), environ={"LINKPIX_API_URL": api.url})
    running: Running = start(ctx, port=free_port(), host="127.0.0.1", monitor_seconds=1.0)
    try:
        with browser_page() as page:
            page.set_viewport_size({"width": 1400, "height": 1100})
            page.set_default_timeout(20_000)
            page.goto(running.url)
            yield page
    finally:
        running.close()


def field(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def test_a_character_saved_in_the_tab_is_used_by_links(page, api, simulator, tmp_path: Path) -> None:
    face = tmp_path / "face.png"
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 40, 40)).save(buf, "PNG")
    face.write_bytes(buf.getvalue())
    page.get_by_role("tab", name="Characters").click()
    field(page, "lp-char-name").fill("robin")
    field(page, "lp-char-words").fill("robin, a knight in green")
    field(page, "lp-char-negative").fill("helmet")
    field(page, "lp-char-loras").fill("add_detail:0.6")
    page.locator("#lp-char-pictures input[type=file]").set_input_files(str(face))
    page.click("#lp-char-save")
    page.wait_for_selector("#lp-char-result:has-text('Saved')")
    saved = api.get("/api/characters/robin").json()
    assert saved["loras"] == [{"name": "add_detail", "strength": 0.6}] and len(saved["references"]) == 1
    body = api.get("/prompt/at%20the%20gate?char=robin&format=json&width=64&height=64").json()
    assert body["prompt"] == "robin, a knight in green, at the gate"
    field(page, "lp-char-loras").fill("add_detail:99")
    page.click("#lp-char-save")
    page.wait_for_selector("#lp-char-result:has-text('between -10 and 10')")
    screenshot(page, "dashboard-characters")
