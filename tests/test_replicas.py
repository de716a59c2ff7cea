"""Several replicas on one real Redis: single-flight, jobs, events and limits across them, a dead
replica's job finished by another, Redis down, shared files; and the embedded default untouched."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from jobs_support import JobsServer, Receiver, read_events, wait_until
from replica_support import ROOT, RedisServer, ReplicaProcess, redis_server, write_config

from linkpix.simulator import SimulatorServer
from linkpix.storage.jsonstore import JsonStore

# Slow (docs/testing.md): replicas as child processes, a real redis-server.
pytestmark = pytest.mark.slow

__all__ = ["redis_server"]


@pytest.fixture
def slow_sim(tmp_path: Path) -> Iterator[SimulatorServer]:
    """A simulator whose runs take a second: long enough for requests on several replicas to overlap."""
    sim = SimulatorServer(port=0, root=tmp_path / "comfyui", step_delay=0.0, run_delay=1.0)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


class Replicas:
    """In-process replicas (each its own app, Redis connections and waitress server on its own port)."""

    def __init__(self, project: Path, sim: SimulatorServer, redis: RedisServer, **shared: object) -> None:
        self.project, self.sim, self.redis, self.shared = project, sim, redis, shared
        self.started: list[JobsServer] = []

    def start(self, name: str, **overrides: object) -> JobsServer:
        server = JobsServer(self.project, self.sim.url, redis_url=self.redis.url, replica_name=name,
                            replica_lease=2, **{**self.shared, **overrides})
        self.started.append(server)
        return server

    def close(self) -> None:
        for server in self.started:
            server.close()


@pytest.fixture
def replicas(project: Path, slow_sim: SimulatorServer, redis_server: RedisServer) -> Iterator[Replicas]:
    group = Replicas(project, slow_sim, redis_server)
    try:
        yield group
    finally:
        group.close()


def test_a_new_link_opened_on_two_replicas_runs_once(replicas, slow_sim):
    a, b = replicas.start("a"), replicas.start("b")
    link = "/prompt/one%20fox%20for%20everyone?width=64&height=64"
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: requests.get((a, b)[i % 2].url + link, timeout=30), range(8)))
    assert [r.status_code for r in answers] == [200] * 8
    assert len({r.content for r in answers}) == 1
    assert slow_sim.prompts_received == 1
    # The replica that did not run it served the image its peer stored in the shared cache folder.
    assert requests.get(b.url + link, timeout=10).headers["X-LinkPix-Cache"] == "hit"
    assert a.get("/health").json()["replica"] == "a" and b.get("/health").json()["redis"]["state"] == "up"


def test_a_job_accepted_on_one_replica_runs_on_another_and_streams_everywhere(replicas):
    a, b = replicas.start("a"), replicas.start("b")
    a.services.jobs.queue.close()  # a still accepts jobs and answers for them, but runs none
    job_id = a.submit(prompt="accepted here, run there")
    kinds = [kind for kind, _ in read_events(f"{a.url}/jobs/{job_id}/events")]
    assert kinds[0] == "queued" and kinds[-1] == "succeeded" and "started" in kinds and "image" in kinds
    job = a.job(job_id)
    assert job["status"] == "succeeded" and job["replica"] == "b"
    assert b.job(job_id)["images"] == job["images"]
    assert a.get(job["images"][0]["url"]).status_code == 200  # stored by b in the shared folder


def test_a_cancel_on_one_replica_stops_the_job_running_on_another(replicas, slow_sim):
    slow_sim.faults.run_delay = 5.0
    a, b = replicas.start("a"), replicas.start("b")
    a.services.jobs.queue.close()
    job_id = a.submit(prompt="cancel me from afar")
    wait_until(lambda: b.job(job_id)["prompt_id"], 10, "the job to reach ComfyUI on b")
    assert a.delete(f"/jobs/{job_id}").json()["status"] == "cancelled"
    # The run would last 5 s more: an empty queue within 3 s means b interrupted it.
    wait_until(lambda: not requests.get(slow_sim.url + "/queue", timeout=5).json()["queue_running"], 3,
             "ComfyUI to stop the run")
    assert b.job(job_id)["status"] == "cancelled"


def test_limits_count_across_replicas(replicas, slow_sim):
    slow_sim.faults.run_delay = 3.0
    a = replicas.start("a", max_pending=1, jobs_max_queued_per_user=1,
                       rate_limits_address={"links": "3/minute"})
    b = replicas.start("b", max_pending=1, jobs_max_queued_per_user=1,
                       rate_limits_address={"links": "3/minute"})
    first = threading.Thread(target=a.get, args=("/prompt/first%20of%20one?width=64&height=64",))
    first.start()
    wait_until(lambda: slow_sim.prompts_received == 1, 10, "the first run to start")
    pending = b.get("/prompt/another%20one?width=64&height=64")  # b runs nothing, but a does: the cap is shared
    assert pending.status_code == 429 and "pending" in pending.json()["message"]
    b.submit(prompt="a job", user="carol")
    full = b.post("/generate", json={"prompt": "and another", "user": "carol", "width": 64, "height": 64})
    assert full.status_code == 429
    second = a.post("/generate", json={"prompt": "from a", "user": "carol", "width": 64, "height": 64})
    assert second.status_code == 429 and "carol" in second.json()["message"]
    first.join(30)
    # Rate limits: three new pictures from this address in total, wherever they were asked for.
    assert b.get("/prompt/third%20link?width=64&height=64").status_code == 200  # the jobs' pictures do not count
    refused = a.get("/prompt/fourth%20link?width=64&height=64")
    assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"


def test_redis_down_refuses_new_work_and_serves_cached_pictures(replicas, redis_server):
    a = replicas.start("a")
    cached = "/prompt/cached%20before%20the%20outage?width=64&height=64"
    assert a.get(cached).status_code == 200
    redis_server.stop()
    hit = a.get(cached)
    assert hit.status_code == 200 and hit.headers["X-LinkPix-Cache"] == "hit"
    miss = a.get("/prompt/new%20during%20the%20outage?width=64&height=64")
    assert miss.status_code == 503 and miss.json()["error"] == "redis_unavailable"
    assert "Redis" in miss.json()["message"] and "cached pictures are still served" in miss.json()["message"]
    job = a.post("/generate", json={"prompt": "a job during the outage"})
    assert job.status_code == 503 and job.json()["error"] == "redis_unavailable"
    health = wait_until(lambda: (lambda h: h if h["redis"]["state"] == "down" else None)(a.get("/health").json()),
                      5, "/health to report Redis down")
    assert health["replica"] == "a" and health["status"] == "degraded" and health["redis"]["error"]
    redis_server.start()  # back on the same port: new work is taken again
    wait_until(lambda: a.get("/health").json()["redis"]["state"] == "up", 10, "Redis to be seen again")
    assert a.get("/prompt/new%20after%20the%20outage?width=64&height=64").status_code == 200


def test_a_style_written_on_one_machine_reaches_every_replica(replicas, project):
    a, b = replicas.start("a"), replicas.start("b")
    assert "neon" not in b.get("/api/styles").json()
    JsonStore().update(project / "data" / "styles.json", lambda styles: {**styles, "neon": {"pre": "neon"}})
    wait_until(lambda: "neon" in b.get("/api/styles").json() and "neon" in a.get("/api/styles").json(), 10,
             "both replicas to read the new style")
    # Each replica saw the change and said so; the others re-read (inotify alone misses other machines).
    wait_until(lambda: a.services.replica.files.heard and b.services.replica.files.heard, 10, "the announcements")


def test_a_dead_replicas_job_is_finished_by_another_with_one_webhook(project, slow_sim, redis_server):
    slow_sim.faults.run_delay = 3.0
    receiver = Receiver()
    write_config(project, redis_url=redis_server.url, replica_lease=2, comfyui_url=slow_sim.url,
                 workflow_path="demo.json", webhook_allow=["127.0.0.1"], webhook_backoff=0.2)
    doomed = ReplicaProcess(project, "doomed")
    survivor = None
    try:
        r = requests.post(doomed.url + "/generate", json={"prompt": "outlive my replica", "width": 64, "height": 64,
                                                          "webhook_url": receiver.url}, timeout=10)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        wait_until(lambda: requests.get(f"{doomed.url}/jobs/{job_id}", timeout=5).json()["prompt_id"], 10,
                 "the job to reach ComfyUI")
        doomed.kill()
        survivor = JobsServer(project, None, replica_name="survivor")
        job = survivor.wait_for(job_id, timeout=30)
        assert job["status"] == "succeeded" and job["replica"] == "survivor"
        assert slow_sim.prompts_received == 1  # re-attached to its prompt, not run again
        wait_until(lambda: receiver.calls, 10, "the webhook")
        time.sleep(0.5)  # a second delivery, if there were one, would arrive now
        assert [p["job_id"] for p in receiver.payloads()] == [job_id]
        assert survivor.job(job_id)["webhook"]["state"] == "delivered"
    finally:
        doomed.stop()
        if survivor is not None:
            survivor.close()
        receiver.close()


def test_a_replica_killed_mid_run_leaves_its_link_to_the_others(project, slow_sim, redis_server):
    """The claim on a run lapses with its replica's lease; a replica waiting on it claims it and runs it."""
    slow_sim.faults.run_delay = 3.0
    write_config(project, redis_url=redis_server.url, replica_lease=2, comfyui_url=slow_sim.url,
                 workflow_path="demo.json")
    doomed = ReplicaProcess(project, "doomed")
    other = None
    link = "/prompt/orphaned%20link?width=64&height=64"
    try:
        def ask_the_doomed() -> None:
            try:
                requests.get(doomed.url + link, timeout=30)
            except requests.RequestException:
                pass  # its replica is killed under it: that is the point

        threading.Thread(target=ask_the_doomed, daemon=True).start()
        wait_until(lambda: slow_sim.prompts_received == 1, 10, "the run to start on the doomed replica")
        other = JobsServer(project, None, replica_name="other")
        waiting = ThreadPoolExecutor(1).submit(other.get, link)
        time.sleep(0.3)
        doomed.kill()
        r = waiting.result(30)
        assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    finally:
        doomed.stop()
        if other is not None:
            other.close()


def test_the_embedded_default_imports_no_redis_and_no_s3(project):
    code = ("import sys; from linkpix.web import create_app; "
            f"app = create_app({str(project / 'config.json')!r}, overrides={{'workflow_path': 'demo.json'}}, "
            "use_env=False); "
            "print(json.dumps([m for m in ('redis', 'boto3', 'linkpix.replicas') if m in sys.modules])); "
            "app.extensions['linkpix'].close()")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
