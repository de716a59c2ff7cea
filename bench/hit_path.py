"""Hit path: /prompt on a warm cache vs a bare waitress app serving the same file (goal: ratio >= 0.7)."""

from __future__ import annotations

import sys

import requests
from common import free_port, linkpix_api, make_project, process, simulator, wrk

LINK = "/prompt/a%20red%20fox%20in%20the%20snow?width=512&height=512&style=kawaii"


def main(seconds: int = 5) -> dict[str, float]:
    project = make_project(workflow_path="demo.json")
    with simulator() as sim, linkpix_api(project, sim.url) as api:
        first = requests.get(api + LINK, timeout=60)
        first.raise_for_status()
        stored = project / "cache" / "default" / first.headers["X-LinkPix-Image-Url"].rsplit("/", 1)[1]
        threads = 48
        port = free_port()
        bare = f"http://127.0.0.1:{port}/"
        with process([sys.executable, "bench/bare_server.py", str(stored), str(port), str(threads)], bare):
            wrk(bare, seconds=1)  # warm-up
            base = wrk(bare, seconds=seconds)
        wrk(api + LINK, seconds=1)
        ours = wrk(api + LINK, seconds=seconds)
    ratio = ours["rps"] / base["rps"]
    print(f"hit path (c=16, {len(first.content)} B image):")
    print(f"  bare waitress : {base['rps']:8.0f} req/s  p50 {base['p50_ms']:.2f} ms  p99 {base['p99_ms']:.2f} ms")
    print(f"  LinkPix /prompt: {ours['rps']:8.0f} req/s  p50 {ours['p50_ms']:.2f} ms  p99 {ours['p99_ms']:.2f} ms"
          f"  non-2xx {ours['errors']:.0f}")
    print(f"  ratio {ratio:.2f} (goal >= 0.7)")
    return {"hit_ratio": ratio, **{f"ours_{k}": v for k, v in ours.items()}}


if __name__ == "__main__":
    main()
