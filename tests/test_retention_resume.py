"""An event stream resumes from Last-Event-ID, across a restart too; finished jobs, their events and
unused uploads are pruned after jobs_keep_days (issue 15 item 6)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import time

import pytest
import requests
from jobs_support import JobsServer, wait_until
from PIL import Image

# Slow (docs/testing.md): restarts of the API and resumed event streams: seconds each.
pytestmark = pytest.mark.slow

DAY = 86400


def events(url: str, headers: dict[str, str] | None = None, limit: int | None = None) -> list[tuple]:
    """(id or None, event, data) of an SSE stream, until it ends or `limit` events came."""
    out: list[tuple] = []
    with requests.get(url, headers=headers or {}, stream=True, timeout=30) as r:
        assert r.status_code == 200, r.text
        event_id, kind, data = None, None, []
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("id:"):
                event_id = int(line[3:].strip())
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and kind is not None:
                out.append((event_id, kind, json.loads("\n".join(data))))
                event_id, kind, data = None, None, []
                if limit is not None and len(out) >= limit:
                    break
    return out


def png(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (seed, 99, 7)).save(out, "PNG")
    return out.getvalue()


def test_a_stream_resumes_after_the_last_event_id(jobs):
    job_id = jobs.submit(prompt="resumable", image_count=2)
    jobs.wait_for(job_id)
    url = f"{jobs.url}/jobs/{job_id}/events"
    kept = events(url, {"Last-Event-ID": "0"})  # everything kept, from the start
    assert [k for _, k, _ in kept] == ["queued", "started", "image", "image", "succeeded"]
    assert [i for i, _, _ in kept] == [1, 2, 3, 4, 5]
    assert [d["index"] for _, k, d in kept if k == "image"] == [0, 1]
    again = events(url, {"Last-Event-ID": "3"})
    assert again == kept[3:]  # the same events, with the same ids, after the one the client had
    assert events(url + "?last_event_id=2") == kept[2:]  # for clients that cannot set headers
    fresh = events(url)  # no id: the current state first, with the newest id
    assert [(i, k) for i, k, _ in fresh] == [(5, "succeeded")]
    done = requests.get(url, headers={"Last-Event-ID": "5"}, timeout=10)
    assert done.status_code == 204 and done.content == b""  # the client has the end: EventSource stops
    bad = requests.get(url + "?last_event_id=five", timeout=10)
    assert bad.status_code == 400 and bad.json()["details"]["parameter"] == "last_event_id"
    assert [k for _, k, _ in events(url, {"Last-Event-ID": "not-a-number"})] == ["succeeded"]


def test_a_running_job_resumes_live_and_progress_carries_no_id(jobs, simulator):
    simulator.faults.step_delay = 0.15
    job_id = jobs.submit(prompt="slow resumable")
    url = f"{jobs.url}/jobs/{job_id}/events"
    first = events(url, limit=1)
    assert first[0][1] in ("queued", "started")
    rest = events(url, {"Last-Event-ID": str(first[0][0])})
    kinds = [k for _, k, _ in rest]
    assert kinds[-1] == "succeeded" and "image" in kinds and "progress" in kinds
    assert all(i is None for i, k, _ in rest if k in ("progress", "preview"))
    ids = [i for i, _, _ in rest if i is not None]
    assert ids == sorted(ids) and ids[0] > first[0][0]  # nothing the client had is sent again


def test_kept_events_survive_a_restart(project, simulator):
    server = JobsServer(project, simulator.url)
    try:
        job_id = server.submit(prompt="kept across restarts")
        server.wait_for(job_id)
        before = events(f"{server.url}/jobs/{job_id}/events", {"Last-Event-ID": "0"})
    finally:
        server.close()
    again = JobsServer(project, simulator.url)
    try:
        after = events(f"{again.url}/jobs/{job_id}/events", {"Last-Event-ID": "1"})
        assert after == before[1:] and after[-1][1] == "succeeded"
    finally:
        again.close()


def test_finished_jobs_their_events_and_unused_uploads_are_pruned(project, simulator):
    server = JobsServer(project, simulator.url, jobs_keep_days=2)
    try:
        old_upload = server.post("/uploads", data=png(1), headers={"Content-Type": "image/png"}).json()["id"]
        used_upload = server.post("/uploads", data=png(2), headers={"Content-Type": "image/png"}).json()["id"]
        done = server.submit(prompt="old news")
        server.wait_for(done)
        simulator.faults.hang = True  # this one stays active, however old it gets
        active = server.submit(prompt="still running", images=[used_upload], workflow="sd15_img2img")
        wait_until(lambda: server.job(active)["prompt_id"], 20, "the active job in ComfyUI")
        manager = server.services.jobs
        uploads = manager.uploads.root
        assert manager.pruner.prune(time.time() + 1 * DAY) == {"jobs": 0, "uploads": 0}  # not old enough
        # The active job holds its input under the picture's content name (issue 20: an upload id is its
        # uploader's, a run names bytes): that copy stays; both ids, unused for three days, go.
        working_copy = f"linkpix_{hashlib.sha256(png(2)).hexdigest()[:16]}.png"
        assert manager.pruner.prune(time.time() + 3 * DAY) == {"jobs": 1, "uploads": 2}
        assert server.get(f"/jobs/{done}").status_code == 404
        assert manager.events.after(done, 0) == [] and manager.events.latest(active) >= 1
        assert server.job(active)["status"] in ("queued", "running")
        assert not (uploads / old_upload).exists() and not (uploads / used_upload).exists()
        assert (uploads / working_copy).read_bytes() == png(2)
    finally:
        simulator.faults.hang = False
        server.close()


def test_an_upload_in_use_is_kept_and_zero_days_keeps_everything(project, simulator):
    server = JobsServer(project, simulator.url, jobs_keep_days=0)
    try:
        upload = server.post("/uploads", data=png(3), headers={"Content-Type": "image/png"}).json()["id"]
        job_id = server.submit(prompt="kept for ever")
        server.wait_for(job_id)
        manager = server.services.jobs
        assert manager.pruner.prune(time.time() + 400 * DAY) == {"jobs": 0, "uploads": 0}
        path = manager.uploads.root / upload
        month_ago = time.time() - 30 * DAY
        os.utime(path, (month_ago, month_ago))
        manager.uploads.get(upload)  # a link or a job reads it: it counts as used now
        assert path.stat().st_mtime > time.time() - 60
    finally:
        server.close()
