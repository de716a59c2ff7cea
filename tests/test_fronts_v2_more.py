"""The Comfy API v2 front's later parts, over real sockets with the real `comfy-sdk`: `canceling` and
`log` events, previews that name their node, several outputs per job, combo values checked at submit,
admin keys, and partner-node keys (`extra_data.api_key_comfy_org`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from comfy_sdk import Log, Preview, Progress, StatusChange
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
        assert statuses[0] == "canceling" and statuses[-1] == "canceled"
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
        previews = [e for e in job.events() if isinstance(e, Preview)]
        assert previews and {p.node_id for p in previews} == {"5"}  # demo.json's KSampler
    finally:
        srv.close()
