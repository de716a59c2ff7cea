"""A fair share of one GPU: user A queues 24 jobs, then user B sends 2 jobs and 1 link.

Goals (issue 24): B's requests finish within 3 run-times of being sent (FIFO: after all of A's, ~24);
all 26 done within 1.2 x 26 run-times + 2 s (the GPU kept busy); B's GET /api/usage within 10 % of the
time B's runs took in ComfyUI (read from the simulator's own history, not from LinkPix).

The same scenario runs three times in one go: with the default settings (fair_depth 2: LinkPix keeps
the queue); across two replicas sharing a redis-server (user A on one, user B on the other); and, as the
baseline, with fair_depth 32 (every job handed to ComfyUI at once: its FIFO order). Run time: one
simulator with `run_delay` 0.6 s (the simulator's --run-delay); the run-time unit below is the median of
the scenario's own runs as ComfyUI timed them.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import requests
from common import linkpix_api, make_project, median, simulator
from replicas import redis_server, replica

RUN_DELAY = 0.6
A_JOBS, B_JOBS = 24, 2
POLL = 0.05


def _job(api: str, user: str, prompt: str, seed: int) -> str:
    resp = requests.post(api + "/generate", json={"prompt": prompt, "seed": seed, "user": user,
                                                   "width": 256, "height": 256}, timeout=30)
    resp.raise_for_status()
    return resp.json()["job_id"]


def _comfy_seconds(sim_url: str, marker: str) -> tuple[float, list[float]]:
    """Seconds in ComfyUI of the prompts whose graph contains `marker`, by the simulator's history."""
    history = requests.get(sim_url + "/history", timeout=30).json()
    total, each = 0.0, []
    for entry in history.values():
        if marker not in json.dumps(entry.get("prompt")):
            continue
        stamps = {m[0]: m[1]["timestamp"] for m in entry["status"]["messages"]}
        seconds = (stamps["execution_success"] - stamps["execution_start"]) / 1000
        total += seconds
        each.append(seconds)
    return total, each


@contextmanager
def apis(sim_url: str, depth: int | None, replicas: bool) -> Iterator[tuple[str, str]]:
    """The API for user A and the one for user B: one process, or two replicas sharing a redis-server."""
    settings: dict[str, Any] = {"workflow_path": "demo.json", "jobs_max_queued_per_user": 40,
                                "comfyui_url": sim_url}
    if depth is not None:
        settings["fair_depth"] = depth
    project = make_project(**settings)
    if not replicas:
        with linkpix_api(project, sim_url) as api:
            yield api, api
        return
    with redis_server() as redis_url, ExitStack() as stack:
        first, _ = replica(stack, project, "replica-a", redis_url)
        second, _ = replica(stack, project, "replica-b", redis_url)
        yield first, second


def scenario(depth: int | None, replicas: bool = False) -> dict[str, Any]:
    with simulator() as sim, apis(sim.url, depth, replicas) as (api, api_b):
        sim.faults.run_delay = RUN_DELAY
        requests.get(api + "/prompt/warm%20up?width=256&height=256&user=warm", timeout=60).raise_for_status()
        t0 = time.monotonic()
        a_ids = [_job(api, "alice", f"fairbench-A picture {i}", 1000 + i) for i in range(A_JOBS)]
        time.sleep(1.0)
        sent_b = time.monotonic()
        finished: dict[str, float] = {}
        link_status: list[int] = []

        def _link() -> None:
            resp = requests.get(api_b + "/prompt/fairbench-B%20link?width=256&height=256&seed=7&user=bob",
                                timeout=300)
            finished["B-link"] = time.monotonic()
            link_status.append(resp.status_code)

        link = threading.Thread(target=_link)
        b_ids = [_job(api_b, "bob", f"fairbench-B picture {i}", 2000 + i) for i in range(B_JOBS)]
        link.start()
        pending = {**{i: f"A{n}" for n, i in enumerate(a_ids)}, **{i: f"B{n}" for n, i in enumerate(b_ids)}}
        deadline = time.monotonic() + 300
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                state = requests.get(f"{api}/jobs/{job_id}", timeout=30).json()["status"]
                if state in ("succeeded", "failed", "cancelled"):
                    finished[pending.pop(job_id)] = time.monotonic()
                    if state != "succeeded":
                        raise SystemExit(f"job {job_id} {state}")
            time.sleep(POLL)
        link.join(300)
        if pending or link_status != [200]:
            raise SystemExit(f"not everything finished: {sorted(pending.values())}, link {link_status}")
        usage = requests.get(api + "/api/usage?user=bob", timeout=30).json()["totals"].get("bob", 0.0)
        b_comfy, _ = _comfy_seconds(sim.url, "fairbench-B")
        _, every = _comfy_seconds(sim.url, "fairbench-")
        run_time = median(every)
    b_waits = {k: (v - sent_b) / run_time for k, v in finished.items() if k.startswith("B")}
    all_done = max(finished.values()) - t0
    return {"run_time": run_time, "b_waits": b_waits, "all_done": all_done,
            "all_goal": 1.2 * (A_JOBS + B_JOBS + 1) * run_time + 2, "usage_b": usage, "comfy_b": b_comfy}


def report(name: str, r: dict[str, Any]) -> None:
    waits = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["b_waits"].items()))
    print(f"{name}: run time {r['run_time']:.3f} s; user B's requests done after (run-times from being sent): "
          f"{waits}; all {A_JOBS + B_JOBS + 1} done in {r['all_done']:.1f} s (goal <= {r['all_goal']:.1f} s); "
          f"B's /api/usage {r['usage_b']:.3f} s vs {r['comfy_b']:.3f} s in ComfyUI "
          f"({100 * (r['usage_b'] - r['comfy_b']) / max(r['comfy_b'], 1e-9):+.1f} %)")


def main() -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-baseline", action="store_true", help="skip the FIFO comparison (fair_depth 32)")
    parser.add_argument("--no-replicas", action="store_true", help="skip the two replicas on Redis")
    args = parser.parse_args()
    fair = scenario(None)
    report("fair queue (defaults)", fair)
    if not args.no_replicas:
        report("two replicas on Redis (A on one, B on the other)", scenario(None, replicas=True))
    if not args.no_baseline:
        report("baseline: fair_depth 32 (ComfyUI's FIFO)", scenario(32))
    return {"fair_b_worst_runtimes": max(fair["b_waits"].values()), "fair_all_done_s": fair["all_done"]}


if __name__ == "__main__":
    main()
