"""Hits while 32 distinct slow generations are pending: p99 of the hits (goal < 50 ms).

The same hits are first measured with nothing pending (the baseline, same run), then with 32 slow
generations holding server threads and ComfyUI's queue; three rounds each, median reported, since a
shared VM adds its own hiccups to any single p99.
"""

from __future__ import annotations

import threading
import time

import requests
from common import linkpix_api, make_project, median, simulator, wrk

HIT = "/prompt/warm%20hit?width=256&height=256"


def rounds(url: str, n: int = 3, seconds: int = 3) -> list[dict[str, float]]:
    return [wrk(url, seconds=seconds) for _ in range(n)]


def main(pending: int = 32) -> dict[str, float]:
    project = make_project(workflow_path="demo.json", max_pending=pending, threads=pending + 16)
    with simulator(step_delay=0.0) as sim, linkpix_api(project, sim.url) as api:
        requests.get(api + HIT, timeout=60).raise_for_status()
        wrk(api + HIT, seconds=1)  # warm-up
        idle = rounds(api + HIT)
        sim.faults.step_delay = 5.0  # each run now takes 8 steps x 5 s: nothing finishes while we measure
        for i in range(pending):
            threading.Thread(target=_slow, args=(api, i), daemon=True).start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            health = requests.get(api + "/health", timeout=10).json()
            if health["pending_generations"] >= pending:
                break
            time.sleep(0.2)
        loaded = rounds(api + HIT)
        health = requests.get(api + "/health", timeout=10).json()
    p99_idle = median([f["p99_ms"] for f in idle])
    p99_loaded = median([f["p99_ms"] for f in loaded])
    print(f"hits under load (c=16; {health['pending_generations']} generations pending in LinkPix, ComfyUI queue "
          f"{health.get('queue_pending', '?')} pending + {health.get('queue_running', '?')} running):")
    for name, runs in (("nothing pending", idle), (f"{pending} pending", loaded)):
        print(f"  {name:16}: " + " | ".join(f"{f['rps']:.0f} req/s p50 {f['p50_ms']:.1f} ms p99 {f['p99_ms']:.1f} ms"
                                            f" non-2xx {f['errors']:.0f}" for f in runs))
    print(f"  p99 median: {p99_idle:.1f} ms idle, {p99_loaded:.1f} ms with {pending} pending (goal < 50 ms)")
    return {"hits_under_load_p99_ms": p99_loaded, "hits_idle_p99_ms": p99_idle}


def _slow(api: str, i: int) -> None:
    try:
        requests.get(f"{api}/prompt/slow%20{i}?width=64&height=64", timeout=120)
    except requests.RequestException:
        pass


if __name__ == "__main__":
    main()
