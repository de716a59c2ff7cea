"""`app.py` keeps the API on one CPU by default (`cpu_pin`, linkpix/cpus.py): every thread of the process,
those started before the pin too, since affinity is per thread on Linux. `bench/hit_path.py` shows why."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(len(CPUS) < 2, reason="pinning needs a machine with two CPUs or more")]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_py(project: Path, comfyui: str, **env_settings: str) -> Iterator[tuple[subprocess.Popen, str]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKPIX_")}
    env.update(env_settings, LINKPIX_COMFYUI_URL=comfyui, LINKPIX_WORKFLOW_PATH="demo.json")
    proc = subprocess.Popen([sys.executable, "app.py", "--config", str(project / "config.json"), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _link(proc: subprocess.Popen, url: str) -> requests.Response:
    for _ in range(300):  # at most about 30 s of start-up
        try:
            return requests.get(url + "/prompt/a%20pinned%20fox", timeout=30)
        except requests.ConnectionError:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
    raise AssertionError("app.py never answered")


def _cpus_of_threads(pid: int) -> set[frozenset[int]]:
    return {frozenset(os.sched_getaffinity(int(task))) for task in os.listdir(f"/proc/{pid}/task")}


def test_by_default_every_thread_of_the_api_runs_on_one_allowed_cpu(project, simulator):
    with app_py(project, simulator.url) as (proc, url):
        answer = _link(proc, url)
        assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/png"
        masks = _cpus_of_threads(proc.pid)
        assert len(masks) == 1, f"threads on different CPU sets: {masks}"
        (mask,) = masks
        assert len(mask) == 1 and mask <= set(CPUS)


def test_cpu_pin_off_leaves_the_threads_free_and_a_number_picks_the_cpu(project, simulator):
    with app_py(project, simulator.url, LINKPIX_CPU_PIN="off") as (proc, url):
        assert _link(proc, url).status_code == 200
        assert _cpus_of_threads(proc.pid) == {frozenset(CPUS)}
    with app_py(project, simulator.url, LINKPIX_CPU_PIN=str(CPUS[-1])) as (proc, url):
        assert _link(proc, url).status_code == 200
        assert _cpus_of_threads(proc.pid) == {frozenset({CPUS[-1]})}


def test_a_cpu_the_process_may_not_use_is_refused_at_start_with_the_allowed_ones(project, simulator):
    with app_py(project, simulator.url, LINKPIX_CPU_PIN=str(max(CPUS) + 1)) as (proc, _url):
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in err
    assert f"'cpu_pin' is {max(CPUS) + 1}" in err and f"CPUs {CPUS}" in err


def test_full_resolution_work_runs_on_every_cpu_and_its_thread_goes_back_after():
    """What imaging/budget.py holds (decodes, LUTs, blends: C without the GIL) may use every CPU beside the
    pinned request threads; the thread is pinned again when the work is done."""
    from linkpix.cpus import STARTED_ON
    from linkpix.imaging.budget import MemoryBudget

    seen: dict[str, set[int]] = {}

    def request_thread() -> None:
        os.sched_setaffinity(0, {CPUS[0]})  # as pin_process leaves every thread of the API
        with MemoryBudget(1 << 30).hold(1 << 20, "a test edit"):
            seen["during"] = os.sched_getaffinity(0)
        seen["after"] = os.sched_getaffinity(0)

    import threading

    worker = threading.Thread(target=request_thread)
    worker.start()
    worker.join(timeout=10)
    assert seen == {"during": set(STARTED_ON), "after": {CPUS[0]}}


def test_a_pin_the_system_refuses_leaves_the_api_running_unpinned(caplog):
    """A sandbox or container may refuse sched_setaffinity; the API then runs on every CPU rather than not at
    all (here the refusal is a CPU the kernel has not: EINVAL, before anything was pinned)."""
    from linkpix.cpus import pin_process

    before = os.sched_getaffinity(0)
    with caplog.at_level("WARNING", logger="linkpix.cpus"):
        assert pin_process(4095) is False
    assert os.sched_getaffinity(0) == before
    assert "could not pin the API to CPU 4095" in caplog.text and "runs on every CPU" in caplog.text
