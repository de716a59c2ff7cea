"""A Comfy API v2 job end to end on LinkPix, against a direct ComfyUI websocket client and against
Comfy-Org's `comfy-api-proxy` on the same ComfyUI, in the same run.

The ComfyUI is the real one at 127.0.0.1:8188 when it answers (the tiny SD1.5 workflow of
tests/comfyui_captures), else the simulator; `--simulator` uses the simulator even then (a CPU ComfyUI
shared with other work varies by seconds per run, which hides milliseconds of overhead). Each round of a
"new" figure uses a new seed, so every client makes ComfyUI run the graph; the "again" figures send a
graph already run (LinkPix answers from its cache; the proxy and the direct client get ComfyUI's node
cache). The same v2 client code runs against LinkPix and the proxy: POST /api/v2/jobs, read /events
until the terminal status, GET the job, GET the output's content. The direct client is a ComfyUI
script: its websocket open, POST /prompt, wait for `executing` null, GET /history/<id>, GET /view. The
SDK's own `client.run()` (which polls from 0.5 s on) is timed for both v2 servers too. LinkPix runs as
users run it (app.py, default settings, access log on). Goal: no slower than the proxy; <= 25 ms over
direct.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import requests
import websocket
from common import ROOT, free_port, linkpix_api, make_project, median, percentile, process, simulator

REAL = "http://127.0.0.1:8188"
LAGGING = ("running", "expired")  # what comfy-api-proxy 0.1.6 may still say just after its terminal event
GRAPH = json.loads((ROOT / "tests" / "comfyui_captures" / "workflow_txt2img_tiny_sd15_api.json").read_text())


def real_comfyui() -> bool:
    try:
        return requests.get(REAL + "/system_stats", timeout=2).ok
    except requests.RequestException:
        return False


def graph(seed: int, demo: bool) -> dict:
    g = json.loads(json.dumps(GRAPH))
    g["3"]["inputs"]["seed"] = seed
    if demo:  # the simulator's checkpoint
        g["4"]["inputs"]["ckpt_name"] = "demo.safetensors"
    return g


class Direct:
    """A ComfyUI script client: one websocket, then POST /prompt, history and view per image."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client_id = uuid.uuid4().hex
        self.ws = websocket.create_connection(url.replace("http", "ws") + f"/ws?clientId={self.client_id}",
                                              timeout=120)
        self.s = requests.Session()

    def run(self, g: dict) -> bytes:
        prompt_id = self.s.post(self.url + "/prompt", json={"prompt": g, "client_id": self.client_id},
                                timeout=60).json()["prompt_id"]
        while True:
            raw = self.ws.recv()
            if isinstance(raw, str):
                msg = json.loads(raw)
                data = msg.get("data", {})
                if msg.get("type") == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                    break
        entry = self.s.get(f"{self.url}/history/{prompt_id}", timeout=30).json()[prompt_id]
        image = next(img for out in entry["outputs"].values() for img in out.get("images", []))
        return self.s.get(self.url + "/view", params=image, timeout=30).content


