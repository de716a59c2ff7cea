"""With replicas, a job's `preview` events and the frame URL they carry work on every replica, not only on the
one running the job (the frame is kept in a real Redis); the URL stays the job owner's only."""

from __future__ import annotations

import io
import json

import pytest
import requests
from jobs_support import JobsServer
from PIL import Image
from replica_support import redis_server

pytestmark = pytest.mark.slow  # replicas on a real redis-server, a run of 12 slow steps

__all__ = ["redis_server"]

KEYS = {"k-alice": "alice", "k-bob": "bob"}


def test_a_jobs_frames_are_served_by_a_replica_that_does_not_run_it(project, slow_sim, redis_server):
    shared = {"redis_url": redis_server.url, "replica_lease": 2, "network_access": True, "api_keys": KEYS}
    asked = JobsServer(project, slow_sim.url, replica_name="a", **shared)
    runner = JobsServer(project, slow_sim.url, replica_name="b", **shared)
    try:
        asked.services.jobs.queue.close()  # `a` accepts the job and answers for it, `b` runs it
        alice, bob = {"X-API-Key": "k-alice"}, {"X-API-Key": "k-bob"}
        r = asked.post("/generate", json={"prompt": "a job watched elsewhere", "steps": 12}, headers=alice)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        frames: list[bytes] = []
        kind = None
        with requests.get(f"{asked.url}/jobs/{job_id}/events", headers=alice, stream=True, timeout=60) as events:
            for line in events.iter_lines(decode_unicode=True):
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind == "preview":
                    url = json.loads(line[5:])["url"]
                    got = asked.get(url, headers=alice)
                    assert got.status_code == 200, got.text
                    assert got.headers["Content-Type"] == "image/jpeg"
                    frames.append(got.content)
                    assert asked.get(url, headers=bob).status_code == 404  # not bob's: nothing said of it
                elif kind in ("succeeded", "failed"):
                    break
        assert kind == "succeeded"
        assert asked.get(f"/jobs/{job_id}", headers=alice).json()["replica"] == "b"
        assert len(frames) >= 2 and len(set(frames)) >= 2  # the frames move, fetched from `a`
        assert max(Image.open(io.BytesIO(frames[-1])).size) == 512
        # `b`, which ran it, serves the same newest frame.
        newest = runner.get(f"/jobs/{job_id}/preview", headers=alice)
        assert newest.status_code == 200
        assert newest.content == asked.get(f"/jobs/{job_id}/preview", headers=alice).content
    finally:
        asked.close()
        runner.close()
