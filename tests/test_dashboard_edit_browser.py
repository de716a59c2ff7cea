"""The dashboard's Edit tab in headless Chromium, against the real API (waitress) and the simulator: a
photo and an instruction give before and after side by side, the method and its fit, and downloads of the
full-resolution result and the .cube. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import io

import numpy as np
import pytest
from browser import screenshot, upload_file
from PIL import Image
from test_dashboard_browser import field, no_error_toast, open_tab, page  # noqa: F401 (fixtures)

from linkpix.dashboard.edit_tab import summary

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]


def test_summary_names_the_method_and_the_fit():
    text = summary({"method": "lut", "fit": {"mean": 0.42, "p95": 1.1, "miss": 0.003}, "width": 6000,
                    "height": 4000, "format": "jpeg", "cache": "miss"})
    assert "Method: lut" in text and "6000×4000" in text and "0.42" in text and "0.3 %" in text


def test_edit_tab_shows_before_after_method_and_downloads(page, tmp_path):  # noqa: F811
    w, h = 900, 600
    y, x = np.mgrid[0:h, 0:w] / w
    arr = np.stack([x * 255, y * 255 * 1.5, np.full_like(x, 120)], -1).clip(0, 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(arr).save(path)
    open_tab(page, "Edit")
    page.wait_for_function("document.querySelector('#lp-edit-workflow input') && "
                           "document.querySelector('#lp-edit-workflow input').value === 'flux_kontext_edit.json'")
    upload_file(page, "lp-edit-image", path, "#lp-edit-image img")
    field(page, "lp-edit-prompt").fill("a warm cinematic colour grade")
    page.click("#lp-edit-run")
    page.wait_for_selector("#lp-edit-info:has-text('Method: lut')", timeout=60_000)
    info = page.locator("#lp-edit-info").inner_text()
    assert "900×600" in info and "mean ΔE" in info
    page.wait_for_selector("#lp-edit-before img")
    page.wait_for_selector("#lp-edit-after img")
    link = page.locator("#lp-edit-download a").first
    assert (link.get_attribute("href") or "").endswith("/edited.png")
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "result.png"
    download.value.save_as(saved)
    result = Image.open(io.BytesIO(saved.read_bytes()))
    assert result.size == (900, 600)
    assert (page.locator("#lp-edit-cube a").first.get_attribute("href") or "").endswith("/look.cube")
    screenshot(page, "dashboard-edit")
    no_error_toast(page)
