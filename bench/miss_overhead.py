"""Miss overhead: the same graph through /prompt vs straight to ComfyUI by a minimal websocket script.

Goal: LinkPix adds at most 10 ms (median) to a generation. A gateway that polls /history once a second
adds hundreds of milliseconds; LinkPix is driven by the websocket, like the minimal script.
"""

from __future__ import annotations

import json
import time
import uuid

import requests
import websocket
from common import linkpix_api, make_project, median, percentile, simulator

from linkpix.config import load_config
from linkpix.pipeline.request import parse_query
from linkpix.pipeline.resolver import Resolver
from linkpix.storage.jsonstore import JsonStore


def direct_run(comfy: str, graph: dict) -> float:
    """Submit, wait for `executing null`, read history, fetch the image: what any client must do."""
    started = time.perf_counter()
    client_id = uuid.uuid4().hex
    ws = websocket.create_connection(comfy.replace("http", "ws") + f"/ws?clientId={client_id}", timeout=30)
    try:
        prompt_id = requests.post(comfy + "/prompt", json={"prompt": graph, "client_id": client_id},
                                  timeout=30).json()["prompt_id"]
        while True:
            frame = ws.recv()
            if isinstance(frame, str):
                msg = json.loads(frame)
                data = msg.get("data", {})
                if msg["type"] == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                    break
    finally:
        ws.close()
    history = requests.get(f"{comfy}/history/{prompt_id}", timeout=30).json()[prompt_id]
    for output in history["outputs"].values():
        for image in output.get("images", []):
            requests.get(comfy + "/view", params=image, timeout=30).raise_for_status()
    return (time.perf_counter() - started) * 1000


def main(rounds: int = 30) -> dict[str, float]:
    project = make_project(workflow_path="demo.json")
    config = load_config(project / "config.json", use_env=False)
    with simulator(step_delay=0.0) as sim, linkpix_api(project, sim.url) as api:
        resolver = Resolver(lambda: config, JsonStore(), lambda: None)
        requests.get(api + "/prompt/warm%20up?width=64&height=64", timeout=60).raise_for_status()
        direct_run(sim.url, resolver.resolve(parse_query("warm up direct", {"width": "64", "height": "64"},
                                                         "default")).graph)
        ours, theirs = [], []
        for i in range(rounds):
            graph = resolver.resolve(parse_query(f"direct {i}", {"width": "64", "height": "64"}, "default")).graph
            theirs.append(direct_run(sim.url, graph))
            started = time.perf_counter()
            requests.get(f"{api}/prompt/through%20linkpix%20{i}?width=64&height=64", timeout=60).raise_for_status()
            ours.append((time.perf_counter() - started) * 1000)
    added = median(ours) - median(theirs)
    print(f"miss overhead ({rounds} rounds, 64x64 demo workflow, simulator without step delay):")
    print(f"  direct websocket script: median {median(theirs):.1f} ms  p90 {percentile(theirs, 90):.1f} ms")
    print(f"  through LinkPix /prompt: median {median(ours):.1f} ms  p90 {percentile(ours, 90):.1f} ms")
    print(f"  added: {added:.1f} ms median (goal <= 10 ms)")
    return {"miss_added_ms": added}


if __name__ == "__main__":
    main()
