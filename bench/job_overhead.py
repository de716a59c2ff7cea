"""A job costs no more than a link: POST /generate, poll /jobs/{id} every 20 ms, fetch the image - against a
minimal direct websocket client on the same ComfyUI (submit, wait for `executing null`, /history, /view).

Goal (issue 24): the job's median end-to-end time at most 25 ms above the direct client's. Each round runs
both (which goes first alternates), each with its own prompt and seed, so both see the same ComfyUI in the
same state and neither reuses the other's text encoding.

    python3 bench/job_overhead.py                      # the simulator (demo workflow, no step delay)
    python3 bench/job_overhead.py --comfyui http://127.0.0.1:8188 \\
        --workflow tests/comfyui_captures/workflow_txt2img_tiny_sd15_api.json   # a real ComfyUI
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from common import ROOT, linkpix_api, make_project, median, percentile, simulator
from miss_overhead import direct_run

from linkpix.config import load_config
from linkpix.pipeline.request import parse_json
from linkpix.pipeline.resolver import Resolver
from linkpix.storage.jsonstore import JsonStore

POLL = 0.02


def job_run(api: str, session: requests.Session, body: dict) -> float:
    """What a job client does: submit, poll every 20 ms until it succeeded, fetch the image."""
    started = time.perf_counter()
    resp = session.post(api + "/generate", json=body, timeout=60)
    resp.raise_for_status()
    job_id = resp.json()["job_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = session.get(f"{api}/jobs/{job_id}", timeout=60).json()
        if job["status"] == "succeeded":
            session.get(api + job["images"][0]["url"], timeout=60).raise_for_status()
            return (time.perf_counter() - started) * 1000
        if job["status"] in ("failed", "cancelled"):
            raise SystemExit(f"job {job_id} {job['status']}: {job.get('error')}")
        time.sleep(POLL)
    raise SystemExit(f"job {job_id} did not finish in 120 s")


SIMULATED: list = []  # the simulator of this run, if any (its request counts)


def in_comfyui(comfy: str, base: int) -> dict[int, float]:
    """Each round's time inside ComfyUI by its own stamps (execution_start to execution_success), by the
    prompt's seed, for the direct client's and the job's prompts: tells LinkPix's overhead apart from a run
    that took longer (a CPU ComfyUI shared with other work varies by far more than the overhead)."""
    out: dict[int, float] = {}
    history = requests.get(comfy + "/history", params={"max_items": 500}, timeout=30).json()
    for entry in history.values():
        text = json.dumps(entry.get("prompt", [None, None, {}])[2])
        seeds = {n.get("inputs", {}).get("seed") for n in entry["prompt"][2].values() if isinstance(n, dict)}
        if not any(isinstance(x, int) and base < x <= base + 10000 for x in seeds):
            continue
        stamps = {m[0]: m[1].get("timestamp") for m in entry.get("status", {}).get("messages", [])}
        if "execution_success" not in stamps:
            continue
        seed = next(x for x in seeds if isinstance(x, int) and base < x <= base + 10000)
        if "direct round" in text or "job round" in text:
            out[seed] = stamps["execution_success"] - stamps["execution_start"]
    return out


@contextlib.contextmanager
def comfyui(url: str | None, run_delay: float) -> Iterator[str]:
    if url:
        yield url.rstrip("/")
        return
    with simulator(step_delay=0.0) as sim:
        sim.faults.run_delay = run_delay
        SIMULATED.append(sim)
        yield sim.url


def comfy_requests() -> int:
    """Requests the simulator answered so far (0 for a real ComfyUI: not known)."""
    return sum(SIMULATED[0].stats.requests.values()) if SIMULATED else 0


def main() -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", help="a running ComfyUI's URL (default: a simulator started here)")
    parser.add_argument("--workflow", type=Path, help="an API-format graph to run (default: demo.json)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--size", type=int, default=64, help="width and height")
    parser.add_argument("--run-delay", type=float, default=0.0,
                        help="the simulator's seconds per run (0.4: about the real tiny SD1.5 run on CPU)")
    args = parser.parse_args()
    settings: dict = {"workflow_path": "demo.json"}
    project = make_project(**settings)
    if args.workflow is not None:
        shutil.copy(ROOT / args.workflow if not args.workflow.is_absolute() else args.workflow,
                    project / "workflows" / "bench.json")
        config = json.loads((project / "config.json").read_text())
        config["workflow_path"] = "bench.json"
        (project / "config.json").write_text(json.dumps(config))
    config = load_config(project / "config.json", use_env=False)
    resolver = Resolver(lambda: config, JsonStore(), lambda: None)
    size = {"width": args.size, "height": args.size}

    def graph(prompt: str, seed: int) -> dict:
        return resolver.resolve(parse_json({"prompt": prompt, "seed": seed, **size}, "default")).graph

    load_before = os.getloadavg()
    with comfyui(args.comfyui, args.run_delay) as comfy, linkpix_api(project, comfy) as api, \
            requests.Session() as session:
        base = int(time.time()) % 100000 * 100
        direct_run(comfy, graph("warm up direct", base))
        job_run(api, session, {"prompt": "warm up job", "seed": base, **size})
        ours, theirs = [], []
        before = comfy_requests()
        for i in range(args.rounds):  # distinct prompts too: ComfyUI reuses a text encoding it just made
            direct = lambda: theirs.append(direct_run(comfy, graph(f"direct round {i}", base + 2 * i + 1)))  # noqa: E731, B023
            job = lambda: ours.append(job_run(api, session, {"prompt": f"job round {i}", "seed": base + 2 * i + 2,  # noqa: E731, B023
                                                            **size}))
            for run in (direct, job) if i % 2 == 0 else (job, direct):  # who goes first alternates
                run()
        per_round = (comfy_requests() - before) / args.rounds
        inside = in_comfyui(comfy, base)
    added = median(ours) - median(theirs)
    paired = median([o - t for o, t in zip(ours, theirs, strict=True)])  # robust to a ComfyUI others also use
    where = args.comfyui or f"the simulator, run_delay {args.run_delay:g} s"
    print(f"job overhead ({args.rounds} rounds, {args.size}x{args.size}, {where}):")
    print(f"  direct websocket client: median {median(theirs):.1f} ms  p90 {percentile(theirs, 90):.1f} ms")
    print(f"  LinkPix job (poll 20 ms): median {median(ours):.1f} ms  p90 {percentile(ours, 90):.1f} ms")
    print(f"  added: {added:+.1f} ms median (goal <= 25 ms); median of each round's difference {paired:+.1f} ms")
    seeds = [(base + 2 * i + 1, base + 2 * i + 2) for i in range(args.rounds)]
    if all(d in inside and j in inside for d, j in seeds):
        print(f"  time in ComfyUI (execution_start to execution_success), median: direct "
              f"{median([inside[d] for d, _ in seeds]):.1f} ms, job {median([inside[j] for _, j in seeds]):.1f} ms")
        out_direct = [t - inside[d] for t, (d, _) in zip(theirs, seeds, strict=True)]
        out_job = [o - inside[j] for o, (_, j) in zip(ours, seeds, strict=True)]
        outside = median(out_job) - median(out_direct)
        print(f"  outside ComfyUI's run (end to end minus the run), median: direct {median(out_direct):.1f} ms, "
              f"job {median(out_job):.1f} ms: added {outside:+.1f} ms (the runs' own differences left out)")
    print(f"  load average (1 min) before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}")
    if SIMULATED:  # the direct client makes 3 (POST /prompt, /history, /view) and opens a websocket
        print(f"  HTTP requests ComfyUI answered per round (direct + job): {per_round:.1f}")
    return {"job_added_ms": added, "job_added_paired_ms": paired}


if __name__ == "__main__":
    main()
