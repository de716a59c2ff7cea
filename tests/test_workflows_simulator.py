"""Every shipped workflow, rendered through each binding source, is accepted by the ComfyUI simulator
(which validates POST /prompt exactly like ComfyUI) and the node inputs it received are the ones we meant."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from linkpix.config import load_config
from linkpix.errors import BadRequest
from linkpix.model import GenerationRequest, RenderedJob, make_input_image
from linkpix.pipeline.request import parse_query
from linkpix.pipeline.resolver import Resolver
from linkpix.storage.jsonstore import JsonStore

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = 'a "fox" with %model% and {{braces}}, back\\slash\nnew line 😀'
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"  # 1x1 red, decodes fully
                    "1f15c4890000000d49444154789c63f8cfc0f01f00050001ff89993d1d0000000049454e44ae426082")


@pytest.fixture
def resolver(project: Path, simulator: Any) -> Resolver:
    info = requests.get(simulator.url + "/object_info", timeout=10).json()
    cfg = load_config(project / "config.json", use_env=False)
    return Resolver(lambda: cfg, JsonStore(), lambda: info)


def submit(simulator: Any, job: RenderedJob) -> dict[str, Any]:
    """POST the graph; wait for its history entry; return the graph ComfyUI recorded (after coercion)."""
    for upload in job.uploads:
        files = {"image": (upload.name, upload.data, "image/png")}
        r = requests.post(simulator.url + "/upload/image", files=files, data={"overwrite": "true"}, timeout=10)
        assert r.status_code == 200, r.text
    r = requests.post(simulator.url + "/prompt", json={"prompt": job.graph, "client_id": "linkpix-test"}, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["node_errors"] == {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        history = requests.get(f"{simulator.url}/history/{body['prompt_id']}", timeout=10).json()
        if body["prompt_id"] in history:
            return history[body["prompt_id"]]["prompt"][2]
        time.sleep(0.02)
    raise AssertionError("the simulator never finished the prompt")


@pytest.mark.parametrize("workflow, source, text_node", [
    ("sd15.json", "placeholder", "6"),
    ("demo.json", "placeholder", "2"),
    ("sdxl.json", "yaml", "6"),
    ("flux_schnell.json", "detected", "6"),
    ("sd15_img2img.json", "detected", "6"),
])
def test_each_shipped_workflow_is_accepted(resolver: Resolver, simulator: Any, workflow: str, source: str,
                                           text_node: str) -> None:
    assert resolver.describe_workflow(workflow)["parameters"]["prompt"]["source"] == source
    query = {"workflow": workflow, "seed": "12345", "steps": "3", "negative": "blurry"}
    if workflow != "sd15_img2img.json":
        query.update(width="512", height="384")
    else:  # it edits an image: one in ComfyUI's input folder, named (without one it is a 400)
        query.update(image="example.png")
    job = resolver.resolve(parse_query(HOSTILE, query, "default"))
    received = submit(simulator, job)
    assert received[text_node]["inputs"]["text"] == HOSTILE
    seeds = [n["inputs"][k] for n in received.values() for k in ("seed", "noise_seed") if k in n["inputs"]]
    assert seeds == [12345]
    steps = [n["inputs"]["steps"] for n in received.values() if "steps" in n["inputs"]]
    assert steps == [3]
    if workflow != "sd15_img2img.json":
        sizes = [(n["inputs"]["width"], n["inputs"]["height"]) for n in received.values()
                 if n["class_type"].startswith("Empty")]
        assert sizes == [(512, 384)]
    if workflow == "flux_schnell.json":  # FLUX schnell's BasicGuider has no negative input
        assert "negative_prompt" in job.ignored
    else:
        negatives = [n["inputs"]["text"] for n in received.values() if n["inputs"].get("text") == "blurry"]
        assert negatives == ["blurry"]


def test_sd15_placeholders_with_sillytavern_names_land_typed(resolver: Resolver, simulator: Any) -> None:
    job = resolver.resolve(parse_query("fox", {"workflow": "sd15", "scale": "4.5", "clip_skip": "2",
                                               "sampler": "euler_ancestral", "scheduler": "karras",
                                               "model": "v1-5-pruned-emaonly.safetensors"}, "default"))
    received = submit(simulator, job)
    ks = received["3"]["inputs"]
    assert ks["cfg"] == 4.5 and ks["sampler_name"] == "euler_ancestral" and ks["scheduler"] == "karras"
    assert received["10"]["inputs"]["stop_at_clip_layer"] == -2
    assert received["5"]["inputs"] == {"width": 512, "height": 512, "batch_size": 1}  # from settings


def test_img2img_with_an_uploaded_image(resolver: Resolver, simulator: Any) -> None:
    image = make_input_image(PNG)
    job = resolver.resolve(GenerationRequest(prompt="fox", workflow="sd15_img2img.json", input_images=(image,),
                                             params={"denoise": 0.5}, seed=1))
    received = submit(simulator, job)
    assert received["10"]["inputs"]["image"] == image.name and received["3"]["inputs"]["denoise"] == 0.5


def test_sillytavern_and_ui_format_files_dropped_in(resolver: Resolver, simulator: Any, project: Path) -> None:
    shutil.copy(ROOT / "tests" / "data" / "sillytavern_default.json", project / "workflows" / "st.json")
    shutil.copy(ROOT / "tests" / "data" / "ui_txt2img.json", project / "workflows" / "ui.json")
    (project / "workflows" / "settings" / "st.json").write_text(
        json.dumps({"model": "v1-5-pruned-emaonly.safetensors", "width": 512, "height": 512}), encoding="utf-8")
    job = resolver.resolve(parse_query(HOSTILE, {"workflow": "st", "seed": "9", "steps": "4"}, "default"))
    received = submit(simulator, job)
    assert received["6"]["inputs"]["text"] == HOSTILE and received["3"]["inputs"]["steps"] == 4
    job = resolver.resolve(parse_query(HOSTILE, {"workflow": "ui", "seed": "9"}, "default"))
    received = submit(simulator, job)
    assert received["6"]["inputs"]["text"] == HOSTILE and received["3"]["inputs"]["seed"] == 9
    assert resolver.describe_workflow("ui")["format"] == "ui (converted)"


def test_models_the_simulator_lacks_are_refused_with_its_list(resolver: Resolver) -> None:
    with pytest.raises(BadRequest) as err:
        resolver.resolve(parse_query("fox", {"workflow": "sd15", "model": "nope.safetensors"}, "default"))
    assert "demo.safetensors" in err.value.message
    with pytest.raises(BadRequest) as err:
        resolver.resolve(parse_query("fox", {"model": "v1-5-pruned-emaonly.safetensors"}, "default"))
    assert "flux1-schnell.safetensors" in err.value.message  # flux takes UNET files, not checkpoints
