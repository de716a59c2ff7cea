"""The v2 front on the pool and in the contract's error codes: 8 jobs at once on two simulators (both
used), identical concurrent jobs sharing one run, idempotency shared by two replicas over a real Redis,
and each refusal in the contract's envelope (over HTTP, since the SDK raises them as typed exceptions)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from comfy_sdk import IdempotencyKeyReuse
from pool_support import Sims, pool_api, posts_to
from replica_support import redis_server  # noqa: F401 - fixture
from support import ApiServer
from v2_support import client, load_and_save, png, txt2img

from linkpix.simulator import SimulatorServer

# Slow (docs/testing.md): the Comfy API v2 over a pool of simulators: seconds each.
pytestmark = pytest.mark.slow


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[Sims]:
    group = Sims(tmp_path / "sims")
    try:
        yield group
    finally:
        group.stop()


def _error(r: requests.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def test_eight_jobs_at_once_on_two_backends(project, sims):
    a, b = sims.start("a", step_delay=0.03), sims.start("b", step_delay=0.03)
    srv = pool_api(project, sims, job_workers=8)
    try:
        c = client(srv)
        jobs = [None] * 8

        def run(i: int) -> None:
            jobs[i] = c.run(c.workflows.from_json(txt2img("a crowd", seed=100 + i, steps=10)))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(j is not None and j.status == "succeeded" for j in jobs)
        assert len({j.outputs[0].name for j in jobs}) == 8
        assert posts_to(a) > 0 and posts_to(b) > 0 and posts_to(a) + posts_to(b) == 8
    finally:
        srv.close()


def test_identical_concurrent_jobs_share_one_run(project, tmp_path):
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "sim", step_delay=0.05)
    sim.start()
    srv = ApiServer(project, sim.url, job_workers=4)
    try:
        c = client(srv)
        jobs = [c.submit(c.workflows.from_json(txt2img("one run for two"))) for _ in range(2)]
        done = [j.wait(timeout=30) for j in jobs]
        assert [j.status for j in done] == ["succeeded", "succeeded"] and jobs[0].id != jobs[1].id
        assert sim.prompts_received == 1
        assert done[0].outputs[0].to_bytes() == done[1].outputs[0].to_bytes()
    finally:
        srv.close()
        sim.stop()


def test_contract_error_codes(project, tmp_path):
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "sim", step_delay=0.05)
    sim.start()
    srv = ApiServer(project, sim.url, jobs_max_queued_per_user=1)
    url = srv.url + "/api/v2"
    try:
        ui = {"nodes": [], "links": [], "last_node_id": 0}
        assert _error(requests.post(url + "/jobs", json={"workflow": ui}, timeout=10)) == (422, "workflow_format_ui")
        r = requests.post(url + "/jobs", json={"workflow": {"1": {"class_type": "Nope", "inputs": {}}}}, timeout=10)
        assert _error(r) == (422, "invalid_workflow") and r.json()["error"]["details"]["node_errors"]["1"]
        bad_model = txt2img()
        bad_model["1"]["inputs"]["ckpt_name"] = "not-on-any-backend.safetensors"
        r = requests.post(url + "/jobs", json={"workflow": bad_model}, timeout=10)
        assert _error(r) == (422, "invalid_workflow") and "not-on-any-backend" in r.json()["error"]["message"]
        missing = load_and_save({"__type": "core/ASSET", "info": {"id": "no-such-asset"}})
        r = requests.post(url + "/jobs", json={"workflow": missing}, timeout=10)
        assert _error(r) == (422, "missing_asset") and r.json()["error"]["details"]["missing_ids"] == ["no-such-asset"]
        r = requests.post(url + "/jobs", json={"workflow": txt2img(), "metadata": {"bad key!": "x"}}, timeout=10)
        assert _error(r) == (422, "metadata_invalid")
        r = requests.post(url + "/jobs", json={"workflow": txt2img(), "extra_data": {"x": 1}}, timeout=10)
        assert _error(r) == (400, "invalid_request")
        assert _error(requests.get(url + "/jobs?limit=101", timeout=10)) == (400, "invalid_request")
        assert _error(requests.get(url + "/jobs?cursor=garbage", timeout=10)) == (400, "invalid_cursor")
        assert _error(requests.get(url + "/jobs?status=done", timeout=10)) == (400, "invalid_request")
        assert _error(requests.get(url + "/jobs/0123", timeout=10)) == (404, "not_found")
        r = requests.post(url + "/assets", files={"file": ("a.png", png())}, data={"expected_hash": "blake3:00"},
                          timeout=10)
        assert _error(r) == (409, "hash_mismatch")
        r = requests.post(url + "/assets", files={"file": ("a.txt", b"not an image")}, timeout=10)
        assert _error(r) == (422, "invalid_request") and "image" in r.json()["error"]["message"]
        # a declared content type is not what /content serves back: the bytes' own kind is (no text/html on
        # LinkPix's origin from an upload)
        r = requests.post(url + "/assets", files={"file": ("a.png", png((1, 2, 3)))},
                          data={"content_type": "text/html"}, timeout=10)
        assert r.status_code == 201 and r.json()["content_type"] == "image/png"
        served = requests.get(url + f"/assets/{r.json()['id']}/content", timeout=10)
        assert served.status_code == 200 and served.headers["Content-Type"] == "image/png"
        assert _error(requests.post(url + "/assets/from-hash", json={"hash": "blake3:00"}, timeout=10)) \
            == (404, "blob_not_found")

        first = requests.post(url + "/jobs", json={"workflow": txt2img("long", steps=100)},
                              headers={"Idempotency-Key": "k-1"}, timeout=10)
        assert first.status_code == 201 and first.json()["status"] in ("queued", "running")
        r = requests.post(url + "/jobs", json={"workflow": txt2img("second")}, headers={"Idempotency-Key": "k-2"},
                          timeout=10)
        assert _error(r) == (429, "queue_full") and int(r.headers["Retry-After"]) > 0
        requests.post(first.json()["urls"]["cancel"], timeout=10)
        c = client(srv)
        second = c.submit(c.workflows.from_json(txt2img("second")), idempotency_key="k-2")  # released: not reused
        with pytest.raises(IdempotencyKeyReuse):
            c.submit(c.workflows.from_json(txt2img("other")), idempotency_key="k-1")

        second.wait(timeout=30)  # the one place this user may hold (jobs_max_queued_per_user=1) is free again
        job = c.run(c.workflows.from_json(txt2img("evicted")))
        name = job.outputs[0].name
        for path in Path(srv.services.cache.root).rglob(name):
            path.unlink()
        content = f"{url}/assets/{job.outputs[0].id}/content"
        assert _error(requests.get(content, timeout=10)) == (404, "output_unavailable")
    finally:
        srv.close()
        sim.stop()


def test_idempotency_and_records_shared_by_replicas(project, simulator, redis_server, tmp_path):  # noqa: F811
    one = ApiServer(project, simulator.url, redis_url=redis_server.url, replica_name="one")
    two = ApiServer(project, simulator.url, redis_url=redis_server.url, replica_name="two")
    try:
        c1, c2 = client(one), client(two)
        job = c1.submit(c1.workflows.from_json(txt2img("shared")), idempotency_key="shared-1", metadata={"r": "1"})
        with pytest.raises(IdempotencyKeyReuse):
            c2.submit(c2.workflows.from_json(txt2img("shared")), idempotency_key="shared-1")
        assert c2.jobs.get(job.id).wait(timeout=30).status == "succeeded"
        asset = c1.assets.from_bytes(png((1, 2, 3)), filename="r.png")
        asset.commit()
        assert requests.head(f"{two.url}/api/v2/assets/by-hash/{asset.hash}", timeout=10).status_code == 200
        assert [s.id for s in c2.list_jobs(metadata={"r": "1"})] == [job.id]
    finally:
        one.close()
        two.close()


def test_a_cache_hit_does_not_wait_behind_running_jobs(project, tmp_path):
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "sim", step_delay=0.05)
    sim.start()
    srv = ApiServer(project, sim.url, job_workers=1)
    try:
        c = client(srv)
        c.run(c.workflows.from_json(txt2img("kept", steps=2)))
        long = c.submit(c.workflows.from_json(txt2img("long", steps=100)))  # holds the one job worker
        started = time.monotonic()
        hit = requests.post(srv.url + "/api/v2/jobs", json={"workflow": txt2img("kept", steps=2)}, timeout=10).json()
        assert hit["status"] == "succeeded" and hit["outputs_reused"] is True and hit["outputs"]
        assert time.monotonic() - started < 2 and c.jobs.get(long.id).status in ("queued", "running")
        long.cancel()
    finally:
        srv.close()
        sim.stop()
