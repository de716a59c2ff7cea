"""A frozen ComfyUI (`kill -STOP`) in front of LinkPix as users run it: how long new work, /health, job
acceptance, a cancel and a link already running take to answer, and what is left in ComfyUI after
`kill -CONT`. Each figure is printed beside the promise it is measured against (issue 13).

    python3 bench/frozen.py                                    # a simulator in a child process
    python3 bench/frozen.py --comfyui http://127.0.0.1:8190 --pid 1234   # a real ComfyUI you started

The ComfyUI process is frozen and thawed with signals, so it must be one you may stop for a few seconds.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
from common import ROOT, free_port, linkpix_api, make_project, wait_up

TIMEOUT = 6.0  # the links' `timeout` setting, in seconds (--timeout)


@contextmanager
def simulator_process() -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "linkpix.simulator", "--port", str(port), "--step-delay", "0.1"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_up(url + "/prompt")
        yield url, proc.pid
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(10)


def timed(call: Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def comfy_prompts(comfyui: str) -> list[str]:
    body = requests.get(comfyui + "/queue", timeout=10).json()
    return [item[1] for item in body["queue_running"] + body["queue_pending"]]


def until(probe: Callable[[], Any], timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if probe():
            return time.monotonic() - started
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def run(comfyui: str, pid: int, timeout: float = TIMEOUT) -> None:
    project = make_project(timeout=timeout, workflow_path="sd15.json")
    with linkpix_api(project, comfyui) as api:
        model = requests.get(api + "/api/models", timeout=30).json()["checkpoints"][0]
        query = f"width=64&height=64&model={model}"
        for attempt in range(3):  # a real ComfyUI's first run loads the model, and may take longer than `timeout`
            r = requests.get(f"{api}/prompt/warm%20up%20{attempt}?{query}&steps=3", timeout=120)
            if r.status_code == 200:
                break
        assert r.status_code == 200, r.text
        long_link: dict[str, Any] = {}

        def follow() -> None:
            long_link["answer"] = timed(lambda: requests.get(
                f"{api}/prompt/long%20run?model={model}&width=256&height=256&steps=150", timeout=60))

        thread = threading.Thread(target=follow)
        thread.start()
        until(lambda: comfy_prompts(comfyui), 20, "the long run to start in ComfyUI")
        job = requests.post(api + "/generate", json={"prompt": "queued job", "width": 64, "height": 64,
                                                      "params": {"model": model, "steps": 150}}, timeout=10).json()
        until(lambda: len(comfy_prompts(comfyui)) == 2, 20, "the job's prompt to be queued in ComfyUI")
        left_behind = set(comfy_prompts(comfyui))

        os.kill(pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            first, first_s = timed(lambda: requests.get(f"{api}/prompt/new%20one?{query}&steps=3", timeout=60))
            second, second_s = timed(lambda: requests.get(f"{api}/prompt/new%20two?{query}&steps=3", timeout=60))
            health, health_s = timed(lambda: requests.get(api + "/health", timeout=60))
            ready, ready_s = timed(lambda: requests.get(api + "/ready", timeout=60))
            accepted, accepted_s = timed(lambda: requests.post(
                api + "/generate", json={"prompt": "accepted while frozen", "width": 64, "height": 64,
                                         "params": {"model": model, "steps": 3}}, timeout=60))
            cancel, cancel_s = timed(lambda: requests.delete(f"{api}/jobs/{job['job_id']}", timeout=60))
            thread.join(60)
            link, link_s = long_link["answer"]
            time.sleep(max(0.0, 3.0 - (time.monotonic() - frozen_at)))
        finally:
            os.kill(pid, signal.SIGCONT)
        late_job = accepted.json().get("job_id")
        done_s = until(lambda: requests.get(f"{api}/jobs/{late_job}", timeout=10).json()["status"] in
                       ("succeeded", "failed"), 60, "the job accepted during the freeze to finish")
        late = requests.get(f"{api}/jobs/{late_job}", timeout=10).json()
        empty_s = until(lambda: not comfy_prompts(comfyui), 60, "ComfyUI's queue to empty")
        drained_s = until(lambda: all(b["stops_pending"] == 0 for b in requests.get(api + "/health", timeout=10)
                                      .json()["backends"]), 60, "the stop list to drain")
        history = requests.get(comfyui + "/history", timeout=10).json()
        outcomes = {p: (history.get(p, {}).get("status") or {}).get("status_str", "never ran") for p in left_behind}

    print(f"ComfyUI at {comfyui} (pid {pid}) frozen with SIGSTOP; LinkPix timeout {timeout:g} s")
    print(f"  new link, first after the freeze: {first.status_code} in {first_s:.2f} s (promise: 503 < 2 s)")
    print(f"  new link, next:                   {second.status_code} in {second_s:.3f} s")
    print(f"  /health:                          {health.status_code} in {health_s:.3f} s (promise < 2 s)")
    print(f"  /ready:                           {ready.status_code} in {ready_s:.3f} s")
    print(f"  POST /generate:                   {accepted.status_code} in {accepted_s:.3f} s (promise < 2 s)")
    print(f"  DELETE /jobs/<id> (queued one):   {cancel.status_code} in {cancel_s:.3f} s")
    print(f"  link already running:             {link.status_code} after {link_s:.2f} s "
          f"(promise: 504 < timeout + 2 = {timeout + 2:g} s): {link.json().get('message', '')[:160]}")
    print("After SIGCONT:")
    print(f"  job accepted during the freeze:   {late['status']} {done_s:.2f} s after the thaw")
    print(f"  ComfyUI's queue empty:            {done_s + empty_s:.2f} s after the thaw; stop list drained "
          f"{drained_s:.2f} s later")
    print(f"  prompts left running or queued:   {len(comfy_prompts(comfyui))} (goal 0); the frozen run and the "
          f"cancelled job ended as: {sorted(outcomes.values())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", help="URL of a ComfyUI you started (default: a simulator child process)")
    parser.add_argument("--pid", type=int, help="its process id (frozen with SIGSTOP, thawed with SIGCONT)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="LinkPix's timeout setting (seconds)")
    args = parser.parse_args()
    if args.comfyui and args.pid:
        run(args.comfyui.rstrip("/"), args.pid, args.timeout)
    else:
        with simulator_process() as (url, pid):
            run(url, pid, args.timeout)


if __name__ == "__main__":
    main()
