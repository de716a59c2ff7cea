"""Graphs whose guider takes more than one positive conditioning besides a negative (issue 15 item 8).

ComfyUI's own templates put the *negative* text into DualCFGGuider's second conditioning: OmniGen2's edit
template through a ReferenceLatent (cond2 = negative text + reference image), CosXL's edit example through
the `negative` output of InstructPixToPixConditioning. The two workflows in tests/data are built the same
way (API format, as "Export (API)" writes them); the prompt must land in the positive encoder only, the
negative prompt in the negative one, and the simulator (which validates like ComfyUI 0.3.64) must accept
and run the result.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from linkpix.config import load_config
from linkpix.model import GenerationRequest, RenderedJob, make_input_image
from linkpix.pipeline.resolver import Resolver
from linkpix.render.placeholders import Registry
from linkpix.render.workflows import WorkflowTemplate
from linkpix.simulator import SimulatorServer
from linkpix.storage.jsonstore import JsonStore

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
WORKFLOWS = ("omnigen2_edit_api.json", "cosxl_edit_api.json")
# The model files those graphs name, as a ComfyUI with them installed lists them.
MODELS = {"checkpoints": ["cosxl_edit.safetensors"], "diffusion_models": ["omnigen2_fp16.safetensors"],
          "text_encoders": ["qwen_2.5_vl_fp16.safetensors"], "vae": ["ae.safetensors"]}
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c63f8cfc0f01f00050001ff89993d1d0000000049454e44ae426082")
PROMPT, NEGATIVE = "a lighthouse made of blue glass", "smudged, noisy"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(json.loads((ROOT / "data" / "placeholders.json").read_text(encoding="utf-8")))


def targets(graph: dict[str, Any], registry: Registry) -> dict[str, list[str]]:
    template = WorkflowTemplate("x.json", graph, registry)
    return {name: [f"{t.node}.{t.input}" for t in b.slots] for name, b in template.params.items()}


@pytest.mark.parametrize("name", WORKFLOWS)
def test_template_shapes_send_the_prompt_to_the_positive_encoder_only(name: str, registry: Registry) -> None:
    graph = json.loads((DATA / name).read_text(encoding="utf-8"))
    found = targets(graph, registry)
    assert found["prompt"] == ["6.text"]
    assert found["negative_prompt"] == ["7.text"]
    assert found["cfg"] == [next(n for n, v in graph.items() if v["class_type"] == "DualCFGGuider") + ".cfg_conds"]


def _dual(cond2_text: str | None) -> dict[str, Any]:
    """A DualCFGGuider graph; cond2 from its own encoder (cond2_text) or from the negative one (None)."""
    graph: dict[str, Any] = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "m.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "primary", "clip": ["9", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "negative", "clip": ["9", 0]}},
        "5": {"class_type": "DualCFGGuider", "inputs": {"model": ["1", 0], "cond1": ["2", 0], "cond2": ["4", 0],
                                                        "negative": ["4", 0], "cfg_conds": 5.0,
                                                        "cfg_cond2_negative": 2.0, "style": "regular"}},
        "6": {"class_type": "SamplerCustomAdvanced", "inputs": {"guider": ["5", 0]}},
        "9": {"class_type": "CLIPLoader", "inputs": {"clip_name": "c.safetensors", "type": "omnigen2"}},
    }
    if cond2_text is not None:
        graph["3"] = {"class_type": "CLIPTextEncode", "inputs": {"text": cond2_text, "clip": ["9", 0]}}
        graph["5"]["inputs"]["cond2"] = ["3", 0]
    return graph


def test_a_second_positive_with_its_own_encoder_also_gets_the_prompt(registry: Registry) -> None:
    found = targets(_dual("secondary"), registry)
    assert found["prompt"] == ["2.text", "3.text"] and found["negative_prompt"] == ["4.text"]
    found = targets(_dual(None), registry)  # cond2 shares the negative's encoder: never the prompt's
    assert found["prompt"] == ["2.text"] and found["negative_prompt"] == ["4.text"]


def test_sided_nodes_and_unknown_guiders_keep_their_sides(registry: Registry) -> None:
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "pos a", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "neg a", "clip": ["1", 1]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "pos b", "clip": ["1", 1]}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": "neg b", "clip": ["1", 1]}},
        "6": {"class_type": "PairConditioningCombine", "inputs": {"positive_A": ["2", 0], "negative_A": ["3", 0],
                                                                  "positive_B": ["4", 0], "negative_B": ["5", 0]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "image words", "clip": ["1", 1]}},
        # A guider LinkPix has no table for (as custom nodes and newer ComfyUI add): read by input names.
        "8": {"class_type": "SenseNovaEditGuider", "inputs": {"model": ["1", 0], "positive": ["6", 0],
                                                              "image_condition": ["7", 0], "negative": ["6", 1],
                                                              "cfg": 4.0, "img_cfg": 1.0}},
        "9": {"class_type": "SamplerCustomAdvanced", "inputs": {"guider": ["8", 0]}},
    }
    found = targets(graph, registry)
    assert found["prompt"] == ["2.text", "4.text"]
    assert found["negative_prompt"] == ["3.text", "5.text"]
    assert "7.text" not in sum(found.values(), [])  # the image condition is neither side


def test_one_encoder_wired_to_both_sides_and_no_other_stays_the_prompt(registry: Registry) -> None:
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "only one", "clip": ["1", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0],
                                                   "seed": 1, "cfg": 1.0}},
    }
    found = targets(graph, registry)
    assert found["prompt"] == ["2.text"] and "negative_prompt" not in found


@pytest.fixture
def sim_with_models(tmp_path: Path) -> Iterator[SimulatorServer]:
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "comfyui", step_delay=0.0, models=MODELS)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def submit(simulator: SimulatorServer, job: RenderedJob) -> dict[str, Any]:
    """POST the graph as LinkPix would; wait for its history entry; return it."""
    for upload in job.uploads:
        files = {"image": (upload.name, upload.data, "image/png")}
        r = requests.post(simulator.url + "/upload/image", files=files, data={"overwrite": "true"}, timeout=10)
        assert r.status_code == 200, r.text
    r = requests.post(simulator.url + "/prompt", json={"prompt": job.graph, "client_id": "linkpix-test"}, timeout=10)
    assert r.status_code == 200, r.text
    prompt_id = r.json()["prompt_id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        history = requests.get(f"{simulator.url}/history/{prompt_id}", timeout=10).json()
        if prompt_id in history:
            return history[prompt_id]
        time.sleep(0.02)
    raise AssertionError("the simulator never finished the prompt")


@pytest.mark.parametrize("name", WORKFLOWS)
def test_the_simulator_runs_them_with_the_prompt_on_the_positive_side(name: str, project: Path,
                                                                      sim_with_models: SimulatorServer) -> None:
    shutil.copy(DATA / name, project / "workflows" / name)
    info = requests.get(sim_with_models.url + "/object_info", timeout=10).json()
    cfg = load_config(project / "config.json", use_env=False)
    resolver = Resolver(lambda: cfg, JsonStore(), lambda: info)
    request = GenerationRequest(prompt=PROMPT, workflow=name, input_images=(make_input_image(PNG),),
                                params={"negative_prompt": NEGATIVE}, seed=7)
    entry = submit(sim_with_models, resolver.resolve(request))
    assert entry["status"]["status_str"] == "success"
    assert any(out.get("images") for out in entry["outputs"].values())
    received = entry["prompt"][2]
    texts = {nid: node["inputs"]["text"] for nid, node in received.items() if "text" in node["inputs"]}
    assert texts == {"6": PROMPT, "7": NEGATIVE}
