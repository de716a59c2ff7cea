"""Where LoRA loaders go in the shipped graphs (SDXL, FLUX schnell's guider, Qwen edit 2509 with a photo and
references), and a LoRA only one backend of a pool has: the run goes there. Real sockets: LinkPix under
waitress, simulators behind it, graphs read back from their /history."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image
from pool_support import Sims, pool_api
from support import ApiServer, running_simulator

from linkpix.simulator import SimulatorServer

UNETS = ["flux1-schnell.safetensors", "qwen_image_edit_2509_fp8_e4m3fn.safetensors"]


def picture(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 40), colour).save(buf, "PNG")
    return buf.getvalue()


def recorded(sim: SimulatorServer) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        history = requests.get(sim.url + "/history", timeout=10).json()
        if history:
            return max(history.values(), key=lambda e: e["prompt"][0])["prompt"][2]
        time.sleep(0.02)
    raise AssertionError("no history")


def through(graph: dict[str, Any], link: list[Any], kind: str = "model") -> list[str]:
    """Class types along a model (or clip) path, nearest first."""
    out = []
    while isinstance(link, list):
        out.append(graph[link[0]]["class_type"])
        link = graph[link[0]]["inputs"].get(kind)
    return out


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatorServer]:
    with running_simulator(tmp_path / "comfyui", unets=UNETS,
                           loras=["face.safetensors", "add_detail.safetensors"]) as server:
        yield server


@pytest.fixture
def lp(project: Path, sim: SimulatorServer) -> Iterator[ApiServer]:
    server = ApiServer(project, sim.url)
    try:
        yield server
    finally:
        server.close()


def test_sdxl_and_flux_schnell(lp: ApiServer, sim: SimulatorServer) -> None:
    r = lp.get("/prompt/a%20fox%20%3Clora%3Aface%3A0.6%3E?workflow=sdxl&width=64&height=64")
    assert r.status_code == 200, r.text
    graph = recorded(sim)
    assert through(graph, graph["10"]["inputs"]["model"]) == ["LoraLoader", "CheckpointLoaderSimple"]
    for encoder in ("6", "7"):
        assert through(graph, graph[encoder]["inputs"]["clip"], "clip") == ["LoraLoader", "CheckpointLoaderSimple"]
    r = lp.get("/prompt/a%20fox%20%3Clora%3Aface%3A0.6%3E?workflow=flux_schnell&width=64&height=64")
    assert r.status_code == 200, r.text
    graph = recorded(sim)
    # FLUX: the model reaches the sampler through the guider and the scheduler; both read the LoRA
    assert through(graph, graph["22"]["inputs"]["model"]) == ["LoraLoader", "UNETLoader"]
    assert graph["17"]["inputs"]["model"] == graph["22"]["inputs"]["model"]
    assert through(graph, graph["6"]["inputs"]["clip"], "clip") == ["LoraLoader", "DualCLIPLoader"]


def test_qwen_2509_edit_keeps_the_photo_first_and_adds_the_references(lp: ApiServer, sim: SimulatorServer) -> None:
    refs = []
    for colour in ((250, 0, 0), (0, 250, 0)):
        r = requests.post(lp.url + "/uploads", data=picture(colour), headers={"Content-Type": "image/png"}, timeout=10)
        refs.append(r.json()["id"])
    r = requests.put(lp.url + "/api/characters/duo", json={"words": "the two friends", "references": refs,
                                                            "loras": [{"name": "face", "strength": 0.5}]}, timeout=10)
    assert r.status_code == 201, r.text
    photo = picture((10, 10, 200))
    r = requests.post(lp.url + "/edit", json={"image": base64.b64encode(photo).decode(), "prompt": "at a party",
                                              "char": "duo", "workflow": "character_qwen_edit_2509"}, timeout=60)
    assert r.status_code == 200, r.text
    graph = recorded(sim)
    encoder = graph[graph["3"]["inputs"]["positive"][0]]
    assert encoder["inputs"]["prompt"] == "the two friends, at a party"
    slots = [graph[encoder["inputs"][k][0]]["inputs"]["image"] for k in ("image1", "image2", "image3")]
    assert slots[1:] == refs and slots[0] not in refs  # image1: the photo being edited (LinkPix's resized copy)
    assert Image.open(sim.root / "input" / slots[0]).getpixel((0, 0)) == (10, 10, 200)
    assert through(graph, graph["3"]["inputs"]["model"]) == ["CFGNorm", "ModelSamplingAuraFlow", "LoraLoader",
                                                            "UNETLoader"]
    assert through(graph, encoder["inputs"]["clip"], "clip") == ["LoraLoader", "CLIPLoader"]


@pytest.mark.slow
def test_a_lora_only_one_backend_has_runs_there(project: Path, tmp_path: Path) -> None:
    sims = Sims(tmp_path / "pool")
    try:
        sims.start("plain", loras=["add_detail.safetensors"])
        special = sims.start("special", loras=["add_detail.safetensors", "face.safetensors"])
        api = pool_api(project, sims)
        try:
            for i in range(3):
                r = api.get(f"/prompt/portrait%20{i}%20%3Clora%3Aface%3A0.7%3E?width=64&height=64")
                assert r.status_code == 200 and r.headers["X-LinkPix-Backend"] == "special", r.text
            assert special.prompts_received == 3 and sims["plain"].prompts_received == 0
            r = api.get("/prompt/portrait%20%3Clora%3Anone_has_it%3E?width=64&height=64&format=json")
            assert r.status_code == 400
            assert "add_detail.safetensors" in r.json()["message"] and "face.safetensors" in r.json()["message"]
        finally:
            api.close()
    finally:
        sims.stop()
