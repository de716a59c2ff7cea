"""The client with ComfyUI 0.3.64 and with today's ComfyUI (issue 15 item 7): it asks each server what it
has and uses the newer routes where they exist. tests/test_comfy_client.py runs the client's whole
behaviour against both simulator profiles; this module checks which routes it took, and the LinkPix API
on top of today's ComfyUI."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support import ApiServer, running_simulator
from test_comfy_client import in_thread, sampling_started, small_graph, txt2img_graph

from linkpix.comfy import ComfyClient, Event
from linkpix.comfy.features import parse_version
from linkpix.errors import GenerationTimeout
from linkpix.simulator import SimulatorServer
from linkpix.simulator.profiles import get_profile

LEGACY_CALLS = ("GET /queue", "GET /api/queue", "POST /interrupt", "POST /queue")


@pytest.fixture(params=["0.3.64", "current"])
def sim(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SimulatorServer]:
    with running_simulator(tmp_path / "comfyui", step_delay=0.0, profile=request.param) as server:
        yield server


def current(sim: SimulatorServer) -> bool:
    return sim.profile.name == "current"


def test_versions_compare_as_versions_never_as_floats() -> None:
    assert parse_version("0.38.1") == (0, 38, 1)
    assert parse_version("0.3.64-linkpix-simulator") == (0, 3, 64)
    assert parse_version("v0.7.0") == (0, 7, 0)
    assert parse_version("0.3.64") < parse_version("0.7.0") < parse_version("0.38.1")  # 0.38 < 0.7 as floats
    assert parse_version("nightly") is None and parse_version(None) is None


def test_the_client_asks_once_which_routes_the_server_has(sim: SimulatorServer) -> None:
    with ComfyClient(sim.url) as client:
        assert client.features.known()["jobs_api"] is None  # nothing asked before it matters
        images = client.run(small_graph(), timeout=10)
        assert images[0].data.startswith(b"\x89PNG")
        assert client.control.queue() == {"running": [], "pending": []}
        assert client.features.jobs_api() is current(sim)
        assert client.control.queue() == {"running": [], "pending": []}
    asked = sim.stats.requests
    assert asked["GET /api/jobs"] <= 3  # the one probe (+ the job lists of current's two queue() calls)
    if current(sim):
        assert asked["GET /api/jobs"] == 3 and asked["GET /queue"] == 0
    else:
        assert asked["GET /api/jobs"] == 1 and asked["GET /queue"] == 2


def test_stopping_uses_the_cancel_route_where_there_is_one(sim: SimulatorServer) -> None:
    sim.faults.hang = True
    with ComfyClient(sim.url) as client:
        blocker = client.submit(txt2img_graph())
        with pytest.raises(GenerationTimeout, match="removed from the queue"):
            client.run(small_graph(color=2), timeout=0.3)  # pending behind the blocker: dequeued
        with pytest.raises(GenerationTimeout, match="it was interrupted"):
            client.wait(blocker, timeout=0.3)  # running: interrupted
        deadline = time.monotonic() + 5
        while client.control.queue() != {"running": [], "pending": []}:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert client.stops.count() == 0
    asked = sim.stats.requests
    if current(sim):
        assert asked["POST /api/jobs/{job_id}/cancel"] >= 2
        assert not any(asked[call] for call in LEGACY_CALLS)
    else:
        assert asked["POST /api/jobs/{job_id}/cancel"] == 0 and asked["POST /interrupt"] >= 1
        assert asked["POST /queue"] >= 1


def test_a_reattached_prompt_is_found_by_its_job(sim: SimulatorServer) -> None:
    """After a LinkPix restart its prompts run under the old client id; on today's servers the job says
    which (no need to download every queued graph)."""
    sim.faults.step_delay = 0.05
    first = ComfyClient(sim.url)
    prompt_id = first.submit(txt2img_graph(steps=8))
    first.close()
    events: list[Event] = []
    with ComfyClient(sim.url) as second:
        entry = second.wait(prompt_id, timeout=20, on_event=events.append, reattach=True)
    assert entry["status"]["status_str"] == "success"
    assert [e.data["value"] for e in events if e.type == "progress"][-1] == 8
    asked = sim.stats.requests
    assert (asked["GET /api/jobs/{job_id}"] > 0) is current(sim)
    assert (asked["GET /queue"] == 0) is current(sim)


def test_a_server_upgraded_behind_the_same_url_is_asked_again(tmp_path: Path) -> None:
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "comfyui", step_delay=0.0)
    sim.start()
    try:
        with ComfyClient(sim.url) as client:
            client.features.note_version(client.system_stats()["system"]["comfyui_version"])
            assert client.features.jobs_api() is False
            sim.profile = get_profile("current")
            sim.restart()  # same port, today's ComfyUI
            client.features.note_version(client.system_stats()["system"]["comfyui_version"])
            assert client.features.parsed_version == (0, 38, 1)
            assert client.features.jobs_api() is True
            events: list[Event] = []
            started = sampling_started(events)
            sim.faults.hang = True
            thread, outcome = in_thread(client.run, txt2img_graph(), 20, started.on_event)
            assert started.wait(10)
            assert client.control.queue()["running"] == [events[-1].prompt_id]
            sim.faults.hang = False
            thread.join(20)
            assert outcome.get("result"), outcome
    finally:
        sim.stop()


@pytest.fixture
def api_on_current(project: Path, tmp_path: Path) -> Iterator[tuple[ApiServer, SimulatorServer]]:
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "current", step_delay=0.0, profile="current")
    sim.start()
    server = ApiServer(project, sim.url)
    try:
        yield server, sim
    finally:
        server.close()
        sim.stop()


def test_linkpix_on_todays_comfyui(api_on_current: tuple[ApiServer, SimulatorServer]) -> None:
    api, sim = api_on_current
    r = api.get("/prompt/a%20lighthouse", params={"format": "json"})
    assert r.status_code == 200 and r.json()["cache"] == "miss"
    assert api.get(r.json()["url"]).content.startswith(b"\x89PNG")
    sim.faults.hang = True
    job = requests.post(api.url + "/generate", json={"prompt": "held in the sampler"}, timeout=10).json()
    deadline = time.monotonic() + 10
    while api.get(f"/jobs/{job['job_id']}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert requests.delete(f"{api.url}/jobs/{job['job_id']}", timeout=10).json()["status"] == "cancelled"
    while sim.stats.requests["POST /api/jobs/{job_id}/cancel"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert sim.stats.requests["POST /interrupt"] == 0
    health = api.get("/health").json()
    assert health["comfyui_version"] == "0.38.1-linkpix-simulator"
    assert health["backends"][0]["jobs_api"] is True