class V2:
    """The same v2 client for LinkPix and the proxy: submit, events to the end, job, content."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.s = requests.Session()
        self.lagged = 0  # GETs after the terminal event that still read `running` or `expired`

    def run(self, g: dict) -> bytes:
        job = self.s.post(self.url + "/api/v2/jobs", json={"workflow": g}, timeout=60).json()
        if job["status"] not in ("succeeded", "failed", "canceled"):
            with self.s.get(job["urls"]["events"], stream=True, timeout=120) as r:
                event = None
                for line in r.iter_lines(decode_unicode=True):
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "status":
                        if json.loads(line[6:])["status"] in ("succeeded", "failed", "canceled", "expired"):
                            break
            job = self.s.get(job["urls"]["self"], timeout=30).json()
            for _ in range(500):  # comfy-api-proxy 0.1.6 may still say `running` (or, between ComfyUI's queue
                if job["status"] not in LAGGING:  # and its history, `expired`) after its terminal event: a
                    break  # client has to ask again (counted in its time)
                self.lagged += 1
                time.sleep(0.002)
                job = self.s.get(job["urls"]["self"], timeout=30).json()
        assert job["status"] == "succeeded", job
        return self.s.get(job["outputs"][0]["url"], timeout=30).content


def sdk_run(url: str, g: dict) -> None:
    from comfy_sdk import Comfy

    os.environ["COMFY_BASE_URL"] = url
    c = Comfy()
    job = c.run(c.workflows.from_json(g))
    job.outputs[0].to_bytes()


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


@contextmanager
def comfyui(use_simulator: bool) -> Iterator[tuple[str, bool]]:
    if not use_simulator and real_comfyui():
        yield REAL, False
        return
    with simulator(step_delay=0.02) as sim:
        yield sim.url, True


@contextmanager
def proxy(comfy_url: str) -> Iterator[str]:
    exe = shutil.which("comfy-api-proxy")
    if exe is None:
        raise SystemExit("comfy-api-proxy is not installed: python3 -m pip install comfy-api-proxy")
    port = free_port()
    argv = [exe, "run", "--comfyui", comfy_url, "--port", str(port)]
    with process(argv, f"http://127.0.0.1:{port}/api/v2/health"):
        yield f"http://127.0.0.1:{port}"


def main(rounds: int = 12, again_rounds: int = 20, sdk_rounds: int = 4,
         use_simulator: bool = "--simulator" in sys.argv) -> dict[str, float]:
    """`--simulator`: on the simulator even when the real ComfyUI answers (its runs vary less)."""
    with comfyui(use_simulator) as (comfy_url, demo):
        project = make_project()
        with proxy(comfy_url) as proxy_url, linkpix_api(project, comfy_url) as lp_url:
            print(f"ComfyUI: {'simulator' if demo else 'real ComfyUI 0.3.64 at ' + REAL} (tiny SD1.5 graph)")
            clients = {"direct": Direct(comfy_url), "proxy": V2(proxy_url), "linkpix": V2(lp_url)}
            seed = int(time.time()) % 1_000_000 * 100
            for c in clients.values():  # warm-up: models loaded, connections open
                c.run(graph(seed - 1, demo))
            new: dict[str, list[float]] = {k: [] for k in clients}
            for i in range(rounds):  # interleaved, so drift hits every client alike; a seed of its own each
                for k, (name, c) in enumerate(clients.items()):
                    g = graph(seed + i * 10 + k, demo)
                    new[name].append(timed(lambda c=c, g=g: c.run(g)))
            again: dict[str, list[float]] = {k: [] for k in clients}
            fixed = graph(seed - 1, demo)
            for _ in range(again_rounds):
                for name, c in clients.items():
                    again[name].append(timed(lambda c=c: c.run(fixed)))
            sdk = {"proxy": [], "linkpix": []}
            for i in range(sdk_rounds):
                for k, (name, url) in enumerate((("proxy", proxy_url), ("linkpix", lp_url))):
                    g = graph(seed + 5000 + i * 10 + k, demo)
                    sdk[name].append(timed(lambda url=url, g=g: sdk_run(url, g)))
    print(f"{'ms (median, p90)':28} {'direct ws':>16} {'comfy-api-proxy':>16} {'LinkPix v2':>16}")
    for label, data in (("new run", new), ("same workflow again", again)):
        cells = [f"{median(data[k]):7.1f} {percentile(data[k], 90):7.1f}" for k in ("direct", "proxy", "linkpix")]
        print(f"{label:28} " + " ".join(f"{c:>16}" for c in cells))
    print(f"{'SDK client.run() (new run)':28} {'-':>16} {median(sdk['proxy']):16.1f} {median(sdk['linkpix']):16.1f}")
    figures = {
        "new_direct_ms": median(new["direct"]), "new_proxy_ms": median(new["proxy"]),
        "new_linkpix_ms": median(new["linkpix"]),
        "new_over_direct_ms": median(new["linkpix"]) - median(new["direct"]),
        "new_vs_proxy": median(new["linkpix"]) / median(new["proxy"]),
        "again_direct_ms": median(again["direct"]), "again_proxy_ms": median(again["proxy"]),
        "again_linkpix_ms": median(again["linkpix"]),
        "again_vs_proxy": median(again["linkpix"]) / median(again["proxy"]),
        "sdk_proxy_ms": median(sdk["proxy"]), "sdk_linkpix_ms": median(sdk["linkpix"]),
    }
    print(f"GETs after the terminal event still reading `running` or `expired`: proxy {clients['proxy'].lagged}, "
          f"LinkPix {clients['linkpix'].lagged}")
    print(f"LinkPix v2 over direct (new run): {figures['new_over_direct_ms']:+.1f} ms (goal <= 25); "
          f"LinkPix / proxy: new run {figures['new_vs_proxy']:.2f}x, again {figures['again_vs_proxy']:.2f}x "
          "(goal <= 1)")
    return figures


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
