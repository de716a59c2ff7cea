"""The API in front of a frozen ComfyUI (the simulator's freeze(), like `kill -STOP`): 503 within 2 s for new
work, /health and job acceptance within 2 s, a link's 504 within its timeout + 2 s naming the prompt, and
0 prompts left in ComfyUI after the thaw - for links, jobs and cancels alike."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from jobs_support import JobsServer, wait_until
from pool_support import prompts_in

from linkpix.simulator import SimulatorServer

# Slow (docs/testing.md): a frozen ComfyUI: each test waits out timeouts and probes.
pytestmark = pytest.mark.slow


@pytest.fixture
def frozen_api(project, simulator: SimulatorServer) -> Iterator[JobsServer]:
    server = JobsServer(project, simulator.url, timeout=4)
    try:
        yield server
    finally:
        simulator.thaw()
        server.close()


def timed(call, *args, **kwargs):
    started = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - started


def test_new_work_health_and_job_acceptance_never_wait(frozen_api, simulator):
    assert frozen_api.get("/prompt/warm?width=64&height=64").status_code == 200
    simulator.freeze()
    r, seconds = timed(frozen_api.get, "/prompt/first%20after?width=64&height=64")
    assert r.status_code == 503 and seconds < 2.0, (r.status_code, seconds)
    r, seconds = timed(frozen_api.get, "/prompt/second%20after?width=64&height=64")
    assert r.status_code == 503 and seconds < 0.5 and "not answering" in r.json()["message"]
    r, seconds = timed(frozen_api.get, "/health")
    assert r.status_code == 503 and seconds < 2.0
    assert r.json()["backends"][0]["state"] == "frozen"
    r, seconds = timed(frozen_api.get, "/ready")
    assert r.status_code == 503 and seconds < 2.0
    r, seconds = timed(frozen_api.post, "/generate", json={"prompt": "accepted anyway", "width": 64, "height": 64})
    assert r.status_code == 202 and seconds < 2.0
    job_id = r.json()["job_id"]
    r, seconds = timed(frozen_api.get, f"/jobs/{job_id}")
    assert r.status_code == 200 and seconds < 2.0
    assert frozen_api.get("/prompt/warm?width=64&height=64").headers["X-LinkPix-Cache"] == "hit"
    simulator.thaw()
    wait_until(lambda: frozen_api.get("/health").status_code == 200, 5, "ComfyUI to answer again")
    wait_until(lambda: not prompts_in(simulator), 10, "nothing left in ComfyUI after the thaw")


def test_a_run_frozen_midway_answers_504_within_its_timeout_and_leaves_nothing(frozen_api, simulator):
    simulator.faults.hang = True  # the sampler waits (for an interrupt), so the run is under way when it freezes
    with ThreadPoolExecutor(2) as workers:
        link = workers.submit(timed, frozen_api.get, "/prompt/stuck?width=64&height=64")
        wait_until(lambda: prompts_in(simulator), 10, "the run to start")
        job_id = frozen_api.submit(prompt="stuck job")
        wait_until(lambda: len(prompts_in(simulator)) == 2, 10, "the job's prompt to be queued")
        simulator.freeze()
        r, seconds = link.result(timeout=20)
    assert r.status_code == 504, r.text
    assert seconds < 4 + 2, seconds
    body = r.json()
    prompt_id = body["details"]["prompt_id"]
    assert prompt_id in body["message"] and "removes it as soon as ComfyUI answers again" in body["message"]
    assert "within 4 s" in body["message"]  # the link's timeout, not what was left of it when it froze
    r, seconds = timed(frozen_api.delete, f"/jobs/{job_id}")
    assert seconds < 2.0
    if r.status_code == 409:  # its own 4 s ran out first (the link's 504 may come 1.5 s after its own 4 s)
        job = frozen_api.get(f"/jobs/{job_id}").json()
        assert job["status"] == "failed" and job["error"]["error"] == "timeout", job
    else:
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    simulator.thaw()
    wait_until(lambda: not prompts_in(simulator), 10, "0 prompts left after the thaw")
    assert frozen_api.services.pool.stops.count() == 0 or wait_until(
        lambda: frozen_api.services.pool.stops.count() == 0, 10, "the stop list to drain")


def test_a_job_reattached_after_a_restart_reports_its_progress(project, simulator):
    simulator.faults.step_delay = 0.15
    first = JobsServer(project, simulator.url)
    try:
        job_id = first.submit(prompt="counted steps", steps=30)
        wait_until(lambda: first.job(job_id)["status"] == "running", 10, "the job to run")
    finally:
        first.close()
    second = JobsServer(project, simulator.url)
    try:
        progress = wait_until(lambda: (second.job(job_id).get("progress") or {}).get("total"), 10,
                              "the re-attached job's progress")
        assert progress == 30
        assert second.wait_for(job_id)["status"] == "succeeded"
        assert simulator.prompts_received == 1
    finally:
        second.close()
