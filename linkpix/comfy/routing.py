"""Which model files a rendered graph needs, which backends have them, and which backend should run it.

The model files are read from the graph's loader nodes (CheckpointLoaderSimple, UNETLoader, LoraLoader,
VAELoader, CLIPLoader, DualCLIPLoader, UpscaleModelLoader, ... and any custom `*Loader*` node whose input
names a model file) and compared with each backend's /object_info lists, where ComfyUI lists the files it
has for exactly those inputs.

The choice among backends that have every file follows SwarmUI's BackendHandler: backends sorted by how
busy they are, preferring one that has the model loaded, with a "model pressure" - a backend that would
first have to load another model counts as one run busier (loading a checkpoint costs about a run).
Weights divide the load, so a backend of weight 2 takes twice the work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from linkpix.comfy.objectinfo import ObjectInfo, choices, public_values

# (class, input) -> what the file is, for messages. Inputs of other `*Loader*` nodes count too when their
# value looks like a model file (MODEL_EXTENSIONS).
MODEL_INPUTS: dict[tuple[str, str], str] = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoint",
    ("CheckpointLoader", "ckpt_name"): "checkpoint",
    ("ImageOnlyCheckpointLoader", "ckpt_name"): "checkpoint",
    ("unCLIPCheckpointLoader", "ckpt_name"): "checkpoint",
    ("UNETLoader", "unet_name"): "diffusion model",
    ("LoraLoader", "lora_name"): "LoRA",
    ("LoraLoaderModelOnly", "lora_name"): "LoRA",
    ("VAELoader", "vae_name"): "VAE",
    ("CLIPLoader", "clip_name"): "text encoder",
    ("DualCLIPLoader", "clip_name1"): "text encoder",
    ("DualCLIPLoader", "clip_name2"): "text encoder",
    ("TripleCLIPLoader", "clip_name1"): "text encoder",
    ("TripleCLIPLoader", "clip_name2"): "text encoder",
    ("TripleCLIPLoader", "clip_name3"): "text encoder",
    ("UpscaleModelLoader", "model_name"): "upscale model",
    ("ControlNetLoader", "control_net_name"): "ControlNet",
    ("DiffControlNetLoader", "control_net_name"): "ControlNet",
    ("CLIPVisionLoader", "clip_name"): "CLIP vision model",
    ("StyleModelLoader", "style_model_name"): "style model",
    ("GLIGENLoader", "gligen_name"): "GLIGEN model",
    ("HypernetworkLoader", "hypernetwork_name"): "hypernetwork",
    ("PhotoMakerLoader", "photomaker_model_name"): "PhotoMaker model",
}
MAIN_MODELS = frozenset({"checkpoint", "diffusion model"})  # what "the model a backend has loaded" means
MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")
MODEL_SWITCH = 1.0  # runs' worth of extra load for a backend that must load another model first


@dataclass(frozen=True)
class ModelRef:
    """One model file a graph names: node `node_id` (`class_type`) loads `value` through `input`."""

    node_id: str
    class_type: str
    input: str
    value: str
    kind: str

    def describe(self) -> str:
        return f"{self.kind} {self.value!r} ({self.class_type}.{self.input} in node {self.node_id})"


def model_files(graph: Mapping[str, Any]) -> list[ModelRef]:
    """Every model file the graph's loader nodes name, in node order (links and non-files skipped)."""
    refs: list[ModelRef] = []
    for node_id, node in graph.items():
        if not isinstance(node, Mapping):
            continue
        class_type, inputs = node.get("class_type"), node.get("inputs")
        if not isinstance(class_type, str) or not isinstance(inputs, Mapping):
            continue
        for name, value in inputs.items():
            if not isinstance(value, str):
                continue
            kind = MODEL_INPUTS.get((class_type, name))
            if kind is None and "Loader" in class_type and value.lower().endswith(MODEL_EXTENSIONS):
                kind = "model"
            if kind is not None:
                refs.append(ModelRef(str(node_id), class_type, name, value, kind))
    return refs


def main_model(refs: Sequence[ModelRef]) -> str | None:
    """The checkpoint or diffusion model the graph runs (what stays loaded on a backend), if any."""
    return next((r.value for r in refs if r.kind in MAIN_MODELS), None)


def missing(info: ObjectInfo, refs: Iterable[ModelRef]) -> list[ModelRef]:
    """The files a backend with this object_info does not have (its loader lacks them or the node)."""
    out = []
    for ref in refs:
        if ref.class_type not in info:
            out.append(ref)
            continue
        allowed = choices(info, ref.class_type, ref.input)
        if allowed is not None and ref.value not in allowed:
            out.append(ref)
    return out


def files_of(info: ObjectInfo, ref: ModelRef) -> list[str]:
    """What a backend offers for the input `ref` uses (for the message when nobody has `ref`)."""
    return [str(v) for v in public_values(choices(info, ref.class_type, ref.input) or [])]  # never uploads


def cost(load: int, weight: float, loaded: str | None, wanted: str | None) -> tuple[float, int]:
    """Sort key of a backend for one run: (weighted load including model pressure, pressure)."""
    switch = 0 if wanted is None or loaded == wanted else 1
    return (load + switch * MODEL_SWITCH) / weight, switch


def merge_object_info(infos: Sequence[ObjectInfo]) -> ObjectInfo:
    """One object_info for the whole pool: every class any backend has, each combo the union of theirs.

    A request is valid when *some* backend can run it; routing then picks one that can.
    """
    if len(infos) == 1:
        return infos[0]
    merged: dict[str, Any] = {}
    for info in infos:
        for class_type, entry in info.items():
            if class_type not in merged:
                merged[class_type] = entry
                continue
            merged[class_type] = _merge_class(merged[class_type], entry)
    return merged


def _merge_class(first: Any, other: Any) -> Any:
    if not isinstance(first, dict) or not isinstance(other, dict):
        return first
    inputs = {**first.get("input", {})}
    for section, specs in (other.get("input") or {}).items():
        if not isinstance(specs, dict):
            continue
        mine = dict(inputs.get(section) or {})
        for name, spec in specs.items():
            mine[name] = _merge_spec(mine[name], spec) if name in mine else spec
        inputs[section] = mine
    return {**first, "input": inputs}


def _merge_spec(first: Any, other: Any) -> Any:
    """Union of two combo specs (V1 `[[...], {...}]` or V3 `["COMBO", {"options": [...]}]`)."""
    if not (isinstance(first, list) and isinstance(other, list) and first and other):
        return first
    if isinstance(first[0], list) and isinstance(other[0], list):
        return [_union(first[0], other[0]), *first[1:]]
    if first[0] == "COMBO" and other[0] == "COMBO" and len(first) > 1 and len(other) > 1 \
            and isinstance(first[1], dict) and isinstance(other[1], dict):
        options = _union(first[1].get("options", []), other[1].get("options", []))
        return ["COMBO", {**first[1], "options": options}, *first[2:]]
    return first


def _union(a: Sequence[Any], b: Sequence[Any]) -> list[Any]:
    out, seen = list(a), {repr(v) for v in a}
    for value in b:
        if repr(value) not in seen:
            seen.add(repr(value))
            out.append(value)
    return out
