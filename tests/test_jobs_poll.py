"""What a poll of GET /jobs/<id> costs and when it answers (issue 24: a job costs no more than a link).

While ComfyUI says it executes a job's prompt, the job's queue position is 0 without a /queue request to
that busy ComfyUI; once ComfyUI reported the job's last prompt over, a poll waits the few milliseconds
until the job is stored as ended instead of answering `running` (jobs/progress.py).
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from jobs_support import JobsServer, wait_until

from linkpix.comfy import Event
from linkpix.jobs.events import JobEvents
from linkpix.jobs.progress import Progress
from linkpix.jobs.store import QUEUED, Job, JobStore


def stored_job(store: JobStore, count: int) -> Job:
    job = Job(id=uuid.uuid4().hex, user="default", state=QUEUED, created=time.time(), image_count=count,
              spec=[{}] * count)
    store.insert(job)
    return job


@pytest.fixture
def progress(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    try:
        yield Progress(store, JobEvents(store), threading.Lock(), lambda: False, lambda job: job.public()), store
    finally:
        store.close()


def test_a_poll_after_comfyui_reported_the_last_prompt_over_waits_for_the_end(progress):
    progress, store = progress
    job = stored_job(store, 1)
    progress.start_image(job.id, 0, 1)
    on_event = progress.listener(job.id, 0)
    assert progress.wait_end(job.id, 0.5) is False  # running in ComfyUI: a poll answers at once
    on_event(Event("execution_success", "p1", {"prompt_id": "p1"}))
    threading.Timer(0.15, progress.ended, [job.id]).start()
    started = time.monotonic()
    assert progress.wait_end(job.id, 5) is True  # held until the job was stored as ended
    assert 0.1 <= time.monotonic() - started < 2
    assert progress.wait_end(job.id, 0.5) is False  # ended: nothing to wait for any more


def test_the_first_of_two_images_ending_holds_no_poll_and_a_stuck_end_holds_it_only_briefly(progress):
    progress, store = progress
    job = stored_job(store, 2)
    progress.start_image(job.id, 0, 2)
    progress.listener(job.id, 0)(Event("executing", "p1", {"node": None, "prompt_id": "p1"}))
    started = time.monotonic()
    assert progress.wait_end(job.id, 1.0) is False and time.monotonic() - started < 0.5
    progress.start_image(job.id, 1, 2)
    progress.listener(job.id, 1)(Event("execution_error", "p2", {"prompt_id": "p2"}))
    started = time.monotonic()
    assert progress.wait_end(job.id, 0.2) is False  # the end did not come: the poll answers after the bound
    assert 0.15 <= time.monotonic() - started < 1.5
    progress.forget(job.id)  # the run is over however it ended: nobody waits any more
    assert progress.wait_end(job.id, 1.0) is False


@pytest.mark.slow
def test_a_running_job_is_at_queue_position_0_without_asking_comfyui(project, slow_sim):
    server = JobsServer(project, slow_sim.url)
    try:
        job_id = server.submit(prompt="a heron", seed=5, steps=40)  # 2.4 s of sampling
        wait_until(lambda: (server.job(job_id)["progress"] or {}).get("step"), 20, "sampling to start")
        asked = slow_sim.stats.requests.get("GET /queue", 0)
        polls = []
        for _ in range(10):  # over 1.5 s: more than the 1 s a /queue listing is reused (comfy/queuepeek.py)
            polls.append(server.job(job_id))
            time.sleep(0.15)
        assert [p["queue_position"] for p in polls if p["status"] == "running"] == [0] * 10
        assert slow_sim.stats.requests.get("GET /queue", 0) == asked  # ten polls, not one /queue request
        assert server.wait_for(job_id)["status"] == "succeeded"
    finally:
        server.close()
