"""Several ComfyUI backends (issue 11): two simulators with `--run-delay 0.5`, LinkPix as users run it.

1. 40 distinct links at concurrency 16: requests/s with two backends over one backend (goal >= 1.8).
2. The same storm with one backend killed halfway: failed requests (goal 0) and the p99 it adds.
3. 20 links asking for a checkpoint only the second backend has: how many ran there (goal all).
4. The routing cost per request, `pool.choose()` + `finished()` (goal < 1 ms), beside the cost of the
   request's cache key measured in the same run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import requests
from common import API_PIDS, ROOT, free_port, make_project, percentile, process, wait_up

from linkpix.comfy.pool import Pool
from linkpix.config import BackendSpec
from linkpix.storage.cache import cache_key

RUN_DELAY = 0.5
LINKS = 40
CONCURRENCY = 16


@contextmanager
def simulator(name: str, *extra: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m linkpix.simulator --run-delay 0.5 --name NAME ...` in a child process."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "linkpix.simulator", "--port", str(port), "--step-delay", "0",
                             "--run-delay", str(RUN_DELAY), "--name", name, *extra], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url + "/prompt")
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


@contextmanager
def api_over(*backends: tuple[str, str]) -> Iterator[str]:
    """`python app.py` over the named backends (LINKPIX_COMFYUI_URLS), default settings, access log on."""
    project = make_project(workflow_path="demo.json",
                           comfyui_urls=[{"url": url, "name": name} for name, url in backends])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, str(ROOT / "app.py"), "--config", str(project / "config.json"), "--port",
                  str(port)], url + "/openapi.json", env=dict(os.environ)) as proc:
        API_PIDS[url] = proc.pid
        yield url


def storm(api: str, tag: str, count: int = LINKS, query: str = "",
          halfway: Callable[[], None] | None = None) -> dict[str, Any]:
    """`count` distinct links at CONCURRENCY; `halfway` runs once half of them have answered."""
    done = [0]
    fired = [False]

    def one(i: int) -> tuple[int, float, str]:
        started = time.monotonic()
        r = requests.get(f"{api}/prompt/{tag}%20{i}?width=64&height=64{query}", timeout=120)
        done[0] += 1
        if halfway is not None and done[0] >= count // 2 and not fired[0]:
            fired[0] = True
            halfway()
        return r.status_code, time.monotonic() - started, r.headers.get("X-LinkPix-Backend", "")

    started = time.monotonic()
    with ThreadPoolExecutor(CONCURRENCY) as workers:
        results = list(workers.map(one, range(count)))
    seconds = time.monotonic() - started
    latencies = [r[1] for r in results]
    return {"rps": count / seconds, "seconds": seconds, "failed": sum(1 for r in results if r[0] != 200),
            "p99": percentile(latencies, 99), "p50": percentile(latencies, 50),
            "backends": [r[2] for r in results]}


def routing_cost(urls: list[str], rounds: int = 5000) -> tuple[float, float]:
    """Microseconds per choose()+finished() on a live two-backend pool, and per cache key of the graph."""
    import json

    graph = json.loads((ROOT / "workflows" / "demo.json").read_text())
    graph["5"]["inputs"]["seed"] = 1
    pool = Pool([BackendSpec(url=u) for u in urls])
    try:
        pool.finished(pool.choose(graph), 0.0)  # fetch object_info once, as the keepers would
        started = time.perf_counter()
        for _ in range(rounds):
            pool.finished(pool.choose(graph), 0.0)
        choose_us = (time.perf_counter() - started) / rounds * 1e6
        started = time.perf_counter()
        for _ in range(rounds):
            cache_key(graph, "png", ())
        key_us = (time.perf_counter() - started) / rounds * 1e6
    finally:
        pool.close()
    return choose_us, key_us


def main() -> dict[str, float]:
    with simulator("gpu1") as (one, _p1), simulator("gpu2") as (two, p2):
        with api_over(("gpu1", one)) as api:
            single = storm(api, "single")
        with api_over(("gpu1", one), ("gpu2", two)) as api:
            double = storm(api, "double")
            killed = storm(api, "killed", halfway=lambda: os.kill(p2.pid, signal.SIGKILL))
    with simulator("gpu1") as (one, _p1), \
            simulator("gpu2", "--checkpoints", "demo.safetensors,special.safetensors") as (two, _p2):
        with api_over(("gpu1", one), ("gpu2", two)) as api:
            special = storm(api, "special", count=20, query="&model=special.safetensors")
        choose_us, key_us = routing_cost([one, two])
    ratio = double["rps"] / single["rps"]
    there = special["backends"].count("gpu2")
    print(f"pool: {LINKS} distinct links at concurrency {CONCURRENCY}, run delay {RUN_DELAY:g} s per run")
    print(f"  one backend:  {single['rps']:.2f} req/s (p50 {single['p50']:.2f} s, p99 {single['p99']:.2f} s)")
    print(f"  two backends: {double['rps']:.2f} req/s (p50 {double['p50']:.2f} s, p99 {double['p99']:.2f} s) "
          f"= {ratio:.2f}x one backend (goal >= 1.8); split {double['backends'].count('gpu1')}/"
          f"{double['backends'].count('gpu2')}")
    print(f"  second backend killed halfway: {killed['failed']} failed of {LINKS} (goal 0); p99 {killed['p99']:.2f} s "
          f"= +{killed['p99'] - double['p99']:.2f} s over the storm without the kill")
    print(f"  20 links for a checkpoint only gpu2 has: {there} ran there (goal 20); failed {special['failed']}")
    print(f"  routing: {choose_us:.0f} us per request (goal < 1000 us) = {choose_us / key_us:.1f}x the request's "
          f"cache key ({key_us:.0f} us)")
    return {"pool_speedup": ratio, "pool_failed_when_killed": killed["failed"],
            "pool_added_p99_s": killed["p99"] - double["p99"], "pool_model_routed": there,
            "pool_routing_us": choose_us}


if __name__ == "__main__":
    main()
