"""A run's image fetched and staged from its `executed` event (pipeline/early.py), over the simulator with a
real ComfyClient and a real cache: published only once the history confirms the run, dropped otherwise,
never left behind as a half entry or a temporary file."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from linkpix.comfy import ComfyClient
from linkpix.comfy.events import output_refs
from linkpix.errors import ExecutionFailed
from linkpix.model import RenderedJob
from linkpix.pipeline.early import EarlyImage
from linkpix.storage.cache import ImageCache

CAPTURES = Path(__file__).parent / "comfyui_captures"
KEY = "a" * 32


def graph(color: int, failing_branch: bool = False) -> dict:
    """EmptyImage -> ImageBlur -> ImageInvert -> SaveImage; with `failing_branch`, EmptyImage -> ImageInvert
    -> SaveImage and a second output (ImageBlur -> PreviewImage) that runs after the SaveImage, so that an
    ImageBlur made to fail fails the run after its image was saved and reported."""
    g = json.loads((CAPTURES / "workflow_emptyimage_api.json").read_text())
    g["1"]["inputs"].update(width=40, height=24, color=color)
    if failing_branch:
        g["3"]["inputs"]["image"] = ["1", 0]
        g["2"] = {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 1, "sigma": 1.0}}
        g["5"] = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    return g


def job() -> RenderedJob:
    return RenderedJob(graph={}, workflow="test", prompt="early", negative="", seed=1, seed_is_random=False,
                       params={}, output_format="png", uploads=(), ignored=())


@pytest.fixture
def client(simulator) -> Iterator[ComfyClient]:
    comfy = ComfyClient(simulator.url, read_timeout=10.0)
    try:
        yield comfy
    finally:
        comfy.close()


def files(cache: ImageCache) -> list[str]:
    folder = cache.root / "alice"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def settle(cache: ImageCache, expected: list[str]) -> list[str]:
    """The cache folder once background writes ended (a dropped stage is removed when its write ends)."""
    deadline = time.monotonic() + 5
    while files(cache) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return files(cache)


def test_the_image_staged_at_executed_is_published_once_the_history_confirms_it(simulator, client, tmp_path):
    cache = ImageCache(tmp_path / "cache")
    early = EarlyImage(client, cache, job(), "alice", KEY, time.monotonic(), strip=False)
    prompt_id = client.submit(graph(0x3366CC))
    entry = client.wait(prompt_id, 10, early.see)
    outputs, meta, staged = early.outputs(prompt_id, entry)
    assert staged is not None, "the executed event should have started the early download"
    (output,) = outputs
    assert cache.get("alice", KEY) is None  # written and synced, not visible
    stored = staged.commit()
    early.discard()
    image = entry["outputs"]["4"]["images"][0]
    direct = requests.get(simulator.url + "/view", params=image, timeout=5).content
    assert stored.path.read_bytes() == output.data == direct
    assert meta["prompt_id"] == prompt_id and meta["comfy_filename"] == image["filename"]
    assert meta["node_id"] == "4" and meta["outputs"] == []  # as pipeline/outputs.py stores a run's only image
    assert (meta["width"], meta["height"]) == (40, 24) == (stored.meta["width"], stored.meta["height"])
    assert cache.get("alice", KEY).meta["prompt_id"] == prompt_id
    assert files(cache) == [KEY + ".json", KEY + ".png"]


def test_a_run_that_fails_after_its_image_was_saved_leaves_nothing_in_the_cache(simulator, client, tmp_path):
    simulator.faults.fail_class = "ImageBlur"  # the second branch's ImageBlur, after SaveImage ran
    g = graph(0x00AA00, failing_branch=True)
    cache = ImageCache(tmp_path / "cache")
    early = EarlyImage(client, cache, job(), "alice", KEY, time.monotonic(), strip=False)
    seen: list[str] = []
    prompt_id = client.submit(g)
    with pytest.raises(ExecutionFailed):
        client.wait(prompt_id, 10, lambda e: (seen.append(e.type), early.see(e)))
    early.discard()
    assert "executed" in seen  # the SaveImage did report its file before the failure
    deadline = time.monotonic() + 5  # the early download runs in the background: it was made, then dropped
    while simulator.stats.requests.get("GET /view") != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert simulator.stats.requests.get("GET /view") == 1
    time.sleep(0.3)  # its staged files, written after the download, are removed once written
    assert settle(cache, []) == [] and cache.get("alice", KEY) is None


def test_an_entry_naming_another_first_image_takes_that_one_and_drops_the_staged_files(simulator, client,
                                                                                        tmp_path):
    cache = ImageCache(tmp_path / "cache")
    other_id = client.submit(graph(0xFFFFFF))
    other = client.wait(other_id, 10)
    early = EarlyImage(client, cache, job(), "alice", KEY, time.monotonic(), strip=False)
    prompt_id = client.submit(graph(0x112233))
    client.wait(prompt_id, 10, early.see)
    outputs, meta, staged = early.outputs(other_id, other)  # a history naming another file than the event did
    assert staged is None and meta is None
    assert [o.filename for o in outputs] == [other["outputs"]["4"]["images"][0]["filename"]]
    early.discard()
    assert settle(cache, []) == []


def test_a_run_with_two_saved_images_gives_both_and_stages_nothing(simulator, client, tmp_path):
    """Several outputs are stored together (pipeline/outputs.py): the early download still serves the first."""
    g = graph(0x445566)
    g["5"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "second"}}
    cache = ImageCache(tmp_path / "cache")
    early = EarlyImage(client, cache, job(), "alice", KEY, time.monotonic(), strip=False)
    prompt_id = client.submit(g)
    entry = client.wait(prompt_id, 10, early.see)
    outputs, meta, staged = early.outputs(prompt_id, entry)
    early.discard()
    assert staged is None and meta is None
    assert [o.node_id for o in outputs] == [ref[0] for ref in output_refs(entry["outputs"])] and len(outputs) == 2
    assert simulator.stats.requests.get("GET /view") == 2  # the first one was not downloaded twice
    assert settle(cache, []) == []
