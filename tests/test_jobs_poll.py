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
        job_id = server.submit(prompt="a heron", seed=5, steps=60)  # 3.6 s of sampling
        wait_until(lambda: (server.job(job_id)["progress"] or {}).get("step"), 20, "sampling to start")
        asked = slow_sim.stats.requests.get("GET /queue", 0)
        polls = []
        for _ in range(5):  # each held up to 0.5 s (jobs/holds.py): over 2 s, more than the 1 s a /queue
            polls.append(server.job(job_id))  # listing is reused (comfy/queuepeek.py)
            time.sleep(0.05)
        assert [p["queue_position"] for p in polls if p["status"] == "running"] == [0] * 5
        assert slow_sim.stats.requests.get("GET /queue", 0) == asked  # ten polls, not one /queue request
        assert server.wait_for(job_id)["status"] == "succeeded"
    finally:
        server.close()


@pytest.mark.slow
def test_a_poll_of_a_running_job_is_held_until_its_end_and_few_are_held_at_once(project, slow_sim):
    """jobs/holds.py: a poll of a job ComfyUI runs is answered at the job's end or after POLL_HOLD, so a
    client polling every 20 ms asks about twice a second and hears of the end at once; a user's polls
    beyond the per-user places (threads // 24 = 2) are answered at once."""
    server = JobsServer(project, slow_sim.url)
    try:
        job_id = server.submit(prompt="a held heron", seed=6, steps=40)  # 2.4 s of sampling
        wait_until(lambda: server.job(job_id)["status"] == "running", 20, "the job to run")
        started, polls, answer = time.monotonic(), 0, server.job(job_id)
        while answer["status"] == "running":
            polls += 1
            time.sleep(0.02)
            answer = server.job(job_id)
        heard = time.time()
        assert answer["status"] == "succeeded"
        assert polls <= (time.monotonic() - started) / 0.4 + 2, polls  # unheld: ~100 polls in those 2 s
        assert heard - answer["finished"] < 0.25  # the held poll was answered at the end, not a hold later

        other = server.submit(prompt="a held egret", seed=7, steps=40)
        wait_until(lambda: server.job(other)["status"] == "running", 20, "the second job to run")
        took: list[float] = []

        def poll() -> None:
            t0 = time.monotonic()
            server.job(other)
            took.append(time.monotonic() - t0)

        threads = [threading.Thread(target=poll) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        took.sort()
        assert took[0] < 0.25 and took[2] > 0.4, took  # two held, the third answered at once
    finally:
        server.close()


def test_a_job_that_starts_at_once_is_answered_once_comfyui_has_its_prompt(jobs, simulator):
    """Nothing else runs: the submitter steps aside until ComfyUI queued the prompt (the job's thread does not
    wait behind the answer for the API's one CPU). Behind a running job it answers at once, as before."""
    simulator.faults.validate_delay = 0.02  # ComfyUI takes 20 ms to queue a prompt
    simulator.faults.step_delay = 0.2
    first = jobs.submit(prompt="a fox", seed=1, steps=4)
    assert simulator.stats.prompts_received == 1  # answered after ComfyUI had it, not 20 ms before
    second = jobs.submit(prompt="a cat", seed=2, steps=4)
    assert simulator.stats.prompts_received == 1  # the first runs: the second's answer did not wait
    assert jobs.wait_for(first)["status"] == jobs.wait_for(second)["status"] == "succeeded"
    assert simulator.stats.prompts_received == 2
