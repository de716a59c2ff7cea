"""Workflow templates: the three binding sources on the shipped workflows, detection, rendering,
UI-format conversion, names and saving. Offline checks use the captured object_info of a real ComfyUI."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import CAPTURES

from linkpix.errors import BadRequest, ConfigError
from linkpix.render.placeholders import Registry, split_text
from linkpix.render.uiformat import ui_to_api
from linkpix.render.workflows import WorkflowTemplate, list_workflows, save_workflow, workflow_path
from linkpix.storage.jsonstore import JsonStore

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("character_kontext.json", "character_qwen_edit_2509.json", "demo.json", "flux_kontext_edit.json",
           "flux_schnell.json", "qwen_image_edit.json", "sd15.json", "sd15_img2img.json", "sd15_inpaint.json",
           "sdxl.json")
# The model lists the simulator (and the README) promise; the capture only holds a tiny test model.
MODELS = {("CheckpointLoaderSimple", "ckpt_name"): ["v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors",
                                                    "demo.safetensors"],
          ("UNETLoader", "unet_name"): ["flux1-schnell.safetensors", "flux1-dev-kontext_fp8_scaled.safetensors",
                                        "qwen_image_edit_fp8_e4m3fn.safetensors",
                                        "qwen_image_edit_2509_fp8_e4m3fn.safetensors"],
          ("VAELoader", "vae_name"): ["ae.safetensors", "qwen_image_vae.safetensors"],
          ("DualCLIPLoader", "clip_name1"): ["clip_l.safetensors", "t5xxl_fp8_e4m3fn.safetensors"],
          ("DualCLIPLoader", "clip_name2"): ["clip_l.safetensors", "t5xxl_fp8_e4m3fn.safetensors",
                                             "t5xxl_fp8_e4m3fn_scaled.safetensors"],
          ("CLIPLoader", "clip_name"): ["qwen_2.5_vl_7b_fp8_scaled.safetensors"],
          ("LoadImage", "image"): ["example.png"]}


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    info = json.loads((CAPTURES / "object_info_full.json").read_text(encoding="utf-8"))
    for (cls, inp), names in MODELS.items():
        info[cls]["input"]["required"][inp][0] = names
    return info


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(json.loads((ROOT / "data" / "placeholders.json").read_text(encoding="utf-8")))


def load(name: str, registry: Registry, info: dict | None = None) -> WorkflowTemplate:
    path = ROOT / "workflows" / name
    side = path.with_suffix(".yaml")
    sidecar = yaml.safe_load(side.read_text(encoding="utf-8")) if side.exists() else None
    return WorkflowTemplate(name, json.loads(path.read_text(encoding="utf-8")), registry, sidecar, info)


def validate(graph: dict[str, Any], info: dict[str, Any]) -> list[str]:
    """The checks of protocol reference §3.4 that matter for shipped files (classes, inputs, links, ranges)."""
    errors = []
    for nid, node in graph.items():
        spec = info.get(node["class_type"])
        if spec is None:
            errors.append(f"{nid}: unknown class {node['class_type']}")
            continue
        declared = {**spec["input"].get("required", {}), **spec["input"].get("optional", {})}
        for name, cfg in declared.items():
            if name not in node["inputs"]:
                if name in spec["input"].get("required", {}):
                    errors.append(f"{nid}: {name} missing")
                continue
            value = node["inputs"][name]
            kind, opts = cfg[0], (cfg[1] if len(cfg) > 1 else {})
            if isinstance(value, list):
                src = graph.get(value[0])
                if src is None:
                    errors.append(f"{nid}.{name}: link to missing node {value[0]}")
                    continue
                out = info[src["class_type"]]["output"]
                if value[1] >= len(out) or (out[value[1]] != kind and "*" not in (kind, out[value[1]])):
                    errors.append(f"{nid}.{name}: link type mismatch")
            elif isinstance(kind, list):
                if value not in kind:
                    errors.append(f"{nid}.{name}: {value!r} not in list")
            elif kind in ("INT", "FLOAT"):
                if isinstance(value, str) or ("min" in opts and value < opts["min"]) or \
                        ("max" in opts and value > opts["max"]):
                    errors.append(f"{nid}.{name}: {value!r} out of range or not a number")
                if kind == "INT" and not isinstance(value, int):
                    errors.append(f"{nid}.{name}: {value!r} is not an integer")
            elif kind == "STRING" and not isinstance(value, str):
                errors.append(f"{nid}.{name}: {value!r} is not text")
        if spec.get("output_node") is None:
            errors.append(f"{nid}: odd spec")
    if not any(info[n["class_type"]].get("output_node") for n in graph.values()):
        errors.append("no output node")
    return errors


def defaults(template: WorkflowTemplate) -> dict[str, Any]:
    values = {name: b.default for name, b in template.params.items()}
    values.update(prompt="a red fox", seed=1234)
    for name in ("model", "vae", "image"):
        if values.get(name) is None and name in template.params:
            values[name] = {"model": "v1-5-pruned-emaonly.safetensors", "vae": "ae.safetensors",
                            "image": "example.png"}[name]
    return values


def test_shipped_workflows_are_listed() -> None:
    assert tuple(list_workflows(ROOT / "workflows")) == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_workflows_render_to_valid_api_graphs(name: str, registry: Registry, object_info: dict) -> None:
    template = load(name, registry)
    graph = template.render(defaults(template))
    assert validate(graph, object_info) == []
    leftover = [v for n in graph.values() for v in n["inputs"].values() if isinstance(v, str) and split_text(v)]
    assert leftover == []


def test_the_three_sources_on_the_shipped_workflows(registry: Registry) -> None:
    sources = {name: {p: b.source for p, b in load(name, registry).params.items()} for name in SHIPPED}
    # sd15.json: placeholders, SillyTavern spelling (%scale%), plus detection for what it leaves fixed.
    assert sources["sd15.json"]["prompt"] == "placeholder" and sources["sd15.json"]["cfg"] == "placeholder"
    assert sources["sd15.json"]["clip_skip"] == "placeholder" and sources["sd15.json"]["model"] == "detected"
    # sdxl.json: YAML sidecar.
    assert sources["sdxl.json"]["seed"] == "yaml" and sources["sdxl.json"]["negative_prompt"] == "yaml"
    # flux_schnell.json and sd15_img2img.json: pure exports, everything detected.
    assert set(sources["flux_schnell.json"].values()) == {"detected"}
    assert set(sources["sd15_img2img.json"].values()) == {"detected"}
    # demo.json mixes placeholders (prompt, negative, seed) with detection (steps, size...).
    assert sources["demo.json"]["seed"] == "placeholder" and sources["demo.json"]["steps"] == "detected"


def _targets(template: WorkflowTemplate) -> dict[str, list[str]]:
    return {p: [f"{s.node}.{s.input}" for s in b.slots] for p, b in template.params.items()}


def test_detection_on_flux_follows_guider_and_flux_guidance(registry: Registry) -> None:
    t = load("flux_schnell.json", registry)
    assert _targets(t) == {
        "prompt": ["6.text"], "seed": ["25.noise_seed"], "steps": ["17.steps"], "sampler": ["16.sampler_name"],
        "scheduler": ["17.scheduler"], "denoise": ["17.denoise"], "width": ["27.width"], "height": ["27.height"],
        "batch_size": ["27.batch_size"], "model": ["12.unet_name"], "vae": ["10.vae_name"],
        "guidance": ["26.guidance"]}
    assert t.params["steps"].default == 4 and t.params["model"].default == "flux1-schnell.safetensors"


def test_detection_on_img2img_finds_the_input_image_and_both_prompts(registry: Registry) -> None:
    t = load("sd15_img2img.json", registry)
    targets = _targets(t)
    assert targets["prompt"] == ["6.text"] and targets["negative_prompt"] == ["7.text"]
    assert targets["image"] == ["10.image"] and targets["denoise"] == ["3.denoise"]
    assert t.params["denoise"].default == 0.6
    assert "width" not in targets  # the size comes from the input image


def test_detection_through_conditioning_nodes_and_cfg_guider(registry: Registry) -> None:
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "pos a", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "pos b", "clip": ["1", 1]}},
        "4": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["2", 0], "conditioning_2": ["3", 0]}},
        "5": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["4", 0], "guidance": 2.0}},
        "6": {"class_type": "PrimitiveString", "inputs": {"value": "neg"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": ["6", 0], "clip": ["1", 1]}},
        "8": {"class_type": "CFGGuider", "inputs": {"model": ["10", 0], "positive": ["5", 0],
                                                    "negative": ["7", 0], "cfg": 5.0}},
        "9": {"class_type": "RandomNoise", "inputs": {"noise_seed": ["11", 0]}},
        "10": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name": "l.safetensors",
                                                               "strength_model": 0.8}},
        "11": {"class_type": "PrimitiveInt", "inputs": {"value": 5}},
        "12": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["9", 0], "guider": ["8", 0],
                                                                 "sampler": ["13", 0], "sigmas": ["14", 0],
                                                                 "latent_image": ["15", 0]}},
        "13": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "14": {"class_type": "BasicScheduler", "inputs": {"model": ["10", 0], "scheduler": "simple", "steps": 9,
                                                          "denoise": 1.0}},
        "15": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    }
    t = WorkflowTemplate("x.json", graph, registry)
    targets = _targets(t)
    assert targets["prompt"] == ["2.text", "3.text"]
    assert targets["negative_prompt"] == ["6.value"]
    assert targets["seed"] == ["11.value"]
    assert targets["cfg"] == ["8.cfg"] and targets["guidance"] == ["5.guidance"]
    assert targets["model"] == ["1.ckpt_name"] and targets["lora"] == ["10.lora_name"]
    assert targets["lora_strength"] == ["10.strength_model"]
    out = t.render({"prompt": "P", "negative_prompt": "N", "seed": 77, "lora_strength": 0.5})
    assert out["2"]["inputs"]["text"] == out["3"]["inputs"]["text"] == "P"
    assert out["6"]["inputs"]["value"] == "N" and out["11"]["inputs"]["value"] == 77
    assert out["7"]["inputs"]["text"] == ["6", 0]


def test_zeroed_negative_is_not_the_prompt(registry: Registry) -> None:
    graph = {
        "1": {"class_type": "CLIPTextEncode", "inputs": {"text": "p", "clip": ["9", 1]}},
        "2": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["1", 0]}},
        "3": {"class_type": "KSampler", "inputs": {"positive": ["1", 0], "negative": ["2", 0], "seed": 1,
                                                   "model": ["9", 0], "latent_image": ["4", 0]}},
        "4": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "9": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a"}},
    }
    targets = _targets(WorkflowTemplate("z.json", graph, registry))
    assert targets["prompt"] == ["1.text"] and "negative_prompt" not in targets


def test_placeholders_keep_types_and_interpolate_text(registry: Registry) -> None:
    graph = {"1": {"class_type": "KSampler", "inputs": {"steps": "%steps%", "cfg": "%scale%", "seed": "%seed%"}},
             "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "masterpiece, %prompt%, %steps% steps"}},
             "3": {"class_type": "X", "inputs": {"values": {"__value__": ["%width%", "%height%"]}}}}
    t = WorkflowTemplate("p.json", graph, registry)
    out = t.render({"prompt": "fox", "steps": 20, "cfg": 7.5, "seed": 3, "width": 64, "height": 32})
    assert out["1"]["inputs"] == {"steps": 20, "cfg": 7.5, "seed": 3}
    assert out["2"]["inputs"]["text"] == "masterpiece, fox, 20 steps"
    assert out["3"]["inputs"]["values"] == {"__value__": [64, 32]}
    assert graph["1"]["inputs"]["steps"] == "%steps%"  # the template's input was not touched
    assert t.params["cfg"].default == 7.0  # registry default for a placeholder


def test_unknown_placeholder_without_value_is_an_error_naming_it(registry: Registry) -> None:
    graph = {"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "%prompt% wearing %outfit%"}},
             "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "%model%"}}}
    t = WorkflowTemplate("c.json", graph, registry)
    with pytest.raises(BadRequest) as err:
        t.render({"prompt": "fox"})
    assert "%outfit%" in err.value.message and "%model%" in err.value.message
    assert t.render({"prompt": "fox", "outfit": "a hat", "model": "m"})["1"]["inputs"]["text"] == "fox wearing a hat"
    assert t.describe()["parameters"]["outfit"]["custom"] is True


def test_sillytavern_workflow_renders_unchanged(registry: Registry, object_info: dict) -> None:
    st = json.loads((ROOT / "tests" / "data" / "sillytavern_default.json").read_text(encoding="utf-8"))
    before = copy.deepcopy(st)
    t = WorkflowTemplate("st.json", st, registry)
    assert {p: b.source for p, b in t.params.items() if b.source == "placeholder"}.keys() >= {
        "prompt", "negative_prompt", "seed", "cfg", "steps", "width", "height", "sampler", "scheduler", "model"}
    out = t.render({"prompt": 'a "quoted" %model% fox', "negative_prompt": "ugly", "seed": 5, "cfg": 6.5,
                    "steps": 12, "width": 512, "height": 768, "sampler": "euler", "scheduler": "karras",
                    "model": "v1-5-pruned-emaonly.safetensors", "denoise": 1.0, "clip_skip": 2})
    assert validate(out, object_info) == []
    assert out["6"]["inputs"]["text"] == 'a "quoted" %model% fox'
    assert out["3"]["inputs"]["cfg"] == 6.5 and out["3"]["inputs"]["steps"] == 12
    assert out["10"]["inputs"]["stop_at_clip_layer"] == -2
    assert st == before


def test_sidecar_errors_name_the_target(registry: Registry) -> None:
    graph = json.loads((ROOT / "workflows" / "sdxl.json").read_text(encoding="utf-8"))
    with pytest.raises(ConfigError, match="99.seed"):
        WorkflowTemplate("sdxl.json", graph, registry, {"seed": "99.seed"})
    with pytest.raises(ConfigError, match="link"):
        WorkflowTemplate("sdxl.json", graph, registry, {"model": "10.model"})
    t = WorkflowTemplate("sdxl.json", graph, registry, {"steps": {"targets": ["10.steps"], "default": 30}})
    assert t.params["steps"].default == 30 and t.params["steps"].source == "yaml"


def test_describe_lists_targets_and_sources(registry: Registry) -> None:
    d = load("sdxl.json", registry).describe()
    assert d["format"] == "api"
    seed = d["parameters"]["seed"]
    assert seed["source"] == "yaml" and seed["type"] == "int"
    assert seed["targets"] == [{"node": "10", "class_type": "KSampler", "input": "seed", "mode": "value"}]
    assert d["parameters"]["denoise"]["source"] == "detected"


# ------------------------------------------------------------------------------------------ UI format
def ui_workflow() -> dict[str, Any]:
    return json.loads((ROOT / "tests" / "data" / "ui_txt2img.json").read_text(encoding="utf-8"))


def test_ui_format_is_converted_like_the_frontend(registry: Registry, object_info: dict) -> None:
    graph = ui_to_api(ui_workflow(), object_info, "ui.json")
    assert set(graph) == {"3", "4", "5", "6", "7", "8", "9"}  # no Note, Reroute, Primitive, muted, bypassed
    assert graph["3"]["inputs"] == {"seed": 1234, "steps": 20, "cfg": 7, "sampler_name": "euler",
                                    "scheduler": "normal", "denoise": 1, "model": ["4", 0],
                                    "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}
    assert graph["7"]["inputs"]["clip"] == ["4", 1]  # through the Reroute
    assert validate(graph, object_info) == []
    t = WorkflowTemplate("ui.json", ui_workflow(), registry, None, object_info)
    assert t.describe()["format"] == "ui (converted)"
    assert _targets(t)["prompt"] == ["6.text"] and _targets(t)["negative_prompt"] == ["7.text"]


def test_ui_format_without_object_info_says_how_to_export(registry: Registry) -> None:
    with pytest.raises(ConfigError) as err:
        WorkflowTemplate("ui.json", ui_workflow(), registry)
    assert "Save (API Format)" in err.value.message


def test_ui_format_with_unknown_node_type(registry: Registry, object_info: dict) -> None:
    doc = ui_workflow()
    doc["nodes"][0]["type"] = "SomeCustomNode"
    with pytest.raises(ConfigError, match="SomeCustomNode"):
        ui_to_api(doc, object_info, "ui.json")


# ------------------------------------------------------------------------------ names and saving
@pytest.mark.parametrize("name", ["../config.json", "/etc/passwd", "settings/sd15.json", "..", "nope.json"])
def test_bad_or_unknown_workflow_names(name: str) -> None:
    with pytest.raises(BadRequest) as err:
        workflow_path(ROOT / "workflows", name)
    assert "workflow" in err.value.message


def test_unknown_workflow_lists_the_available_ones() -> None:
    with pytest.raises(BadRequest) as err:
        workflow_path(ROOT / "workflows", "nope")
    assert "flux_schnell.json" in err.value.message and "sd15.json" in err.value.details["allowed"]


def test_save_workflow_keeps_the_first_version(project: Path) -> None:
    wdir = project / "workflows"
    store = JsonStore()
    first = (wdir / "sd15.json").read_bytes()
    edited = json.loads(first)
    edited["3"]["inputs"]["denoise"] = 0.9
    save_workflow(wdir, "sd15.json", edited, store)
    edited["3"]["inputs"]["denoise"] = 0.8
    save_workflow(wdir, "sd15", edited, store)
    assert (wdir / "originals" / "sd15.json").read_bytes() == first
    assert json.loads((wdir / "sd15.json").read_text())["3"]["inputs"]["denoise"] == 0.8
    save_workflow(wdir, "brand_new.json", {"1": {"class_type": "EmptyImage", "inputs": {}}}, store)
    assert json.loads((wdir / "originals" / "brand_new.json").read_text())["1"]["class_type"] == "EmptyImage"
    with pytest.raises(BadRequest):
        save_workflow(wdir, "../evil.json", edited, store)
    with pytest.raises(BadRequest, match="class_type"):
        save_workflow(wdir, "bad.json", {"1": {"inputs": {}}}, store)
    assert "originals" not in list_workflows(wdir) and "bad.json" not in list_workflows(wdir)
