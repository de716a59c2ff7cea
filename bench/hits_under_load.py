"""Hits while 32 distinct slow generations are pending: p99 of the hits (goal < 50 ms)."""

from __future__ import annotations

import threading
import time

import requests
from common import linkpix_api, make_project, simulator, wrk

HIT = "/prompt/warm%20hit?width=256&height=256"


def main(seconds: int = 5, pending: int = 32) -> dict[str, float]:
    project = make_project(workflow_path="demo.json", max_pending=pending, threads=pending + 16)
    with simulator(step_delay=0.0) as sim, linkpix_api(project, sim.url) as api:
        requests.get(api + HIT, timeout=60).raise_for_status()
        # Now make ComfyUI slow: each run takes 8 steps x 2 s, so nothing finishes during the measurement.
        sim.faults.step_delay = 2.0
        session_threads = [threading.Thread(target=_slow, args=(api, i), daemon=True) for i in range(pending)]
        for t in session_threads:
            t.start()
        time.sleep(1.0)
        health = requests.get(api + "/health", timeout=10).json()
        figures = wrk(api + HIT, seconds=seconds)
    print(f"hits under load ({health['pending_generations']} generations pending in LinkPix, "
          f"ComfyUI queue {health.get('queue_pending', '?')} pending + {health.get('queue_running', '?')} running):")
    print(f"  {figures['rps']:.0f} req/s  p50 {figures['p50_ms']:.2f} ms  p99 {figures['p99_ms']:.2f} ms"
          f"  non-2xx {figures['errors']:.0f}  (goal p99 < 50 ms)")
    return {"hits_under_load_p99_ms": figures["p99_ms"], "pending": health["pending_generations"]}


def _slow(api: str, i: int) -> None:
    try:
        requests.get(f"{api}/prompt/slow%20{i}?width=64&height=64", timeout=120)
    except requests.RequestException:
        pass


if __name__ == "__main__":
    main()
