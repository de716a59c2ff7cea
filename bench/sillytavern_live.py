"""Manual trial (not CI): a live link (`?live=1`) in a real SillyTavern chat, driven in headless Chromium.

SillyTavern cannot run in CI (Node, npm and a few hundred MB of packages), so this is a script to run by
hand before calling a change to live links done. It needs a SillyTavern (tried with 1.12.6) already
listening on `--st` (default http://127.0.0.1:8010, no login), Debian's Chromium and Playwright. It starts
the simulator (slow steps, a JPEG preview with each, as ComfyUI does with `--preview-method auto`) and
LinkPix as users run it, then in SillyTavern:

1. with "Forbid External Media" ticked (SillyTavern's default): a character's message with a markdown image
   of a live link; what is left of the `<img>` in the chat;
2. with it unticked: the same with a new link; the chat's `<img>` is photographed every ~100 ms while the
   run draws (element screenshots: the image is cross-origin, so a canvas cannot read it), and at the end
   compared with the plain link's picture in a second message;
3. a message that goes on after the image (as a model writes one), to count how often SillyTavern asks
   LinkPix for the link.

Prints what it saw; screenshots go to `--out` (default /tmp/linkpix-sillytavern). Exits non-zero when the
chat's image did not show several distinct pictures or did not end on the finished image.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import requests
from common import free_port, linkpix_api, make_project, simulator
from PIL import Image, ImageChops

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
CHARACTER = "Seraphina"  # SillyTavern's default character (default/content)
STEPS, STEP_DELAY = 30, 0.2  # a 6 s run on the simulator: long enough to photograph many frames
# With --comfyui: a txt2img graph for the tiny random SD 1.5 checkpoint the development ComfyUI has.
TINY = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-random-sd15.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 384, "height": 256, "batch_size": 1}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 7.0, "sampler_name": "euler",
                                               "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                               "positive": ["6", 0], "negative": ["7", 0],
                                               "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "linkpix_st_trial"}},
}


def open_chat(page, st: str) -> None:
    """SillyTavern's page with its default character's chat open (the first-run persona dialog saved)."""
    page.goto(st, wait_until="load")
    page.wait_for_selector("#send_textarea", timeout=60000)
    page.wait_for_timeout(3000)  # SillyTavern loads its settings and extensions after `load`
    welcome = page.locator(".popup:visible .popup-button-ok, .popup:visible #dialogue_popup_ok")
    if welcome.count():
        welcome.first.click()
        page.wait_for_timeout(500)
    if not page.locator(f"#chat .mes[ch_name='{CHARACTER}']").count():
        page.locator("#rightNavHolder").click()  # the character list drawer
        page.locator(f".character_select:has-text('{CHARACTER}')").first.click()
        page.wait_for_selector(f"#chat .mes[ch_name='{CHARACTER}']", timeout=30000)
    page.locator("#rightNavHolder").click()  # close the drawer again


def forbid_external_media(page, forbid: bool) -> None:
    """User Settings -> "Forbid External Media" (SillyTavern saves its settings itself)."""
    page.locator("#user-settings-button .drawer-toggle").click()
    box = page.locator("#forbid_external_media")
    box.wait_for(state="visible", timeout=10000)
    if box.is_checked() != forbid:
        box.click()
    page.locator("#user-settings-button .drawer-toggle").click()
    page.wait_for_timeout(300)


def say(page, text: str) -> None:
    """The character says `text` (slash command /sendas: no language model needed; the message is
    rendered exactly as a model's reply is)."""
    box = page.locator("#send_textarea")
    box.fill(f"/sendas name={CHARACTER} {text}")
    box.press("Enter")


def last_image(page):
    return page.locator("#chat .mes").last.locator(".mes_text img")


def shot(locator) -> Image.Image:
    return Image.open(io.BytesIO(locator.screenshot(animations="disabled"))).convert("RGB")


def digest(picture: Image.Image) -> str:
    return hashlib.sha1(picture.tobytes()).hexdigest()[:12]


class FakeModel(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat model that streams `reply` a few characters at a time (SillyTavern's
    "Custom (OpenAI-compatible)" chat completion source), as a language model writes a picture link."""

    reply = ""
    piece, pause = 6, 0.05  # characters per chunk, seconds between chunks

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - SillyTavern's status check lists the models
        body = json.dumps({"object": "list", "data": [{"id": "fake-model", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        text = type(self).reply
        for start in range(0, len(text), self.piece):
            chunk = {"id": "x", "object": "chat.completion.chunk", "model": "fake-model",
                     "choices": [{"index": 0, "delta": {"content": text[start:start + self.piece]}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            time.sleep(self.pause)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def connect_fake_model(page, url: str) -> None:
    """API Connections -> Chat Completion -> Custom (OpenAI-compatible) at `url`, streaming on."""
    page.locator("#sys-settings-button .drawer-toggle").click()
    page.locator("#main_api").select_option("openai")
    page.locator("#chat_completion_source").select_option("custom")
    page.locator("#custom_api_url_text").fill(url)
    page.locator("#custom_model_id").fill("fake-model")
    page.locator("#api_button_openai").click()
    page.wait_for_function("() => !/not connected/i.test(document.querySelector('#send_textarea').placeholder)",
                           timeout=20000)  # the chat box says "Not connected to API!" until then
    page.locator("#sys-settings-button .drawer-toggle").click()
    page.locator("#ai-config-button .drawer-toggle").click()
    toggle = page.locator("#stream_toggle")
    if not toggle.is_checked():
        toggle.check(force=True)
    page.locator("#ai-config-button .drawer-toggle").click()


@contextlib.contextmanager
def comfyui(url: str | None) -> Iterator[tuple[str, Callable[[str], int]]]:
    """(ComfyUI's address, how many prompts naming a text it has been sent): the simulator, slow steps and a
    JPEG preview with each, or a real ComfyUI (started with `--preview-method auto`, maybe shared with
    others: only prompts with the text count) running the tiny graph."""
    if url is None:
        with simulator(step_delay=STEP_DELAY) as sim:
            yield sim.url, lambda text: sim.prompts_received  # only this trial's prompts reach it
        return

    def runs(text: str) -> int:
        history = requests.get(url + "/history", timeout=30).json()
        return sum(text in json.dumps(entry.get("prompt", [None, None, {}])[2]) for entry in history.values())

    yield url, runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--st", default="http://127.0.0.1:8010/", help="SillyTavern's address")
    parser.add_argument("--out", default="/tmp/linkpix-sillytavern", help="folder for the screenshots")
    parser.add_argument("--comfyui", help="a real ComfyUI (with the tiny SD 1.5 checkpoint) instead of the simulator")
    parser.add_argument("--steps", type=int, default=STEPS, help="sampler steps of each link")
    options = parser.parse_args()
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    stamp = str(int(time.time()))
    from playwright.sync_api import sync_playwright

    ok = True
    steps = options.steps
    project = make_project(workflow_path="demo.json" if options.comfyui is None else "tiny.json")
    (project / "workflows" / "tiny.json").write_text(json.dumps(TINY), encoding="utf-8")
    with comfyui(options.comfyui) as (comfy_url, runs), linkpix_api(project, comfy_url) as api, \
            sync_playwright() as pw:
        def link(name: str, live: bool) -> str:
            return (f"{api}/prompt/{quote(name)}?steps={steps}&width=384&height=256"
                    + ("&live=1" if live else ""))

        asked: list[str] = []
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        warnings: list[str] = []
        page.on("console", lambda m: warnings.append(m.text) if "External media" in m.text else None)
        page.on("request", lambda r: asked.append(r.url) if r.url.startswith(api) else None)
        heads: dict[str, dict[str, str]] = {}
        page.on("response", lambda r: heads.setdefault(r.url, r.headers) if r.url.startswith(api) else None)
        open_chat(page, options.st)

        # 1. SillyTavern's default: external media forbidden.
        forbid_external_media(page, True)
        blocked = link(f"a fox blocked {stamp}", live=True)
        say(page, f"![a fox]({blocked})")
        page.wait_for_timeout(1500)
        html = page.locator("#chat .mes").last.locator(".mes_text").inner_html()
        print(f"1. Forbid External Media on: {last_image(page).count()} <img> in the message "
              f"(message HTML {html!r}); console: {warnings[-1:]}; LinkPix asked {asked.count(blocked)} time(s)")
        page.locator("#chat .mes").last.screenshot(path=str(out / "1-forbidden.png"))

        # 2. Allowed: the chat's <img> while the run draws.
        forbid_external_media(page, False)
        page.wait_for_timeout(1500)
        print(f"   after unticking it, SillyTavern renders the chat again: the blocked message now has "
              f"{page.locator('#chat .mes').last.locator('.mes_text img').count()} <img>, LinkPix asked "
              f"{asked.count(blocked)} time(s); waiting for that run to end")
        requests.get(link(f"a fox blocked {stamp}", live=False), timeout=60)  # waits for that run
        chat_text = f"a fox in a chat {stamp}"
        runs_before = runs(chat_text)
        live = link(f"a fox in a chat {stamp}", live=True)
        say(page, f"![a fox]({live})")
        image = last_image(page)
        image.wait_for(timeout=10000)
        print(f"2. Forbid External Media off: <img src={image.get_attribute('src')!r}> "
              f"(the link as written: {image.get_attribute('src') == live})")
        pictures: list[tuple[float, str, Image.Image]] = []
        began = time.monotonic()

        while time.monotonic() - began < 120:
            natural = image.evaluate("img => img.naturalWidth + 'x' + img.naturalHeight")
            picture = shot(image)
            if not pictures or digest(picture) != pictures[-1][1]:
                pictures.append((time.monotonic() - began, digest(picture), picture))
                picture.save(out / f"2-live-{len(pictures):02d}-{natural}.png")
            if natural == "384x256":
                time.sleep(0.5)
                break
            time.sleep(0.08)
        page.locator("#chat .mes").last.screenshot(path=str(out / "2-live-message-end.png"))
        head = heads.get(live, {})
        print(f"   LinkPix answered {head.get('content-type')!r} (X-LinkPix-Live {head.get('x-linkpix-live')}); "
              f"{len(pictures)} distinct pictures in the chat's <img> over {pictures[-1][0]:.1f} s, at "
              + ", ".join(f"{t:.1f}" for t, _, _ in pictures) + " s; shown at "
              + ", ".join(sorted({f"{p.width}x{p.height}" for _, _, p in pictures})) + " px")
        natural = image.evaluate("img => img.naturalWidth + 'x' + img.naturalHeight")
        final_live = shot(image)

        plain = link(f"a fox in a chat {stamp}", live=False)
        say(page, f"![the same fox, plain]({plain})")
        plain_image = last_image(page)
        plain_image.wait_for(timeout=10000)
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=plain_image.element_handle())
        final_plain = shot(plain_image)
        same = final_live.size == final_plain.size and ImageChops.difference(final_live, final_plain).getbbox() is None
        got = requests.get(plain, timeout=30)
        print(f"   ends on {natural} (the link's size 384x256), pixel for pixel the plain link's picture in the next "
              f"message: {same} (plain link: {got.headers.get('x-linkpix-cache')}, ComfyUI runs: "
              f"{runs(chat_text) - runs_before} for the live and the plain link)")
        ok = ok and len(pictures) >= 4 and natural == "384x256" and same and runs(chat_text) - runs_before == 1

        # 3. A message that goes on after the image: how often SillyTavern asks for the link.
        grown = link(f"a fox growing {stamp}", live=True)
        box = page.locator("#send_textarea")
        before, runs_before = len(asked), runs(f"a fox growing {stamp}")
        say(page, f"Look: ![a fox]({grown}) Isn't it nice?")
        page.wait_for_timeout(1500)
        mes = page.locator("#chat .mes").last
        mes.locator(".mes_edit").click()  # edit the message and save it: SillyTavern renders it again
        mes.locator(".edit_textarea").fill(f"Look: ![a fox]({grown}) Isn't it nice? It is drawing.")
        mes.locator(".mes_edit_done").click()
        requests.get(grown.replace("&live=1", ""), timeout=120)  # waits for the run's end
        page.wait_for_timeout(1500)
        box.fill("")
        calls = [u for u in asked[before:] if u == grown]
        edited = "It is drawing" in mes.locator(".mes_text").inner_text()
        shown = mes.locator(".mes_text img").evaluate("img => img.naturalWidth + 'x' + img.naturalHeight")
        print(f"3. a message rendered twice while its run draws (sent, then edited: {edited}): LinkPix asked for "
              f"its live link {len(calls)} time(s); ComfyUI runs: {runs(f'a fox growing {stamp}') - runs_before}; "
              f"the image at the end: {shown}")
        ok = ok and edited and shown == "384x256" and runs(f"a fox growing {stamp}") - runs_before == 1
        page.screenshot(path=str(out / "3-chat.png"))

        # 4. The picture's size: a markdown image has none, so the <img> takes each part's own size (cards and
        # previews 512 px on their long side, the finished image the link's); an HTML <img> with width and
        # height (SillyTavern keeps them) stays put.
        sized = link(f"a sized fox {stamp}", live=True)
        say(page, f'<img src="{sized}" width="384" height="256">')
        image = last_image(page)
        image.wait_for(timeout=10000)
        boxes = set()
        began = time.monotonic()
        while time.monotonic() - began < 120 and (len(boxes) < 3 or not any(n == "384x256" for _, _, n in boxes)):
            box_now = image.bounding_box() or {}
            boxes.add((round(box_now.get("width", 0)), round(box_now.get("height", 0)),
                       image.evaluate("img => img.naturalWidth + 'x' + img.naturalHeight")))
            time.sleep(0.2)
        print("4. an HTML <img width=384 height=256> of a live link: (shown size, picture size) seen: "
              + ", ".join(f"{w}x{h} showing {n}" for w, h, n in sorted(boxes)))
        ok = ok and {(w, h) for w, h, _ in boxes} == {(384, 256)}

        # 5. A reply that streams in, written by a (fake) language model: SillyTavern renders the message again
        # with every chunk; how often is LinkPix asked for the link, and does the picture end finished?
        streamed = link(f"a fox in a streamed reply {stamp}", live=True)
        FakeModel.reply = (f"Of course! Here it is: ![a fox]({streamed}) I drew it in the snow, with a bushy tail "
                           "and bright eyes. It should be finished in a few seconds; tell me if you want another.")
        model = ThreadingHTTPServer(("127.0.0.1", free_port()), FakeModel)
        threading.Thread(target=model.serve_forever, daemon=True).start()
        try:
            connect_fake_model(page, f"http://127.0.0.1:{model.server_address[1]}/v1")
            before, runs_before = len(asked), runs(f"a fox in a streamed reply {stamp}")
            box.fill("Draw me a fox, please.")
            box.press("Enter")
            lengths, elements = set(), 0
            began = time.monotonic()
            while time.monotonic() - began < 60:  # while the reply streams in: its text and its <img> elements
                seen = page.evaluate("""() => {
                    const mes = document.querySelector('#chat .mes:last-child .mes_text');
                    const img = mes && mes.querySelector('img');
                    let fresh = 0;
                    if (img && !img.dataset.trialSeen) { img.dataset.trialSeen = '1'; fresh = 1; }
                    const stop = document.querySelector('#mes_stop');
                    return [mes ? mes.textContent.length : 0, fresh,
                            !!stop && getComputedStyle(stop).display !== 'none'];
                }""")
                lengths.add(seen[0])
                elements += seen[1]
                if not seen[2] and time.monotonic() - began > 2:
                    break
                time.sleep(0.03)
            requests.get(streamed.replace("&live=1", ""), timeout=120)  # waits for the run's end
            page.wait_for_timeout(1500)
            mes = page.locator("#chat .mes").last
            shown = mes.locator(".mes_text img").evaluate("img => img.naturalWidth + 'x' + img.naturalHeight")
            calls = [u for u in asked[before:] if u.startswith(api + "/prompt/")]
            runs_now = runs(f"a fox in a streamed reply {stamp}") - runs_before
            print(f"5. a streamed reply ({len(FakeModel.reply)} characters in chunks of {FakeModel.piece}, "
                  f"{len(lengths)} lengths of its text seen, {elements} <img> elements made for its link): LinkPix "
                  f"asked {calls.count(streamed)} time(s) for the live link, {len(calls) - calls.count(streamed)} "
                  f"time(s) for anything else; ComfyUI runs: {runs_now}; the image at the end: {shown}")
            mes.screenshot(path=str(out / "5-streamed-reply.png"))
            ok = ok and shown == "384x256" and calls.count(streamed) >= 1 and runs_now == 1 and len(lengths) > 5
        finally:
            model.shutdown()
        browser.close()
    print(f"screenshots in {out}; {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
