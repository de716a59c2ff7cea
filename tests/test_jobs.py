"""The async jobs API over real sockets: LinkPix under waitress driving the ComfyUI simulator.

Covers: a 3-image job, a runtime failure, cancelling a job waiting in ComfyUI's queue and a running one,
cancelling one of two jobs that share a run, the event stream's order, a LinkPix restart while a job
runs (re-attached by prompt id) and while one waits, 429 when the queue is full, API keys, and that
bad requests are refused before anything is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import pytest
import requests
from jobs_support import JobsServer, read_events, wait_until
from PIL import Image

from linkpix.simulator import SimulatorServer

# Slow (docs/testing.md): jobs through a running API, restarts and event streams: seconds each.
pytestmark = pytest.mark.slow


def history(simulator: SimulatorServer, prompt_id: str) -> dict:
    return requests.get(f"{simulator.url}/history/{prompt_id}", timeout=5).json().get(prompt_id) or {}


def comfy_queue(simulator: SimulatorServer) -> tuple[list[str], list[str]]:
    q = requests.get(simulator.url + "/queue", timeout=5).json()
    return [i[1] for i in q["queue_running"]], [i[1] for i in q["queue_pending"]]


def running_with_prompt(server: JobsServer, job_id: str) -> dict:
    return wait_until(lambda: (lambda j: j if j["status"] == "running" and j["prompt_id"] else None)(
        server.job(job_id)), 20, "the job to run in ComfyUI")


def test_three_images_each_with_its_own_seed(jobs, simulator):
    r = jobs.post("/generate", json={"prompt": "three foxes", "width": 96, "height": 64, "seed": 100,
                                     "image_count": 3})
    assert r.status_code == 202
    body = r.json()
    assert body["status_url"] == f"/jobs/{body['job_id']}" and body["events_url"].endswith("/events")
    job = jobs.wait_for(body["job_id"])
    assert job["status"] == "succeeded", job
    assert [i["seed"] for i in job["images"]] == [100, 101, 102]
    assert len({i["url"] for i in job["images"]}) == 3 and len(job["prompt_ids"]) == 3
    assert job["created"] <= job["started"] <= job["finished"] and job["backend"] == simulator.url.split("//")[1]
    for image in job["images"]:
        assert image["url"].startswith("/images/default/")
        fetched = jobs.get(image["url"])
        with Image.open(io.BytesIO(fetched.content)) as img:
            assert img.size == (96, 64) == (image["width"], image["height"])
    assert simulator.prompts_received == 3
    # The same request again shares the cache with /prompt: no new ComfyUI run.
    again = jobs.wait_for(jobs.submit(prompt="three foxes", width=96, height=64, seed=100, image_count=3))
    assert [i["cache"] for i in again["images"]] == ["hit"] * 3
    assert [i["url"] for i in again["images"]] == [i["url"] for i in job["images"]]
    link = jobs.get("/prompt/three%20foxes?width=96&height=64&seed=101")
    assert link.headers["X-LinkPix-Cache"] == "hit" and simulator.prompts_received == 3


def test_runtime_failure_is_recorded_on_the_job(jobs, simulator):
    simulator.faults.fail_class = "KSampler"
    job = jobs.wait_for(jobs.submit(prompt="doomed"))
    assert job["status"] == "failed" and job["images"] == []
    assert job["error"]["error"] == "execution_failed"
    assert job["error"]["details"]["node_type"] == "KSampler"
    assert job["prompt_id"] and job["finished"]
    listed = jobs.get("/jobs?state=failed").json()["jobs"]
    assert [j["job_id"] for j in listed] == [job["job_id"]]


def test_cancel_running_job_interrupts_its_prompt(jobs, simulator):
    simulator.faults.step_delay = 0.25
    job_id = jobs.submit(prompt="long run")
    prompt_id = running_with_prompt(jobs, job_id)["prompt_id"]
    r = jobs.delete(f"/jobs/{job_id}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    entry = wait_until(lambda: history(simulator, prompt_id), 10, "the interrupted prompt in history")
    messages = [m[0] for m in entry["status"]["messages"]]
    assert "execution_interrupted" in messages and entry["status"]["status_str"] == "error"
    assert comfy_queue(simulator) == ([], [])
    assert jobs.job(job_id)["status"] == "cancelled"
    assert jobs.delete(f"/jobs/{job_id}").status_code == 409  # it has already ended


def test_cancel_job_waiting_in_comfyui_queue_removes_it(jobs, simulator):
    simulator.faults.step_delay = 0.2
    first = jobs.submit(prompt="first in line")
    running_with_prompt(jobs, first)
    second = jobs.submit(prompt="second in line")
    waiting = wait_until(lambda: (lambda j: j if j["prompt_id"] else None)(jobs.job(second)), 10,
                         "the second job to reach ComfyUI's queue")
    assert waiting["status"] == "queued" and waiting["queue_position"] == 1
    assert waiting["prompt_id"] in comfy_queue(simulator)[1]
    assert jobs.delete(f"/jobs/{second}").json()["status"] == "cancelled"
    assert waiting["prompt_id"] not in comfy_queue(simulator)[1]
    assert jobs.wait_for(first)["status"] == "succeeded"
    assert history(simulator, waiting["prompt_id"]) == {}  # it never ran
    assert jobs.job(second)["status"] == "cancelled"


def test_cancelling_one_of_two_jobs_sharing_a_run_keeps_the_run(jobs, simulator):
    simulator.faults.step_delay = 0.15
    a = jobs.submit(prompt="shared", seed=7)
    b = jobs.submit(prompt="shared", seed=7)
    pid = running_with_prompt(jobs, a)["prompt_id"]
    wait_until(lambda: jobs.job(b)["prompt_id"] == pid, 10, "both jobs on one prompt")
    assert jobs.delete(f"/jobs/{a}").json()["status"] == "cancelled"
    done = jobs.wait_for(b)
    assert done["status"] == "succeeded" and done["images"][0]["seed"] == 7
    assert simulator.prompts_received == 1
    assert history(simulator, pid)["status"]["status_str"] == "success"


def test_event_stream_in_order_and_late_subscriber_gets_the_state(jobs, simulator):
    simulator.faults.step_delay = 0.03
    job_id = jobs.submit(prompt="watched", image_count=2)
    events = list(read_events(f"{jobs.url}/jobs/{job_id}/events"))
    kinds = [k for k, _ in events]
    assert kinds[0] in ("queued", "started") and kinds[-1] == "succeeded"
    assert "started" in kinds and kinds.count("image") == 2
    first_progress = kinds.index("progress")
    assert kinds.index("started") < first_progress < kinds.index("image")
    steps = [d for k, d in events if k == "progress" and d.get("total")]
    assert steps and steps[-1]["step"] == steps[-1]["total"] and steps[-1]["images"] == 2
    previews = [d for k, d in events if k == "preview"]
    assert previews and all(base64.b64decode(p["jpeg_base64"])[:3] == b"\xff\xd8\xff" for p in previews)
    images = [d for k, d in events if k == "image"]
    assert [i["index"] for i in images] == [0, 1]
    assert events[-1][1]["images"] == [{k: v for k, v in i.items() if k != "index"} for i in images]
    late = list(read_events(f"{jobs.url}/jobs/{job_id}/events"))
    assert [k for k, _ in late] == ["succeeded"]
    assert jobs.get("/jobs/" + "0" * 32 + "/events").status_code == 404


def test_event_stream_is_bounded(project, simulator):
    server = JobsServer(project, simulator.url, events_heartbeat=0.1, events_max_seconds=0.5,
                        events_max_streams=1)
    try:
        simulator.faults.hang = True
        job_id = server.submit(prompt="never ends")
        with requests.get(f"{server.url}/jobs/{job_id}/events", stream=True, timeout=10) as r:
            busy = server.get(f"/jobs/{job_id}/events")
            assert busy.status_code == 429 and int(busy.headers["Retry-After"]) > 0
            text = r.raw.read().decode()  # returns once the server ends the stream
        assert ": keep-alive" in text and "time limit" in text
        again = requests.get(f"{server.url}/jobs/{job_id}/events", stream=True, timeout=10)
        assert again.status_code == 200  # the slot was released
        again.close()
        assert server.delete(f"/jobs/{job_id}").json()["status"] == "cancelled"
    finally:
        simulator.faults.hang = False
        server.close()


def test_restart_reattaches_running_job_and_requeues_waiting_one(project, simulator):
    simulator.faults.step_delay = 0.2
    first = JobsServer(project, simulator.url, job_workers=1)
    try:
        running = first.submit(prompt="survives a restart", seed=5)
        waiting = first.submit(prompt="waits through a restart", seed=6)
        prompt_id = running_with_prompt(first, running)["prompt_id"]
        assert first.job(waiting)["prompt_id"] is None  # still in LinkPix's own queue
    finally:
        first.close()
    second = JobsServer(project, simulator.url)
    try:
        done = second.wait_for(running)
        assert done["status"] == "succeeded" and done["prompt_id"] == prompt_id
        assert second.get(done["images"][0]["url"]).status_code == 200
        later = second.wait_for(waiting)
        assert later["status"] == "succeeded" and later["images"][0]["seed"] == 6
        assert simulator.prompts_received == 2  # re-attached, not submitted again
    finally:
        second.close()


def test_restart_fails_a_job_that_comfyui_forgot(project, simulator):
    simulator.faults.step_delay = 0.2
    first = JobsServer(project, simulator.url)
    try:
        job_id = first.submit(prompt="lost in a double restart")
        running_with_prompt(first, job_id)
    finally:
        first.close()
    simulator.restart()
    second = JobsServer(project, simulator.url)
    try:
        job = second.wait_for(job_id, timeout=20)
        assert job["status"] == "failed"
        assert "restarted" in job["error"]["message"] and job["prompt_id"] in job["error"]["message"]
    finally:
        second.close()


def test_full_queue_answers_429(project, simulator):
    server = JobsServer(project, simulator.url, jobs_max_queued_per_user=1, jobs_max_queued=2)
    simulator.faults.hang = True
    try:
        server.submit(prompt="one", user="ann")
        r = server.post("/generate", json={"prompt": "two", "user": "ann"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
        assert "ann" in r.json()["message"]
        server.submit(prompt="three", user="ben")
        r = server.post("/generate", json={"prompt": "four", "user": "cy"})
        assert r.status_code == 429 and "2 jobs" in r.json()["message"]
        too_many = server.post("/generate", json={"prompt": "x", "user": "dee", "image_count": 9})
        assert too_many.status_code == 400 and "image_count" in too_many.json()["message"]
    finally:
        simulator.faults.hang = False
        server.close()


def test_api_keys_when_network_access_is_on(project, simulator):
    server = JobsServer(project, simulator.url, network_access=True, api_keys={"k-alice": "alice"})
    try:
        body = {"prompt": "keyed", "width": 64, "height": 64, "user": "mallory"}
        assert server.post("/generate", json=body).status_code == 401
        assert server.post("/generate", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
        r = server.post("/generate", json=body, headers={"Authorization": "Bearer k-alice"})
        assert r.status_code == 202
        job_id = r.json()["job_id"]
        server.http.headers["X-API-Key"] = "k-alice"  # reading a job needs its key on the network
        job = server.wait_for(job_id)
        del server.http.headers["X-API-Key"]
        assert job["user"] == "alice" and job["images"][0]["url"].startswith("/images/alice/")
        assert server.get(f"/jobs/{job_id}").status_code == 401
        assert server.delete(f"/jobs/{job_id}").status_code == 401
        assert server.delete(f"/jobs/{job_id}", headers={"X-API-Key": "k-alice"}).status_code == 409
        assert server.post("/uploads", data=b"x").status_code == 401
        assert server.get("/jobs").status_code == 401
        mine = server.get("/jobs?user=mallory", headers={"X-API-Key": "k-alice"}).json()["jobs"]
        assert [j["job_id"] for j in mine] == [job_id]
    finally:
        server.close()


def test_bad_requests_are_refused_at_once_with_the_prompt_messages(jobs, simulator):
    link = jobs.get("/prompt/cat?style=nope")
    r = jobs.post("/generate", json={"prompt": "cat", "style": "nope"})
    assert r.status_code == 400 and r.json()["message"] == link.json()["message"]
    cases = [({"width": 64}, "prompt"), ({"prompt": "cat", "seed": "banana"}, "seed"),
             ({"prompt": "cat", "image_count": 0}, "image_count"),
             ({"prompt": "cat", "images": ["not base64!"]}, "base64"),
             ({"prompt": "cat", "webhook_url": "http://169.254.169.254/latest"}, "metadata"),
             ({"prompt": "cat", "webhook_url": "ftp://example.com/x"}, "http"),
             ({"prompt": "cat", "webhook_secret": "s"}, "webhook_url")]
    for body, hint in cases:
        r = jobs.post("/generate", json=body)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert hint in r.json()["message"], (body, r.json()["message"])
    unknown = jobs.post("/generate", json={"prompt": "cat", "images": ["linkpix_0123456789abcdef.png"]})
    assert unknown.status_code == 404 and "upload" in unknown.json()["message"]  # as another user's id (issue 20)
    assert jobs.post("/generate", data="nope", headers={"Content-Type": "application/json"}).status_code == 400
    assert jobs.get("/jobs").json()["jobs"] == [] and simulator.prompts_received == 0
    assert jobs.get("/jobs/nope").status_code == 404
    assert jobs.get("/jobs?state=bogus").status_code == 400


def test_upload_then_use_it_by_id(jobs, simulator):
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buf, "PNG")
    r = jobs.post("/uploads", data=buf.getvalue(), headers={"Content-Type": "image/png"})
    assert r.status_code == 201 and r.json()["id"].startswith("linkpix_")
    assert jobs.post("/uploads", data=b"not an image").status_code == 400
    job = jobs.wait_for(jobs.submit(prompt="with an input", workflow="sd15_img2img", images=[r.json()["id"]]))
    assert job["status"] == "succeeded", job
    working_copy = f"linkpix_{hashlib.sha256(buf.getvalue()).hexdigest()[:16]}.png"  # named by its bytes
    assert (Path(simulator.root) / "input" / working_copy).read_bytes() == buf.getvalue()
    inline = base64.b64encode(buf.getvalue()).decode()
    same = jobs.wait_for(jobs.submit(prompt="with an input", workflow="sd15_img2img", images=[inline]))
    assert same["images"][0]["cache"] == "hit"  # the same input image, by value or by id


def test_generate_wants_json(api):
    r = requests.post(api.url + "/generate", data='{"prompt": "x"}', headers={"Content-Type": "text/plain"},
                      timeout=10)
    assert r.status_code == 415 and "application/json" in r.json()["message"]
