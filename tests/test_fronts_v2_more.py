"""The Comfy API v2 front's later parts, over real sockets with the real `comfy-sdk`: `canceling` and
`log` events, previews that name their node, several outputs per job, combo values checked at submit,
admin keys, and partner-node keys (`extra_data.api_key_comfy_org`)."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest
import requests
from comfy_sdk import InvalidWorkflow, Log, NotFound, OutputReady, Preview, Progress, StatusChange
from fronts_support import add_video_workflow, video
from PIL import Image
from replica_support import redis_server  # noqa: F401 - fixture
from support import ApiServer
from v2_support import client, txt2img

from linkpix.simulator import SimulatorServer

# Slow (docs/testing.md): the Comfy API v2 through a running API, the comfy-sdk client: seconds each.
pytestmark = pytest.mark.slow

KEYS = {"key-alice": "alice", "key-bob": "bob", "key-root": "root"}


@pytest.fixture
def server(project, simulator) -> Iterator[ApiServer]:
    srv = ApiServer(project, simulator.url)
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def stubborn(tmp_path) -> Iterator[SimulatorServer]:
    """A simulator whose sampler steps take 0.4 s and notice an interrupt only between steps (as ComfyUI)."""
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "stubborn", step_delay=0.4)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def test_cancel_of_a_running_job_passes_through_canceling(project, stubborn):
    srv = ApiServer(project, stubborn.url)
    try:
        c = client(srv)
        job = c.submit(c.workflows.from_json(txt2img("cancel me slowly", steps=50)))
        for event in job.events():
            if isinstance(event, Progress) and event.step:  # the sampler runs
                break
        assert job.cancel().status == "canceling"  # ComfyUI acts on the interrupt at its next step
        events = list(job.events())
        statuses = [e.status for e in events if isinstance(e, StatusChange)]
        assert statuses == ["canceling", "canceled"]
        assert any(isinstance(e, Log) and "stop" in e.message for e in events)
        assert c.jobs.get(job.id).status == "canceled" and job.cancel().status == "canceled"
        history = requests.get(f"{stubborn.url}/history", timeout=10).json()
        [entry] = history.values()
        assert any(m[0] == "execution_interrupted" for m in entry["status"]["messages"])
    finally:
        srv.close()


def test_a_failed_job_says_why_in_a_log_event(server, simulator):
    simulator.faults.fail_class = "KSampler"
    c = client(server)
    job = c.submit(c.workflows.from_json(txt2img("doomed")))
    events = list(job.events())
    assert events[-1] == StatusChange(status="failed")
    [log] = [e for e in events if isinstance(e, Log)]
    assert log.level == "error" and log.message == c.jobs.get(job.id).error.message


def test_previews_name_the_node_that_sent_them(project, slow_sim):
    srv = ApiServer(project, slow_sim.url)
    try:
        c = client(srv)
        job = c.submit(c.workflows.from_json(txt2img("a fox with previews", steps=8)))
        events = list(job.events())
        previews = [e for e in events if isinstance(e, Preview)]
        assert previews and {p.node_id for p in previews} == {"5"}  # demo.json's KSampler
        sampling = [e for e in events if isinstance(e, Progress) and e.step and e.step < e.steps]
        assert sampling and {e.current_node for e in sampling} == {"5"}
        other = c.submit(c.workflows.from_json(txt2img("another fox with previews", steps=8)))
        text = requests.get(f"{srv.url}/api/v2/jobs/{other.id}/events", timeout=30).text  # the raw frames
        assert '"current_node":"5","current_node_class":"KSampler"' in text
    finally:
        srv.close()


def two_savers(prompt: str, batch: int = 1) -> dict:
    graph = txt2img(prompt)
    graph["4"]["inputs"]["batch_size"] = batch
    graph["8"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "second", "images": ["6", 0]}}
    return graph


def test_every_output_of_a_batch_and_of_two_save_nodes_is_listed_and_downloadable(project, simulator):
    srv = ApiServer(project, simulator.url, api_keys=KEYS)
    try:
        alice, bob = client(srv, "key-alice"), client(srv, "key-bob")
        job = alice.run(alice.workflows.from_json(two_savers("two savers, batch of two", batch=2)))
        assert [o.node_id for o in job.outputs] == ["7", "7", "8", "8"]
        assert len({o.id for o in job.outputs}) == 4
        for out in job.outputs:
            data = out.to_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) == out.size_bytes
            assert Image.open(io.BytesIO(data)).size == (64, 48)
            other = requests.get(f"{srv.url}/api/v2/assets/{out.id}/content",
                                 headers={"Authorization": "Bearer key-bob"}, timeout=10)
            assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
        runs = srv.services.generator.runs_started
        again = alice.run(alice.workflows.from_json(two_savers("two savers, batch of two", batch=2)))
        assert srv.services.generator.runs_started == runs  # from LinkPix's cache, every output with it
        assert [o.to_bytes() for o in again.outputs] == [o.to_bytes() for o in job.outputs]
        with pytest.raises(NotFound):
            bob.jobs.get(job.id)
    finally:
        srv.close()


def test_events_carry_every_output_before_the_terminal_status(server):
    c = client(server)
    job = c.submit(c.workflows.from_json(two_savers("outputs as events")))
    events = list(job.events())
    ready = [e.output for e in events if isinstance(e, OutputReady)]
    assert sorted(o.node_id for o in ready) == ["7", "8"] and events[-1] == StatusChange(status="succeeded")


def test_a_bad_combo_value_is_refused_at_submit_naming_node_and_input(server):
    c = client(server)
    runs = server.services.generator.runs_started
    bad_sampler = txt2img("bad sampler")
    bad_sampler["5"]["inputs"]["sampler_name"] = "no_such_sampler"
    with pytest.raises(InvalidWorkflow) as caught:
        c.submit(c.workflows.from_json(bad_sampler), idempotency_key="combo-1")
    assert caught.value.code == "invalid_workflow"
    assert "Node 5 (KSampler)" in str(caught.value) and "sampler_name" in str(caught.value)
    [problem] = caught.value.details["node_errors"]["5"]
    assert problem["field"] == "sampler_name" and problem["reason"] == "value_not_in_list"
    assert "euler" in problem["allowed"]

    bad_model = txt2img("bad checkpoint")
    bad_model["1"]["inputs"]["ckpt_name"] = "nowhere.safetensors"
    with pytest.raises(InvalidWorkflow) as caught:
        c.submit(c.workflows.from_json(bad_model))
    [problem] = caught.value.details["node_errors"]["1"]
    assert problem["field"] == "ckpt_name" and problem["value"] == "nowhere.safetensors"
    assert "nowhere.safetensors" in str(caught.value)

    assert list(c.list_jobs()) == [] and server.services.generator.runs_started == runs  # no job, no run
    good = c.submit(c.workflows.from_json(txt2img("good sampler")), idempotency_key="combo-1")  # key given back
    assert good.wait(timeout=30).status == "succeeded"


def test_an_admin_key_lists_and_reads_every_users_jobs(project, simulator):
    srv = ApiServer(project, simulator.url, api_keys=KEYS, admin_keys=["key-root"])
    try:
        alice, bob, root = client(srv, "key-alice"), client(srv, "key-bob"), client(srv, "key-root")
        a = alice.run(alice.workflows.from_json(txt2img("alice's fox")))
        b = bob.run(bob.workflows.from_json(txt2img("bob's fox")))
        assert {s.id for s in root.list_jobs()} == {a.id, b.id}
        assert [s.id for s in alice.list_jobs()] == [a.id]  # an ordinary key: its own only
        seen = requests.get(f"{srv.url}/api/v2/jobs?user=bob", headers={"Authorization": "Bearer key-root"},
                            timeout=10).json()["jobs"]
        assert [(j["id"], j["user"]) for j in seen] == [(b.id, "bob")]
        assert root.jobs.get(a.id).status == "succeeded"
        assert root.jobs.get(a.id).outputs[0].to_bytes() == a.outputs[0].to_bytes()
        assert root.jobs.get(b.id).get_workflow().graph["2"]["inputs"]["text"] == "bob's fox"
        with pytest.raises(NotFound):  # bob is no admin
            bob.jobs.get(a.id)
        r = requests.get(f"{srv.url}/api/v2/assets/{a.outputs[0].id}/content",
                         headers={"Authorization": "Bearer key-bob"}, timeout=10)
        assert r.status_code == 404
    finally:
        srv.close()


PARTNER_KEY = "comfyui-partner-key-7f3d2c1b9a8e4d6f"


def test_a_partner_key_reaches_comfyui_for_its_own_run_only_and_is_kept_nowhere(project, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "partner", step_delay=0.1)
    sim.start()
    srv = ApiServer(project, sim.url, api_keys=KEYS)
    try:
        alice, bob = client(srv, "key-alice"), client(srv, "key-bob")
        graph = txt2img("a paid fox", steps=6)
        runs = srv.services.generator.runs_started
        paid = alice.submit(alice.workflows.from_json(graph), api_key=PARTNER_KEY)
        free = bob.submit(bob.workflows.from_json(graph))  # the same graph at the same time, without a key
        seen = []
        for _ in range(200):  # ComfyUI holds the key in its queue while the prompt waits or runs, as it must
            queue = requests.get(f"{sim.url}/queue", timeout=10).json()
            seen += [item[3] for item in queue["queue_running"] + queue["queue_pending"]]
            if any(extra.get("api_key_comfy_org") == PARTNER_KEY for extra in seen):
                break
            time.sleep(0.02)
        assert [extra for extra in seen if extra.get("api_key_comfy_org") == PARTNER_KEY]
        assert paid.wait(timeout=60).status == "succeeded" and free.wait(timeout=60).status == "succeeded"
        assert srv.services.generator.runs_started == runs + 2  # not one shared run

        again = alice.run(alice.workflows.from_json(graph), api_key=PARTNER_KEY)  # never from a cache
        plain = alice.run(alice.workflows.from_json(graph))  # nor a keyless job from the paid run's picture
        assert srv.services.generator.runs_started == runs + 4
        for job in (again, plain):
            assert requests.get(f"{srv.url}/api/v2/jobs/{job.id}", headers={"Authorization": "Bearer key-alice"},
                                timeout=10).json()["outputs_reused"] is False
        assert alice.jobs.get(paid.id).get_workflow().graph == graph  # as sent: no key, no scope input
        with pytest.raises(NotFound):
            bob.jobs.get(paid.id)

        seen_text = [requests.get(f"{srv.url}/api/v2/jobs/{paid.id}{path}", timeout=10,
                                  headers={"Authorization": "Bearer key-alice"}).text
                     for path in ("", "/events", "/workflow")]
        seen_text.append(requests.get(f"{srv.url}/api/v2/jobs", headers={"Authorization": "Bearer key-alice"},
                                      timeout=10).text)
        seen_text.append(json.dumps(requests.get(f"{sim.url}/history", timeout=10).json()))  # ComfyUI drops it
        seen_text.append(caplog.text)
        assert all(PARTNER_KEY not in text for text in seen_text)
        assert srv.services.generator.secrets.extra_data({}) == {} and "RunSecrets(0 runs)" == repr(
            srv.services.generator.secrets)  # forgotten once the runs ended
    finally:
        srv.close()
        sim.stop()
    stored = [p for p in project.rglob("*") if p.is_file() and PARTNER_KEY.encode() in p.read_bytes()]
    assert stored == []  # not in the job store, the v2 records, the cache's sidecars, the request log


def test_a_malformed_partner_key_is_refused_without_echoing_it(server):
    r = requests.post(f"{server.url}/api/v2/jobs", json={"workflow": txt2img("x"), "extra_data": {
        "api_key_comfy_org": "has spaces in it secret"}}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    assert "secret" not in r.text and "api_key_comfy_org" in r.json()["error"]["message"]


def test_an_admin_key_lists_every_users_jobs_across_replicas(project, simulator, redis_server):  # noqa: F811
    keys = {"api_keys": KEYS, "admin_keys": ["key-root"], "redis_url": redis_server.url}
    one = ApiServer(project, simulator.url, replica_name="one", **keys)
    two = ApiServer(project, simulator.url, replica_name="two", **keys)
    try:
        alice, bob, root = client(one, "key-alice"), client(one, "key-bob"), client(two, "key-root")
        a = alice.run(alice.workflows.from_json(txt2img("alice on one")))
        b = bob.run(bob.workflows.from_json(txt2img("bob on one")))
        assert [s.id for s in root.list_jobs(limit=1)] == [b.id, a.id]  # newest first, page by page
        assert [s.id for s in client(two, "key-bob").list_jobs()] == [b.id]
    finally:
        one.close()
        two.close()


def test_a_video_output_is_kept_byte_for_byte_and_a_link_answers_it(server, project, simulator):
    """ComfyUI 0.3.64 lists SaveVideo's MP4 under the node's `images` (captured from the real server); LinkPix
    keeps it as it came (no re-encoding), lists it as a `video`, and a link answers the file itself."""
    c = client(server)
    result = c.run(c.workflows.from_json(video(txt2img("a moving fox"))))
    [out] = result.outputs
    assert result.status == "succeeded" and out.type == "video" and out.content_type == "video/mp4"
    assert out.node_id == "7" and out.name.endswith(".mp4")
    saved = requests.get(f"{simulator.url}/view", params={"filename": "lp_00001_.mp4", "subfolder": "video",
                                                          "type": "output"}, timeout=10).content
    assert saved[4:8] == b"ftyp" and out.to_bytes() == saved and out.size_bytes == len(saved)

    add_video_workflow(project)
    r = requests.get(server.url + "/prompt/a%20moving%20owl?workflow=video", timeout=60)
    assert r.status_code == 200 and r.headers["Content-Type"] == "video/mp4" and r.content[4:8] == b"ftyp"
    assert r.headers["X-LinkPix-Image-Url"].endswith(".mp4") and r.headers["Accept-Ranges"] == "bytes"
    assert int(r.headers["Content-Length"]) == len(r.content)
