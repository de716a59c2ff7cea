"""A real browser loads LinkPix links in <img> tags: the picture decodes at the requested size, and an
error shows as a picture too (what a SillyTavern user sees)."""

from __future__ import annotations

import pytest
from browser import browser_page, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_img_tags_show_generated_images_and_errors(api, tmp_path):
    page_file = tmp_path / "page.html"
    page_file.write_text(f"""<!doctype html><html><body style="background:#eee">
      <img id="fox" src="{api.url}/prompt/a%20red%20fox?width=384&height=256&seed=7">
      <img id="owl" src="{api.url}/prompt/an+owl/at+night?width=200&height=300">
      <img id="bad" src="{api.url}/prompt/broken?style=no-such-style&width=320&height=160">
    </body></html>""")
    with browser_page() as page:
        page.goto(page_file.as_uri())
        page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=60_000)
        sizes = page.evaluate("Object.fromEntries(Array.from(document.images).map("
                              "i => [i.id, [i.naturalWidth, i.naturalHeight]]))")
        screenshot(page, "img-tags")
    assert sizes["fox"] == [384, 256]
    assert sizes["owl"] == [200, 296]  # rounded down to a multiple of 8, as ComfyUI's latent grid would
    assert sizes["bad"] == [320, 160]  # the error message, drawn as a picture of the requested size
