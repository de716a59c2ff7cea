"""What each front adds over `/prompt` for the same picture, on a hit and on a miss.

The same picture: `/prompt/<text>?width=64&height=64&seed=S` and, for each dialect, the request that
renders the identical graph (A1111 txt2img, OpenAI generations, and for ComfyUI the graph `/prompt`
renders, posted whole, followed the way clients follow it). A hit compares answers from LinkPix's cache;
a miss uses a new seed each round and includes the simulator's run. Goal: <= 2 ms added, median.
The ComfyUI dialect needs three requests where `/prompt` needs one (POST /prompt, then, once the
client's websocket says `executing` null, GET /history/<id> and GET /view), so its figure is for the
whole exchange, as a ComfyUI script client with its socket open makes it.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import requests
import websocket
from common import ROOT, free_port, make_project, median, percentile, process, simulator

from linkpix.config import load_config
from linkpix.pipeline.request import parse_query
from linkpix.pipeline.resolver import Resolver
from linkpix.storage.jsonstore import JsonStore

TEXT = "a lighthouse at dusk"


@contextmanager
def api_as_users_run_it(project, comfyui_url: str) -> Iterator[str]:
    """`python app.py` with default settings and the access log on (to /dev/null, like a service's)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LINKPIX_COMFYUI_URL": comfyui_url, "LINKPIX_LOG_LEVEL": "INFO"}
    with process([sys.executable, str(ROOT / "app.py"), "--config", str(project / "config.json"),
                  "--port", str(port)], url + "/openapi.json", env=env):
        yield url


def timed(fn: Callable[[], None], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main(hit_rounds: int = 200, miss_rounds: int = 30) -> dict[str, float]:
    project = make_project(workflow_path="demo.json")
    config = load_config(project / "config.json", use_env=False)
    resolver = Resolver(lambda: config, JsonStore(), lambda: None)
    s = requests.Session()

    def graph(seed: int) -> dict:
        return resolver.resolve(parse_query(TEXT, {"width": "64", "height": "64", "seed": str(seed)}, "default")).graph

    with simulator(step_delay=0.0) as sim, api_as_users_run_it(project, sim.url) as api:
        def link(seed: int) -> None:
            s.get(f"{api}/prompt/a%20lighthouse%20at%20dusk?width=64&height=64&seed={seed}",
                  timeout=60).raise_for_status()

        def a1111(seed: int) -> None:
            r = s.post(api + "/sdapi/v1/txt2img", json={"prompt": TEXT, "width": 64, "height": 64, "seed": seed},
                       timeout=60)
            r.raise_for_status()
            assert r.json()["images"]

        def openai(seed: int) -> None:
            r = s.post(api + "/v1/images/generations", json={"prompt": TEXT, "size": "64x64", "seed": seed},
                       timeout=60)
            r.raise_for_status()
            assert r.json()["data"][0]["url"]

        client_id = uuid.uuid4().hex
        ws = websocket.create_connection(api.replace("http", "ws") + f"/ws?clientId={client_id}", timeout=60)

        def comfy(seed: int) -> None:
            """A ComfyUI script client: its socket open, POST /prompt, wait for `executing` null, then
            /history/<id> and /view."""
            prompt_id = s.post(api + "/prompt", json={"prompt": graph(seed), "client_id": client_id},
                               timeout=60).json()["prompt_id"]
            while True:
                frame = ws.recv()
                if isinstance(frame, str):
                    msg = json.loads(frame)
                    if msg["type"] == "executing" and msg["data"].get("node") is None \
                            and msg["data"].get("prompt_id") == prompt_id:
                        break
            entry = s.get(f"{api}/history/{prompt_id}", timeout=60).json()
            image = next(iter(entry[prompt_id]["outputs"].values()))["images"][0]
            s.get(api + "/view", params=image, timeout=60).raise_for_status()

        fronts = {"a1111": a1111, "openai": openai, "comfy": comfy}
        results: dict[str, float] = {}
        print(f"fronts: added cost over /prompt for the same 64x64 picture (demo workflow, simulator without "
              f"step delay; medians of {hit_rounds} hits and {miss_rounds} misses each)")
        link(1)  # warm up: one run, and the cache entry every dialect's hit below shares
        for fn in fronts.values():
            fn(1)
        base_hit = timed(lambda: link(1), hit_rounds)
        print(f"  /prompt hit: median {median(base_hit):.2f} ms  p90 {percentile(base_hit, 90):.2f} ms")
        for name, fn in fronts.items():
            hits = timed(lambda fn=fn: fn(1), hit_rounds)
            added = median(hits) - median(base_hit)
            results[f"{name}_hit_added_ms"] = added
            print(f"  {name:6s} hit: median {median(hits):.2f} ms  p90 {percentile(hits, 90):.2f} ms  "
                  f"added {added:+.2f} ms  ({median(hits) / median(base_hit):.2f}x)")
            if name == "comfy":  # three requests where /prompt takes one
                per_request = (median(hits) - 3 * median(base_hit)) / 3
                results["comfy_hit_added_per_request_ms"] = per_request
                print(f"         per request of the exchange: added {per_request:+.2f} ms")
        seeds = iter(range(1000, 1000 + miss_rounds * (len(fronts) + 1)))
        base_miss = timed(lambda: link(next(seeds)), miss_rounds)
        print(f"  /prompt miss: median {median(base_miss):.1f} ms  p90 {percentile(base_miss, 90):.1f} ms")
        for name, fn in fronts.items():
            misses = timed(lambda fn=fn: fn(next(seeds)), miss_rounds)
            added = median(misses) - median(base_miss)
            results[f"{name}_miss_added_ms"] = added
            print(f"  {name:6s} miss: median {median(misses):.1f} ms  p90 {percentile(misses, 90):.1f} ms  "
                  f"added {added:+.1f} ms  ({median(misses) / median(base_miss):.2f}x)")
        print("  goal: <= 2 ms added (the ComfyUI figure is the whole exchange: 3 requests and a socket message)")
        ws.close()
    return results


if __name__ == "__main__":
    main()
