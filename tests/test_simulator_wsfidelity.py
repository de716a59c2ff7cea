"""Websocket fidelity: each captured ws_sequence_*.jsonl is reproduced against the simulator.

Same sequence of message types (binary frames by event type and header fields) and the same JSON shape
per message. The scenario for each capture follows captures/README.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from simulator_support import (
    CAPTURES,
    Recorder,
    assert_same_shape,
    label,
    png,
    post_prompt,
    read_ws_capture,
    upload,
    wait_history,
    workflow,
)

from linkpix.simulator import SimulatorServer

WS_CAPTURES = sorted(p.name for p in CAPTURES.glob("ws_sequence_*.jsonl"))
NO_PREVIEW = {"ws_sequence_ksampler_no_preview.jsonl", "ws_sequence_ksampler_no_preview_warm.jsonl"}


@pytest.fixture
def make_sim(tmp_path: Path) -> Iterator[Any]:
    sims: list[SimulatorServer] = []

    def make(preview: str) -> SimulatorServer:
        sim = SimulatorServer(port=0, root=tmp_path / f"c{len(sims)}", preview_method=preview)
        sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


def txt2img(seed: int = 44, steps: int = 3) -> dict[str, Any]:
    wf = workflow("workflow_txt2img_tiny_sd15_api.json")
    wf["3"]["inputs"].update(seed=seed, steps=steps)
    return wf


def warm_up(url: str, prompt: dict[str, Any]) -> None:
    wait_history(url, post_prompt(url, prompt, "someone-else")["prompt_id"])


def scenario(name: str, sim: SimulatorServer) -> list[dict[str, Any]]:
    """Run the capture's scenario; return the recorded frames of the capturing socket."""
    url = sim.url
    if name == "ws_sequence_success.jsonl":
        rec = Recorder(url)
        return rec.until_done(post_prompt(url, workflow("workflow_emptyimage_api.json"), rec.client_id)["prompt_id"])
    if name == "ws_sequence_cached.jsonl":
        warm_up(url, workflow("workflow_emptyimage_api.json"))
        rec = Recorder(url)
        return rec.until_done(post_prompt(url, workflow("workflow_emptyimage_api.json"), rec.client_id)["prompt_id"])
    if name == "ws_sequence_img2img.jsonl":
        upload(url, "tiny_input.png", png(64, 48), subfolder="capture_tests")
        rec = Recorder(url)
        return rec.until_done(post_prompt(url, workflow("workflow_loadimage_invert_api.json"),
                                          rec.client_id)["prompt_id"])
    if name == "ws_sequence_execution_error.jsonl":
        upload(url, "corrupt_not_really.png", b"not an image", subfolder="capture_tests")
        rec = Recorder(url)
        return rec.until_done(post_prompt(url, workflow("workflow_execution_error_api.json"),
                                          rec.client_id)["prompt_id"])
    if name == "ws_sequence_interrupted.jsonl":
        sim.faults.node_delay = 0.15
        rec = Recorder(url)
        slow = workflow("workflow_slow_for_interrupt_api.json")
        slow["1"]["inputs"].update(width=64, height=64)
        quick = {"1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1,
                                                              "color": 123456}},
                 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "capture_quick"}}}
        slow_id = post_prompt(url, slow, rec.client_id)["prompt_id"]
        quick_id = post_prompt(url, quick, rec.client_id)["prompt_id"]
        rec.until(lambda f: f.get("type") == "executing" and f["data"].get("node") == "3")
        requests.post(url + "/interrupt", timeout=10)
        rec.until_done(slow_id)
        sim.faults.node_delay = 0.0
        return rec.until_done(quick_id)
    if name in ("ws_sequence_ksampler.jsonl", "ws_sequence_ksampler_no_preview.jsonl"):
        rec = Recorder(url)
        return rec.until_done(post_prompt(url, txt2img(), rec.client_id)["prompt_id"])
    if name == "ws_sequence_ksampler_after_free.jsonl":
        warm_up(url, txt2img(1))
        r = requests.post(url + "/free", json={"unload_models": True, "free_memory": True}, timeout=10)
        assert (r.status_code, r.content) == (200, b"")
        rec = Recorder(url)
        return rec.until_done(post_prompt(url, txt2img(2), rec.client_id)["prompt_id"])
    if name in ("ws_sequence_ksampler_no_preview_warm.jsonl", "ws_sequence_ksampler_preview_metadata.jsonl"):
        warm_up(url, txt2img(1))
        rec = Recorder(url, feature_flags=name.endswith("metadata.jsonl"))
        return rec.until_done(post_prompt(url, txt2img(2), rec.client_id)["prompt_id"])
    if name == "ws_sequence_ksampler_interrupted.jsonl":
        warm_up(url, txt2img(1))
        sim.faults.step_delay = 0.25
        rec = Recorder(url)
        pid = post_prompt(url, txt2img(2, steps=300), rec.client_id)["prompt_id"]
        rec.until(lambda f: f.get("type") == "progress" and f["data"]["value"] >= 5)
        requests.post(url + "/interrupt", json={"prompt_id": pid}, timeout=10)
        return rec.until_done(pid)
    raise AssertionError(f"no scenario for {name}")


def comparable(frames: list[dict[str, Any]], drop_status: bool) -> list[dict[str, Any]]:
    if not drop_status:
        return frames
    return [f for f in frames if f.get("type") != "status"]


def test_every_ws_capture_has_a_scenario() -> None:
    assert len(WS_CAPTURES) == 11


@pytest.mark.slow
@pytest.mark.parametrize("name", WS_CAPTURES)
def test_ws_sequence_matches_capture(make_sim: Any, name: str) -> None:
    sim = make_sim("none" if name in NO_PREVIEW else "auto")
    # Where the capture's second POST raced the first prompt's start, status positions are timing.
    drop_status = name == "ws_sequence_interrupted.jsonl"
    want = comparable(read_ws_capture(name), drop_status)
    got = comparable(scenario(name, sim), drop_status)
    assert [label(f) for f in got] == [label(f) for f in want]
    for w, g in zip(want, got, strict=True):
        if w.get("_binary_frame"):
            for key in ("event_type_be_u32", "image_format_be_u32", "image_magic_hex"):
                assert g.get(key) == w.get(key), (key, g)
            if "metadata" in w:
                assert_same_shape(w["metadata"], g["metadata"])
                assert g["metadata"]["image_type"] == w["metadata"]["image_type"]
        else:
            assert_same_shape(w, g)
            if w["type"] == "status":
                assert g["data"]["status"] == w["data"]["status"]
            if w["type"] in ("executing", "executed", "progress"):
                assert g["data"].get("node") == w["data"].get("node")
            if w["type"] == "execution_cached":
                assert g["data"]["nodes"] == w["data"]["nodes"]
            if w["type"] == "progress_state":
                assert {k: (v["value"], v["max"], v["state"]) for k, v in g["data"]["nodes"].items()} == \
                       {k: (v["value"], v["max"], v["state"]) for k, v in w["data"]["nodes"].items()}
            if w["type"] in ("execution_error", "execution_interrupted"):
                for key in ("node_id", "node_type", "exception_type"):
                    assert g["data"].get(key) == w["data"].get(key)
                assert sorted(g["data"]["executed"]) == sorted(w["data"]["executed"])
