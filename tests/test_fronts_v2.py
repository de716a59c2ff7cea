"""The Comfy API v2 front over real sockets, driven by the real `comfy-sdk` (COMFY_BASE_URL pointing at
LinkPix, as its README says to point it at a self-hosted deployment), against the ComfyUI simulator."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from comfy_sdk import (
    IdempotencyKeyReuse,
    InvalidWorkflow,
    MissingAsset,
    NotFound,
    OutputReady,
    Preview,
    Progress,
    StatusChange,
    Unauthorized,
)
from PIL import Image
from support import ApiServer
from v2_support import client, load_and_save, png, txt2img

from linkpix.simulator import SimulatorServer

# Slow (docs/testing.md): the Comfy API v2 through a running API, the comfy-sdk client: seconds each.
pytestmark = pytest.mark.slow

KEYS = {"key-alice": "alice", "key-bob": "bob"}


@pytest.fixture
def server(project, simulator) -> Iterator[ApiServer]:
    srv = ApiServer(project, simulator.url)
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def slow(tmp_path) -> Iterator[SimulatorServer]:
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "slow", step_delay=0.05)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def test_run_outputs_workflow_and_the_same_workflow_from_the_cache(server):
    c = client(server)
    graph = txt2img("a lighthouse at dusk")
    job = c.run(c.workflows.from_json(graph))
    assert job.status == "succeeded"
    [out] = job.get_outputs("7")  # the SaveImage node of the graph
    data = out.to_bytes()
    assert Image.open(io.BytesIO(data)).size == (64, 48) and out.content_type == "image/png"
    assert out.size_bytes == len(data) and out.job_id == job.id
    assert out.to_bytes(range=(0, 9)) == data[:10]  # a Range request, answered 206
    head = requests.get(out.get_download_url().url, headers={"Range": "bytes=0-9"}, timeout=10)
    assert head.status_code == 206 and head.content == data[:10]
    wf = job.get_workflow()
    assert wf.format == "api" and wf.graph["2"]["inputs"]["text"] == "a lighthouse at dusk"
    assert requests.get(f"{server.url}/api/v2/jobs/{job.id}/logs", timeout=10).status_code == 204
    body = requests.get(f"{server.url}/api/v2/jobs/{job.id}", timeout=10).json()
    assert body["outputs_reused"] is False and body["metrics"]["execution_ms"] is not None

    runs = server.services.generator.runs_started
    again = c.run(c.workflows.from_json(txt2img("a lighthouse at dusk")))
    assert server.services.generator.runs_started == runs  # answered from LinkPix's cache, no new run
    assert again.id != job.id and again.outputs[0].to_bytes() == data
    body = requests.get(f"{server.url}/api/v2/jobs/{again.id}", timeout=10).json()
    assert body["status"] == "succeeded" and body["outputs_reused"] is True


def test_an_asset_bound_to_a_load_image(server, simulator):
    c = client(server)
    picture = png((200, 30, 30))
    asset = c.assets.from_bytes(picture, filename="photo.png")
    wf = c.workflows.from_json(load_and_save())
    wf.set_input("10", "image", asset)
    job = c.run(wf)
    assert asset.created_new is True and asset.hash.startswith("blake3:")
    result = Image.open(io.BytesIO(job.get_outputs("12")[0].to_bytes())).convert("RGB")
    assert result.size == (32, 24) and result.getpixel((5, 5)) == (55, 225, 225)  # ImageInvert ran on it
    assert any(p.read_bytes() == picture for p in (simulator.root / "input").rglob("*.png"))
    same = c.assets.from_bytes(picture, filename="again.png")
    same.commit()  # HEAD by-hash then from-hash: no second upload
    assert same.id == asset.id and same.created_new is False
    meta = c.assets.get(asset.id)
    assert meta.hash == asset.hash and meta.file_path == "photo.png"
    assert requests.get(f"{server.url}/api/v2/assets/{asset.id}/content", timeout=10).content == picture


def test_events_to_the_terminal_status(project, slow):
    srv = ApiServer(project, slow.url)
    try:
        c = client(srv)
        job = c.submit(c.workflows.from_json(txt2img("a slow fox", steps=8)))
        events = list(job.events())
        assert isinstance(events[0], StatusChange) and events[0].status in ("queued", "running")
        assert any(isinstance(e, Progress) and e.steps == 8 for e in events)
        assert any(isinstance(e, Preview) and Image.open(io.BytesIO(e.data)).format == "JPEG" for e in events)
        outputs = [i for i, e in enumerate(events) if isinstance(e, OutputReady)]
        assert outputs and outputs[0] < len(events) - 1
        assert events[-1] == StatusChange(status="succeeded")
        assert events[outputs[0]].output.to_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        srv.close()


def test_idempotency_key_reuse_is_refused_also_after_a_restart(project, simulator):
    srv = ApiServer(project, simulator.url)
    try:
        c = client(srv)
        first = c.submit(c.workflows.from_json(txt2img("once")), idempotency_key="order-1")
        with pytest.raises(IdempotencyKeyReuse):
            c.submit(c.workflows.from_json(txt2img("once")), idempotency_key="order-1")
        with pytest.raises(InvalidWorkflow):  # refused before any job exists: the key stays free
            c.submit(c.workflows.from_json({"1": {"class_type": "NoSuchNode", "inputs": {}}}),
                     idempotency_key="order-2")
        assert c.submit(c.workflows.from_json(txt2img("twice")), idempotency_key="order-2").id
        first.wait(timeout=30)
    finally:
        srv.close()
    srv = ApiServer(project, simulator.url)  # a new LinkPix on the same data folder
    try:
        c = client(srv)
        with pytest.raises(IdempotencyKeyReuse):
            c.submit(c.workflows.from_json(txt2img("once")), idempotency_key="order-1")
        assert c.jobs.get(first.id).status == "succeeded"
    finally:
        srv.close()


def test_cancel(project, slow):
    srv = ApiServer(project, slow.url)
    try:
        c = client(srv)
        job = c.submit(c.workflows.from_json(txt2img("cancel me", steps=200)))
        for event in job.events():
            if isinstance(event, Progress):
                break
        assert job.cancel().status in ("canceling", "canceled")  # canceling until ComfyUI stopped the prompt
        assert list(job.events())[-1] == StatusChange(status="canceled")
        assert job.cancel().status == "canceled"  # idempotent
        assert c.jobs.get(job.id).outputs == []
    finally:
        srv.close()


def test_keys_own_jobs_assets_and_listing(project, simulator):
    srv = ApiServer(project, simulator.url, api_keys=KEYS)
    try:
        alice, bob = client(srv, "key-alice"), client(srv, "key-bob")
        mine = [alice.submit(alice.workflows.from_json(txt2img(f"alice {i}")), metadata={"batch": str(i % 2)})
                for i in range(3)]
        theirs = bob.submit(bob.workflows.from_json(txt2img("bob")))
        listed = [s.id for s in alice.list_jobs(limit=1)]  # one per page: the SDK follows next_cursor
        assert listed == [j.id for j in reversed(mine)]
        assert [s.id for s in alice.list_jobs(metadata={"batch": "0"})] == [mine[2].id, mine[0].id]
        assert [s.id for s in bob.list_jobs()] == [theirs.id]
        for j in mine:
            j.wait(timeout=30)
        alice_h = {"Authorization": "Bearer key-alice"}
        done = requests.get(f"{srv.url}/api/v2/jobs?status=succeeded,failed&limit=2", headers=alice_h, timeout=10)
        assert [i["id"] for i in done.json()["jobs"]] == [mine[2].id, mine[1].id] and done.json()["next_cursor"]
        queued = requests.get(f"{srv.url}/api/v2/jobs?status=queued", headers=alice_h, timeout=10).json()
        assert queued == {"jobs": []}
        with pytest.raises(NotFound):
            bob.jobs.get(mine[0].id)
        r = requests.post(f"{srv.url}/api/v2/jobs/{mine[0].id}/cancel", headers={"Authorization": "Bearer key-bob"},
                          timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found" and "alice" not in r.text
        asset = alice.assets.from_bytes(png((10, 20, 30)), filename="secret.png")
        asset.commit()
        wf = bob.workflows.from_json(load_and_save({"__type": "core/ASSET", "info": {"id": asset.id}}))
        with pytest.raises(MissingAsset):
            bob.submit(wf)
        assert requests.get(f"{srv.url}/api/v2/assets/{asset.id}",
                            headers={"Authorization": "Bearer key-bob"}, timeout=10).status_code == 404
        assert requests.head(f"{srv.url}/api/v2/assets/by-hash/{asset.hash}",
                             headers={"Authorization": "Bearer key-bob"}, timeout=10).status_code == 404
        out = mine[0].wait(timeout=30).outputs[0]
        assert requests.get(f"{srv.url}/api/v2/assets/{out.id}/content",
                            headers={"Authorization": "Bearer key-bob"}, timeout=10).status_code == 404
        with pytest.raises(Unauthorized):
            list(client(srv).list_jobs())  # no key while keys are set: refused
        r = requests.post(f"{srv.url}/api/v2/jobs", json={"workflow": txt2img()},
                          headers={"Authorization": "Bearer nobody"}, timeout=10)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert requests.get(f"{srv.url}/api/v2/health", timeout=10).json()["status"] == "healthy"
    finally:
        srv.close()


def test_a_running_job_is_reattached_after_a_restart(project, slow):
    srv = ApiServer(project, slow.url)
    c = client(srv)
    job = c.submit(c.workflows.from_json(txt2img("outlives LinkPix", steps=40)))
    try:
        for event in job.events():
            if isinstance(event, Progress):
                break
    finally:
        srv.close()  # as a crash would: the job stays running in the database
    srv = ApiServer(project, slow.url)
    try:
        again = client(srv).jobs.get(job.id).wait(timeout=60)
        assert again.status == "succeeded" and again.outputs
        assert slow.prompts_received == 1  # re-attached to the prompt ComfyUI was running, not run again
    finally:
        srv.close()


QUICKSTART = '''
from comfy_sdk import Comfy

client = Comfy(api_key="key-alice")

wf = client.workflows.from_file("workflow_api.json")

asset = client.assets.from_file("photo.png")
wf.set_input("10", "image", asset)

job = client.run(wf)
for output in job.get_outputs("9"):
    output.to_file(output.name)
'''


def test_the_sdk_readme_quickstart_runs_unchanged(project, simulator, tmp_path):
    """The SDK ships no examples folder; its README's "Getting started" is its example: run as written,
    with only COMFY_BASE_URL set (and the README's own node ids in the workflow file)."""
    import json
    import os
    import subprocess
    import sys

    srv = ApiServer(project, simulator.url, api_keys=KEYS)
    work = tmp_path / "quickstart"
    work.mkdir()
    graph = load_and_save()
    graph["9"] = graph.pop("12")
    (work / "workflow_api.json").write_text(json.dumps(graph))
    (work / "photo.png").write_bytes(png((0, 0, 255)))
    (work / "quickstart.py").write_text(QUICKSTART)
    try:
        env = {**os.environ, "COMFY_BASE_URL": srv.url}
        done = subprocess.run([sys.executable, "quickstart.py"], cwd=work, env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        [written] = [p for p in work.glob("*.png") if p.name != "photo.png"]
        assert Image.open(written).convert("RGB").getpixel((1, 1)) == (255, 255, 0)
    finally:
        srv.close()


def test_an_asset_whose_bytes_retention_pruned_is_uploaded_again(server):
    c = client(server)
    picture = png((1, 99, 1))
    first = c.assets.from_bytes(picture, filename="old.png")
    first.commit()
    for path in Path(server.services.uploads.root).glob("linkpix_*"):
        path.unlink()  # what the upload pruner does to an upload no job used for jobs_keep_days
    assert requests.head(f"{server.url}/api/v2/assets/by-hash/{first.hash}", timeout=10).status_code == 404
    wf = c.workflows.from_json(load_and_save({"__type": "core/ASSET", "info": {"id": first.id}}))
    with pytest.raises(MissingAsset):
        c.submit(wf)
    again = c.assets.from_bytes(picture, filename="old.png")
    again.commit()
    assert again.created_new is True and again.id != first.id
    wf = c.workflows.from_json(load_and_save())
    wf.set_input("10", "image", again)
    assert c.run(wf).status == "succeeded"
