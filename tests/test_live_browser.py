"""A live link in a plain <img>, in headless Chromium: the picture changes while the run draws and ends on
the finished image (the plain link's pixels)."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import browser_page
from fronts_support import FrontServer

from linkpix.simulator import SimulatorServer

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PAGE = """<!doctype html><html><body>
<img id="live" src="/prompt/a%20fox%20in%20a%20browser?live=1&steps=20&width=768&height=576">
<script>
window.seen = [];
const canvas = document.createElement("canvas");
const ctx = canvas.getContext("2d", {willReadFrequently: true});
function signature(img) {
  if (!img.naturalWidth) return null;
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let h = 0;
  for (let i = 0; i < d.length; i += 97) h = (h * 31 + d[i]) >>> 0;
  return img.naturalWidth + "x" + img.naturalHeight + ":" + h;
}
setInterval(() => {
  const s = signature(document.getElementById("live"));
  if (s && window.seen[window.seen.length - 1] !== s) window.seen.push(s);
}, 30);
</script></body></html>"""


def test_an_img_shows_the_run_as_it_draws_and_ends_on_the_image(project: Path, tmp_path: Path):
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "comfyui", step_delay=0.15)
    sim.start()
    api = FrontServer(project, sim.url)
    try:
        with browser_page() as page:
            page.route(api.url + "/page.html", lambda route: route.fulfill(body=PAGE, content_type="text/html"))
            page.goto(api.url + "/page.html")
            page.wait_for_function("() => window.seen.some(s => s.startsWith('768x576:'))", timeout=30000)
            page.wait_for_timeout(300)
            seen = page.evaluate("window.seen")
            final = page.evaluate("""async () => {
                const link = '/prompt/a%20fox%20in%20a%20browser?steps=20&width=768&height=576';
                const blob = await (await fetch(link)).blob();
                const img = new Image(); img.src = URL.createObjectURL(blob); await img.decode();
                return signature(img);
            }""")
            shown = page.evaluate("signature(document.getElementById('live'))")
    finally:
        api.close()
        sim.stop()
    during = [s for s in seen if not s.startswith("768x576:")]
    assert len(set(during)) >= 3, seen  # the card and at least two different preview frames
    assert shown == final  # it stays on the finished image, pixel for pixel the plain link's
    assert sim.prompts_received == 1
