"""The dashboard in headless Chromium, against the real API (waitress) and the ComfyUI simulator: every
tab opens and shows live data; a style added in Settings is used by links at once; Generate shows the
progress of the job and its image; a bad workflow upload says why. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from browser import browser_page, screenshot, upload_file

pytestmark = [pytest.mark.browser, pytest.mark.slow,  # gradio's Dataframe on pandas 3 warns about its own pandas calls
              pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]

TABS = ("Dashboard", "Generate", "Monitor", "Settings", "Advanced")


@pytest.fixture
def page(dashboard) -> Iterator:
    with browser_page() as page:
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.set_default_timeout(20_000)
        page.goto(dashboard.url)
        page.wait_for_selector("#lp-status:has-text('ComfyUI')")
        yield page


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def no_error_toast(page) -> None:
    """Gradio shows a failed event as a toast; none may appear."""
    toasts = page.locator(".toast-body.error, [data-testid='toast-body']")
    assert toasts.count() == 0, toasts.all_inner_texts()


def field(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def test_every_tab_opens_with_live_data(page, api):
    assert field(page, "lp-api-url").input_value() == api.url
    assert "/prompt/a%20red%20fox" in field(page, "lp-example-link").input_value()
    page.wait_for_selector("#lp-active:has-text('demo.json')")
    assert "ComfyUI: up" in page.locator("#lp-status").inner_text()
    screenshot(page, "dashboard-1-dashboard")

    open_tab(page, "Generate")
    page.wait_for_selector("#lp-param-steps")
    assert page.locator("#lp-param-model").is_visible()  # a dropdown from ComfyUI's object_info
    screenshot(page, "dashboard-2-generate")

    open_tab(page, "Monitor")
    page.wait_for_selector("#lp-monitor-health:has-text('ComfyUI: up')")
    page.wait_for_selector("#lp-monitor-gpus:has-text('simulator')")
    first = page.locator("#lp-monitor-updated").inner_text()
    page.wait_for_function(f"document.querySelector('#lp-monitor-updated').innerText !== {json.dumps(first)}")
    screenshot(page, "dashboard-3-monitor")  # and it refreshed on its own (gr.Timer)

    open_tab(page, "Settings")
    page.wait_for_function("document.querySelector('#lp-set-comfyui-url input, #lp-set-comfyui-url textarea')"
                           ".value.startsWith('http://127.0.0.1')")
    page.click("#lp-test-connection")
    page.wait_for_selector("#lp-test-result:has-text('Connected')")
    screenshot(page, "dashboard-4-settings")

    open_tab(page, "Advanced")
    page.wait_for_selector("#lp-wf-params:has-text('KSampler.steps')")
    page.wait_for_selector("#lp-cache-count:has-text('nothing to remove')")
    screenshot(page, "dashboard-5-advanced")
    no_error_toast(page)


def test_a_style_added_in_settings_is_used_by_links_at_once(page, api):
    open_tab(page, "Settings")
    field(page, "lp-style-name").fill("noir")
    field(page, "lp-style-pre").fill("film noir still of")
    field(page, "lp-style-post").fill("high contrast, black and white")
    page.wait_for_function("document.querySelector('#lp-style-final textarea').value"
                           ".startsWith('film noir still of a red fox')")
    page.click("#lp-style-save")
    page.wait_for_selector("#lp-style-result:has-text('Saved style')")
    body = api.get("/prompt/a%20cat?style=noir&format=json&width=64&height=64").json()
    assert body["prompt"] == "film noir still of a cat, high contrast, black and white"

    field(page, "lp-style-name").fill("bad name")
    page.click("#lp-style-save")
    page.wait_for_selector("#lp-style-result:has-text('invalid style name')")
    screenshot(page, "dashboard-settings-style")


def test_generate_shows_progress_and_the_image(page, api, simulator):
    simulator.faults.step_delay = 0.05
    open_tab(page, "Generate")
    page.wait_for_selector("#lp-param-steps")
    field(page, "lp-prompt").fill("a lighthouse at dusk")
    for name, value in (("width", "256"), ("height", "192"), ("steps", "24")):
        box = page.locator(f"#lp-param-{name} input[type=number]")
        box.fill(value)
        box.press("Enter")
    page.click("#lp-generate")
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        bar = page.locator(".lp-progress")
        seen.add(int(bar.get_attribute("data-progress") or 0))
        if bar.get_attribute("data-state") in ("done", "error"):
            break
        time.sleep(0.05)
    assert page.locator(".lp-progress").get_attribute("data-state") == "done", page.locator("#lp-message").inner_text()
    assert any(0 < p < 100 for p in seen), seen  # the bar moved through the job's progress events
    page.wait_for_selector("#lp-image img")
    size = page.evaluate("(() => { const i = document.querySelector('#lp-image img');"
                         " return [i.naturalWidth, i.naturalHeight]; })()")
    assert size == [256, 192]
    link = field(page, "lp-link").input_value()
    seed = field(page, "lp-seed-out").input_value()
    assert link.startswith(api.url + "/prompt/a%20lighthouse%20at%20dusk?") and f"seed={seed}" in link
    again = api.get(link.removeprefix(api.url))
    assert again.status_code == 200 and again.headers["X-LinkPix-Cache"] == "hit"
    screenshot(page, "dashboard-generate-done")
    no_error_toast(page)


def test_a_bad_workflow_upload_shows_the_reason(page, project, tmp_path):
    bad = tmp_path / "broken flow.json"
    bad.write_text(json.dumps({"1": {"class_type": "NoSuchNode", "inputs": {}},
                               "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}))
    open_tab(page, "Advanced")
    page.wait_for_selector("#lp-wf-params:has-text('KSampler')")
    upload_file(page, "lp-wf-upload", bad, "#lp-wf-upload:has-text('broken flow.json')")
    page.click("#lp-wf-upload-btn")
    page.wait_for_selector("#lp-wf-upload-result:has-text('Not added')")
    text = page.locator("#lp-wf-upload-result").inner_text()
    assert "ComfyUI cannot run this workflow" in text and "node 1 (NoSuchNode)" in text
    assert not (project / "workflows" / "broken_flow.json").exists()
    screenshot(page, "dashboard-advanced-bad-upload")
    no_error_toast(page)
