"""A frozen ComfyUI (the simulator's freeze(), like `kill -STOP`): the client never holds a caller for long,
and no prompt is left behind in ComfyUI once it answers again. Over real sockets."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from jobs_support import wait_until
from test_comfy_client import in_thread, sampling_started, small_graph, txt2img_graph

from linkpix.comfy import ComfyClient, Event
from linkpix.comfy.stops import StopList
from linkpix.errors import BackendUnavailable, BadRequest, GenerationTimeout
from linkpix.simulator import SimulatorServer

# Slow (docs/testing.md): a frozen ComfyUI: each test waits out timeouts and probes.
pytestmark = pytest.mark.slow


def comfy_queue(sim: SimulatorServer) -> list[str]:
    """Every prompt id ComfyUI still runs or holds (asked over HTTP, as a client would)."""
    body = requests.get(f"{sim.url}/queue", timeout=5).json()
    return [item[1] for item in body["queue_running"] + body["queue_pending"]]


@pytest.fixture
def client(simulator: SimulatorServer) -> Iterator[ComfyClient]:
    comfy = ComfyClient(simulator.url)
    try:
        yield comfy
    finally:
        comfy.close()


@pytest.fixture
def thawing(simulator: SimulatorServer) -> Iterator[SimulatorServer]:
    """The simulator, thawed again whatever the test does (a frozen one cannot be stopped cleanly)."""
    try:
        yield simulator
    finally:
        simulator.thaw()


def test_new_work_is_refused_within_two_seconds_then_at_once(thawing, client):
    client.run(small_graph(), timeout=10)
    thawing.freeze()
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="did not answer POST /prompt within 1.5 s"):
        client.run(small_graph(color=1), timeout=30)
    assert time.monotonic() - started < 2.0
    again = time.monotonic()
    with pytest.raises(BackendUnavailable, match="is not answering"):
        client.run(small_graph(color=2), timeout=30)
    assert time.monotonic() - again < 0.2
    assert client.health.frozen
    thawing.thaw()
    wait_until(lambda: client.health.up, 5, "the keeper to see ComfyUI answer again")
    assert client.run(small_graph(color=3), timeout=10)[0].data
    # The submit whose answer never came was queued after the thaw, and removed by the stop list.
    wait_until(lambda: client.stops.count() == 0, 10, "the stop list to drain")
    assert comfy_queue(thawing) == []


def test_a_run_frozen_midway_times_out_within_its_timeout_and_is_stopped_after_the_thaw(thawing, client):
    thawing.faults.hang = True
    events: list[Event] = []
    started = sampling_started(events)
    thread, outcome = in_thread(client.run, txt2img_graph(), 3.0, started.on_event)
    assert started.wait(10)
    prompt_id = events[-1].prompt_id
    began = time.monotonic()
    thawing.freeze()
    thread.join(10)
    error = outcome.get("error")
    assert isinstance(error, GenerationTimeout), outcome
    assert time.monotonic() - began < 3.0 + 2.0
    assert prompt_id in error.message and "removes it as soon as ComfyUI answers again" in error.message
    assert client.stops.contains(client.base_url, prompt_id)
    thawing.thaw()
    wait_until(lambda: comfy_queue(thawing) == [], 10, "the frozen prompt to be interrupted after the thaw")
    wait_until(lambda: client.stops.count() == 0, 10, "the stop list to drain")
    entry = requests.get(f"{thawing.url}/history/{prompt_id}", timeout=5).json()[prompt_id]
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"


def test_the_stop_list_survives_a_restart_of_linkpix(thawing, tmp_path: Path):
    path = tmp_path / "data" / "comfy_stops.sqlite3"
    thawing.faults.hang = True
    first = ComfyClient(thawing.url, stops=StopList(path))
    running = first.submit(txt2img_graph())
    waiting = first.submit(small_graph(color=9))
    wait_until(lambda: comfy_queue(thawing) == [running, waiting], 5, "both prompts in ComfyUI's queue")
    thawing.freeze()
    first.stop(running, "cancelled")  # cannot reach ComfyUI: recorded only
    first.stop(waiting, "cancelled")
    first.close()
    first.stops.close()
    thawing.thaw()
    assert comfy_queue(thawing) == [running, waiting]
    second = ComfyClient(thawing.url, stops=StopList(path))
    try:
        wait_until(lambda: comfy_queue(thawing) == [], 10, "the restarted LinkPix to stop both prompts")
        wait_until(lambda: second.stops.count() == 0, 10, "the stop list to drain")
    finally:
        second.close()
        second.stops.close()


def test_cancel_during_a_freeze_answers_at_once(thawing, client):
    thawing.faults.step_delay = 0.05
    prompt_id = client.submit(txt2img_graph(steps=200))
    wait_until(lambda: comfy_queue(thawing) == [prompt_id], 5, "the prompt to run")
    thawing.freeze()
    with pytest.raises(BackendUnavailable):
        client.control.queue()  # learns that ComfyUI is frozen
    started = time.monotonic()
    client.stop(prompt_id, "cancelled by the client")
    assert time.monotonic() - started < 0.2
    thawing.thaw()
    wait_until(lambda: comfy_queue(thawing) == [], 10, "the prompt to be interrupted after the thaw")


def test_one_log_line_per_state_change_and_no_urllib3_retry_warnings(thawing, client, caplog):
    client.ping()
    with caplog.at_level(logging.DEBUG):
        thawing.freeze()
        for _ in range(5):
            with pytest.raises(BackendUnavailable):
                client.control.queue()
        thawing.thaw()
        wait_until(lambda: client.health.up, 5, "ComfyUI to answer again")
        thawing.pause()
        try:
            for _ in range(5):
                with pytest.raises(BackendUnavailable):
                    client.submit(small_graph())
        finally:
            thawing.resume()
        wait_until(lambda: client.health.up, 5, "ComfyUI to answer again")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [w for w in warnings if "Retrying" in w], warnings
    states = [w for w in warnings if w.startswith("ComfyUI at ")]
    kinds = ["frozen" if "is not answering" in w else "refused" if "is unreachable" in w else "up"
             for w in states if "is not answering" in w or "is unreachable" in w or "answers again (it was" in w]
    # One line per change of state, not per failed call (ten calls failed): each line differs from the one
    # before. Under load a late answer to a call made before the pause may briefly count as "up" again, a
    # real change that is logged, so a few more lines than the minimum four may come.
    assert kinds[0] == "frozen" and kinds.count("frozen") == 1 and "refused" in kinds and kinds[-1] == "up", states
    assert all(a != b for a, b in zip(kinds, kinds[1:], strict=False)) and len(kinds) <= 6, states


def test_prompt_ids_are_canonical_uuids(client):
    upper = "9E15C1D2-0B7A-4C4B-8C2E-2F6A1D9A3B4C"
    assert client.submit(small_graph(color=4), prompt_id=upper) == upper.lower()
    assert client.wait(upper.lower(), timeout=10)["status"]["status_str"] == "success"
    with pytest.raises(BadRequest, match="not a UUID"):
        client.submit(small_graph(color=5), prompt_id="my-prompt")


def test_a_reattached_prompt_reports_its_progress(simulator):
    simulator.faults.step_delay = 0.05
    first = ComfyClient(simulator.url)
    prompt_id = first.submit(txt2img_graph(steps=12))
    first.close()  # LinkPix went away; its socket with it
    events: list[Event] = []
    with ComfyClient(simulator.url) as second:
        entry = second.wait(prompt_id, timeout=20, on_event=events.append, reattach=True)
    assert entry["status"]["status_str"] == "success"
    progress = [e.data for e in events if e.type == "progress"]
    assert progress and progress[-1]["value"] == progress[-1]["max"] == 12
