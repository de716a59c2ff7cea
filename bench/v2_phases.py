"""Where a Comfy API v2 job's time goes, on LinkPix and on comfy-api-proxy, with the run itself taken out.

bench/v2.py's end-to-end figure includes ComfyUI's run, which on a shared CPU ComfyUI varies by more than
the few milliseconds the two servers differ by. Here a watcher socket hears ComfyUI's own `status`
broadcasts (the queue growing when a prompt is queued, emptying when it ends), so each job splits into:
`queued` (client's POST start -> ComfyUI queued the prompt), `run` (queued -> ComfyUI's queue empty),
`terminal` (-> the client read the terminal status on the event stream), `job` (-> the GET of the job),
`content` (-> the output's bytes); `outside` is the whole minus `run`: what the server adds. The same v2
client code (bench/v2.py's) runs against both, alternating, each job with its own seed.

    python3 bench/v2_phases.py [rounds]   # the real ComfyUI at 127.0.0.1:8188 when it answers, else the simulator
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from typing import Any

import requests
import websocket
from common import linkpix_api, make_project, median
from v2 import LAGGING, comfyui, graph, proxy

PHASES = ("queued", "run", "terminal", "job", "content", "outside")


class Watcher:
    """ComfyUI's queue-size broadcasts, timestamped."""

    def __init__(self, comfy_url: str) -> None:
        self.ws = websocket.create_connection(comfy_url.replace("http", "ws") + f"/ws?clientId={uuid.uuid4().hex}")
        self.seen: list[tuple[float, int]] = []
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        while True:
            try:
                message = self.ws.recv()
            except (websocket.WebSocketException, OSError):
                return
            if isinstance(message, str):
                data = json.loads(message)
                if data.get("type") == "status":
                    self.seen.append((time.perf_counter(), data["data"]["status"]["exec_info"]["queue_remaining"]))

    def run_of(self, since: float) -> tuple[float, float] | None:
        """When ComfyUI queued the prompt sent after `since`, and when its queue emptied again."""
        ups = [t for t, size in self.seen if t >= since and size >= 1]
        if not ups:
            return None
        downs = [t for t, size in self.seen if t > ups[0] and size == 0]
        return (ups[0], downs[0]) if downs else None


def job(session: requests.Session, url: str, g: dict[str, Any]) -> dict[str, float]:
    """One v2 job, with the client's marks (perf_counter seconds)."""
    marks = {"start": time.perf_counter()}
    body = session.post(url + "/api/v2/jobs", json={"workflow": g}, timeout=60).json()
    with session.get(body["urls"]["events"], stream=True, timeout=120) as stream:
        event = None
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "status" and json.loads(line[6:])["status"] in (
                    "succeeded", "failed", "canceled"):
                break
    marks["terminal"] = time.perf_counter()
    body = session.get(body["urls"]["self"], timeout=30).json()
    for _ in range(500):  # comfy-api-proxy 0.1.6 may lag behind its own terminal event (bench/v2.py)
        if body["status"] not in LAGGING:
            break
        time.sleep(0.002)
        body = session.get(body["urls"]["self"], timeout=30).json()
    marks["job"] = time.perf_counter()
    assert body["status"] == "succeeded", (url, body)
    assert session.get(body["outputs"][0]["url"], timeout=30).content
    marks["content"] = time.perf_counter()
    return marks


def phases(marks: dict[str, float], queued: float, ended: float) -> dict[str, float]:
    ms = {"queued": queued - marks["start"], "run": ended - queued, "terminal": marks["terminal"] - ended,
          "job": marks["job"] - marks["terminal"], "content": marks["content"] - marks["job"]}
    ms["outside"] = marks["content"] - marks["start"] - ms["run"]
    return {k: v * 1000 for k, v in ms.items()}


def main(rounds: int = 20) -> dict[str, dict[str, float]]:
    with comfyui(False) as (comfy_url, demo):
        watcher = Watcher(comfy_url)
        with proxy(comfy_url) as proxy_url, linkpix_api(make_project(), comfy_url) as lp_url:
            servers = {"proxy": proxy_url, "linkpix": lp_url}
            sessions = {name: requests.Session() for name in servers}
            seed = int(time.time()) % 1_000_000 * 100
            for name, url in servers.items():  # warm-up
                job(sessions[name], url, graph(seed - 1 - len(name), demo))
            found: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
            for i in range(rounds):
                for k, name in enumerate(servers if i % 2 == 0 else reversed(list(servers))):
                    time.sleep(0.2)  # ComfyUI idle, its broadcasts of the last job over
                    marks = job(sessions[name], servers[name], graph(seed + i * 10 + k, demo))
                    time.sleep(0.02)
                    run = watcher.run_of(marks["start"])
                    if run is not None:
                        found[name].append(phases(marks, *run))
    print(f"ComfyUI: {'simulator' if demo else 'real ComfyUI at ' + comfy_url}; {rounds} alternating rounds, "
          "ms (medians)")
    print(f"{'':10}" + "".join(f"{p:>10}" for p in PHASES))
    result = {}
    for name, rows in found.items():
        result[name] = {p: median([r[p] for r in rows]) for p in PHASES}
        print(f"{name:10}" + "".join(f"{result[name][p]:10.2f}" for p in PHASES) + f"   (n={len(rows)})")
    print(f"outside the run: LinkPix {result['linkpix']['outside']:.1f} ms, the proxy "
          f"{result['proxy']['outside']:.1f} ms ({result['linkpix']['outside'] - result['proxy']['outside']:+.1f})")
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
