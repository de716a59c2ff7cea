"""Several replicas (issue 14): three LinkPix processes (`python app.py`, as users run them, access log on),
one redis-server, one simulator, one shared project folder.

1. 30 identical new links spread round-robin over the replicas, all at once -> ComfyUI runs (goal 1).
2. 30 distinct jobs with webhooks, spread round-robin; the replica running most of them is killed
   (SIGKILL) halfway -> jobs finished (goal 30), webhooks delivered (goal exactly 30, none twice).
3. Cached hits per second of the three replicas together against one replica alone, on this machine
   (wrk; the machine has two cores, so expect about 1x: replicas add machines, not cores).

`replica_lease` is 3 s here (default 15) so the take-over shows within the run; everything else is default.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from common import ROOT, free_port, make_project, process, simulator, wrk

REPLICAS = 3
LINKS = 30
JOBS = 30
LEASE = 3.0


@contextmanager
def redis_server() -> Iterator[str]:
    """A throw-away redis-server on a free loopback port, without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: apt-get install redis-server")
    port = free_port()
    folder = tempfile.mkdtemp(prefix="linkpix-redis-")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.RedisError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


class Hooks:
    """A webhook receiver on loopback: counts deliveries per job."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                hooks.count[body["job_id"]] += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def replica(stack: ExitStack, project: Path, name: str, redis_url: str) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKPIX_")}
    env.update(LINKPIX_REDIS_URL=redis_url, LINKPIX_REPLICA_NAME=name)
    proc = stack.enter_context(process([sys.executable, str(ROOT / "app.py"), "--config", str(project / "config.json"),
                                        "--port", str(port)], url + "/openapi.json", env=env,
                                       output=project / f"{name}.log"))
    return url, proc


def identical_links(urls: list[str], sim: Any) -> int:
    before = sim.prompts_received
    link = "/prompt/one%20picture%20for%20three%20replicas?width=64&height=64"
    with ThreadPoolExecutor(LINKS) as pool:
        codes = list(pool.map(lambda i: requests.get(urls[i % len(urls)] + link, timeout=60).status_code,
                              range(LINKS)))
    assert codes == [200] * LINKS, Counter(codes)
    return sim.prompts_received - before


def jobs_with_a_kill(urls: list[str], procs: dict[str, subprocess.Popen[bytes]],
                     names: list[str], hooks: Hooks) -> dict[str, Any]:
    ids = []
    for i in range(JOBS):
        r = requests.post(urls[i % len(urls)] + "/generate", timeout=30,
                          json={"prompt": f"job number {i}", "width": 64, "height": 64, "webhook_url": hooks.url,
                                "user": f"user{i % 5}"})  # jobs_max_queued_per_user counts over replicas
        assert r.status_code == 202, r.text
        ids.append(r.json()["job_id"])

    def states(url: str) -> list[dict[str, Any]]:
        return requests.get(url + "/jobs?limit=1000", timeout=10).json()["jobs"]

    while sum(j["status"] == "succeeded" for j in states(urls[0])) < JOBS // 2:
        time.sleep(0.1)
    jobs = states(urls[0])
    by_replica = Counter(j["replica"] for j in jobs if j["replica"])
    victim = by_replica.most_common(1)[0][0]
    running = sum(1 for j in jobs if j["replica"] == victim and j["status"] in ("queued", "running"))
    procs[victim].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    alive = [u for u, n in zip(urls, names, strict=True) if n != victim]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        jobs = states(alive[0])
        if all(j["status"] in ("succeeded", "failed", "cancelled") for j in jobs):
            break
        time.sleep(0.2)
    recovered = time.monotonic() - killed_at
    time.sleep(2.0)  # late or duplicate webhooks would arrive now
    finished = sum(j["status"] == "succeeded" for j in jobs if j["job_id"] in ids)
    return {"victim": victim, "victim_jobs": by_replica[victim], "victim_unfinished": running,
            "finished": finished, "failed": sum(j["status"] == "failed" for j in jobs),
            "webhooks": sum(hooks.count[i] for i in ids), "twice": sum(1 for i in ids if hooks.count[i] > 1),
            "missing": sum(1 for i in ids if hooks.count[i] == 0), "seconds_after_kill": recovered}


def hit_rates(urls: list[str]) -> tuple[float, float]:
    link = "/prompt/a%20cached%20picture?width=64&height=64"
    for url in urls:
        assert requests.get(url + link, timeout=60).status_code == 200
    one = wrk(urls[0] + link, connections=16, seconds=5)["rps"]
    with ThreadPoolExecutor(len(urls)) as pool:
        together = sum(f["rps"] for f in pool.map(lambda u: wrk(u + link, connections=16, seconds=5, threads=1),
                                                  urls))
    return one, together


def main() -> None:
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server())
        sim = stack.enter_context(simulator(step_delay=0.0))
        sim.faults.run_delay = 1.0
        project = make_project(workflow_path="demo.json", comfyui_url=sim.url, replica_lease=LEASE,
                               webhook_allow=["127.0.0.1"])
        (project / "cache").mkdir(exist_ok=True)
        names = [f"replica{i + 1}" for i in range(REPLICAS)]
        started = [replica(stack, project, name, redis_url) for name in names]
        urls = [u for u, _ in started]
        procs = {n: p for n, (_, p) in zip(names, started, strict=True)}
        print(f"replicas: {REPLICAS} LinkPix processes, one redis-server, one simulator (1 s per run)")
        runs = identical_links(urls, sim)
        print(f"  {LINKS} identical new links, round-robin, at once: {runs} ComfyUI run(s) (goal 1)")
        one, together = hit_rates(urls)
        print(f"  cached hits: one replica {one:.0f} req/s, three together {together:.0f} req/s "
              f"({together / one:.2f}x on this {os.cpu_count()}-core machine)")
        sim.faults.run_delay = 0.3
        hooks = Hooks()
        result = jobs_with_a_kill(urls, procs, names, hooks)
        print(f"  {JOBS} jobs, {result['victim']} (ran {result['victim_jobs']}, {result['victim_unfinished']} "
              f"unfinished) SIGKILLed halfway: {result['finished']} succeeded (goal {JOBS}), "
              f"{result['failed']} failed; all ended {result['seconds_after_kill']:.1f} s after the kill "
              f"(lease {LEASE:g} s)")
        print(f"  webhooks: {result['webhooks']} delivered (goal exactly {JOBS}), {result['twice']} twice, "
              f"{result['missing']} missing")


if __name__ == "__main__":
    main()
