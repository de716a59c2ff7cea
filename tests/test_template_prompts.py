"""Workflows as ComfyUI's newer templates write them (issue 23 item 6): the prompt in a PrimitiveStringMultiline /
PrimitiveString `value` or built by StringConcatenate, inside subgraphs whose exported ids look like `48:51`.
Run through LinkPix under waitress against the simulator; the graphs are read back from its /history."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support import ApiServer

from linkpix.simulator import SimulatorServer


def node(cls: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": cls, "inputs": inputs}


def template(text_source: dict[str, dict[str, Any]], text_link: list[Any]) -> dict[str, Any]:
    """An SD1.5 graph in a subgraph's exported ids, its positive text read from `text_link`."""
    return {
        "48:4": node("CheckpointLoaderSimple", ckpt_name="v1-5-pruned-emaonly.safetensors"),
        **text_source,
        "48:6": node("CLIPTextEncode", text=text_link, clip=["48:4", 1]),
        "48:7": node("CLIPTextEncode", text="ugly", clip=["48:4", 1]),
        "48:5": node("EmptyLatentImage", width=512, height=512, batch_size=1),
        "48:3": node("KSampler", seed=5, steps=20, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=1.0,
                     model=["48:4", 0], positive=["48:6", 0], negative=["48:7", 0], latent_image=["48:5", 0]),
        "48:8": node("VAEDecode", samples=["48:3", 0], vae=["48:4", 2]),
        "9": node("SaveImage", images=["48:8", 0], filename_prefix="t"),
    }


TEMPLATES = {
    "multiline": template({"48:51": node("PrimitiveStringMultiline", value="a template's prompt")}, ["48:51", 0]),
    "string": template({"48:51": node("PrimitiveString", value="a template's prompt")}, ["48:51", 0]),
    "concat": template({"48:60": node("PrimitiveStringMultiline", value="a template's prompt"),
                        "48:61": node("StringConcatenate", string_a="masterpiece", string_b=["48:60", 0],
                                      delimiter=", ")}, ["48:61", 0]),
    "concat_plain": template({"48:61": node("StringConcatenate", string_a="a template's prompt",
                                            string_b="highly detailed", delimiter=", ")}, ["48:61", 0]),
}
WHERE = {"multiline": ("48:51", "value"), "string": ("48:51", "value"), "concat": ("48:60", "value"),
         "concat_plain": ("48:61", "string_a")}


@pytest.fixture
def lp(project: Path, simulator: SimulatorServer) -> Iterator[ApiServer]:
    for name, graph in TEMPLATES.items():
        (project / "workflows" / f"tpl_{name}.json").write_text(json.dumps(graph), encoding="utf-8")
    server = ApiServer(project, simulator.url)
    try:
        yield server
    finally:
        server.close()


def recorded(sim: SimulatorServer) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        history = requests.get(sim.url + "/history", timeout=10).json()
        if history:
            return max(history.values(), key=lambda e: e["prompt"][0])["prompt"][2]
        time.sleep(0.02)
    raise AssertionError("no history")


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_the_prompt_is_found_behind_the_encoder(lp: ApiServer, simulator: SimulatorServer, name: str) -> None:
    described = lp.get(f"/api/workflows/tpl_{name}")
    assert described.status_code == 200, described.text
    prompt = described.json()["parameters"]["prompt"]
    node_id, inp = WHERE[name]
    assert prompt["source"] == "detected" and [t["node"] for t in prompt["targets"]] == [node_id]
    r = lp.get(f"/prompt/a%20lighthouse%20%3Clora%3Aadd_detail%3A0.5%3E?workflow=tpl_{name}&width=64&height=64")
    assert r.status_code == 200, r.text
    graph = recorded(simulator)
    assert graph[node_id]["inputs"][inp] == "a lighthouse"
    if name == "concat":
        assert graph["48:61"]["inputs"]["string_a"] == "masterpiece"  # the template's own part stays
    if name == "concat_plain":
        assert graph["48:61"]["inputs"]["string_b"] == "highly detailed"
    lora = graph[graph["48:3"]["inputs"]["model"][0]]  # the LoRA sits behind subgraph ids too
    assert lora["class_type"] == "LoraLoader" and lora["inputs"]["model"] == ["48:4", 0]
    chain_end = [graph["48:3"]["inputs"]["model"][0], 1]
    assert graph["48:6"]["inputs"]["clip"] == graph["48:7"]["inputs"]["clip"] == chain_end
