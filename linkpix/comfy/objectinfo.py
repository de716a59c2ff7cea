"""Read ComfyUI's /object_info: the one place that knows how input specs are shaped.

Specs come in two forms (protocol reference §7.2): a V1 combo is `[[choices...], {options}]`, a V3 combo
is `["COMBO", {"options": [...]}]`; scalars are `["INT", {...}]`. Callers ask questions instead of
indexing into that structure, so a new spec form is handled here once.
"""

from __future__ import annotations

import re
import threading
from typing import Any

ObjectInfo = dict[str, Any]

# Where the model and sampler lists live (reference §7.3).
CHOICE_SOURCES: dict[str, tuple[str, str]] = {
    "checkpoints": ("CheckpointLoaderSimple", "ckpt_name"),
    "unets": ("UNETLoader", "unet_name"),
    "vaes": ("VAELoader", "vae_name"),
    "loras": ("LoraLoader", "lora_name"),
    "samplers": ("KSampler", "sampler_name"),
    "schedulers": ("KSampler", "scheduler"),
    "clips": ("CLIPLoader", "clip_name"),
    "input_images": ("LoadImage", "image"),
}


def input_spec(info: ObjectInfo, class_type: str, input_name: str) -> list[Any] | None:
    """The `[TYPE, options]` spec of one declared input, or None if the class or input is unknown."""
    node = info.get(class_type)
    if not isinstance(node, dict):
        return None
    inputs = node.get("input", {})
    for section in ("required", "optional"):
        spec = inputs.get(section, {}).get(input_name)
        if spec is not None:
            return list(spec)
    return None


def combo_choices(spec: list[Any] | None) -> list[Any] | None:
    """The allowed values of a combo spec, or None when the spec is not a combo."""
    if not spec:
        return None
    kind = spec[0]
    if isinstance(kind, list):
        return kind
    if kind == "COMBO":
        options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        return list(options.get("options", []))
    return None


def choices(info: ObjectInfo, class_type: str, input_name: str) -> list[Any] | None:
    """Allowed values of `class_type.input_name`, or None if it is not a combo on this server."""
    return combo_choices(input_spec(info, class_type, input_name))


def named_choices(info: ObjectInfo, name: str) -> list[Any]:
    """A named list from CHOICE_SOURCES ("checkpoints", "samplers", ...); empty when the node is absent."""
    class_type, input_name = CHOICE_SOURCES[name]
    return choices(info, class_type, input_name) or []


# Files LinkPix uploaded to a backend's input folder (users' uploads and their working copies: see
# storage/owners.py). ComfyUI lists them under LoadImage like any file; no answer of LinkPix shows them.
UPLOAD_NAME_RE = re.compile(r"^linkpix_[0-9a-f]{16}\.[a-z0-9]+$")
_public: list[tuple[ObjectInfo, ObjectInfo]] = []  # (the last info seen, its public copy)
_public_lock = threading.Lock()


def is_upload_name(value: Any) -> bool:
    return isinstance(value, str) and UPLOAD_NAME_RE.match(value) is not None


def public_values(values: list[Any]) -> list[Any]:
    """A choice list without users' uploads."""
    return [v for v in values if not is_upload_name(v)]


def without_uploads(info: ObjectInfo) -> ObjectInfo:
    """object_info as users may see it: every combo without users' uploads. Nodes without such a choice
    are shared with `info`, and the last answer is kept (object_info is half a megabyte, asked often)."""
    with _public_lock:
        if _public and _public[0][0] is info:
            return _public[0][1]
    out: ObjectInfo = {}
    for name, node in info.items():
        out[name] = _public_node(node) if isinstance(node, dict) else node
    with _public_lock:
        _public[:] = [(info, out)]
    return out


def _public_node(node: dict[str, Any]) -> dict[str, Any]:
    inputs = node.get("input")
    if not isinstance(inputs, dict):
        return node
    changed: dict[str, Any] = {}
    for section, specs in inputs.items():
        if not isinstance(specs, dict):
            continue
        for input_name, spec in specs.items():
            values = combo_choices(list(spec)) if isinstance(spec, (list, tuple)) else None
            if values and any(is_upload_name(v) for v in values):
                kept = public_values(values)
                new_spec = [kept, *spec[1:]] if isinstance(spec[0], list) else \
                    [spec[0], {**spec[1], "options": kept}, *spec[2:]]
                changed.setdefault(section, dict(specs))[input_name] = new_spec
    if not changed:
        return node
    return {**node, "input": {**inputs, **changed}}
