"""Read ComfyUI's /object_info: the one place that knows how input specs are shaped.

Specs come in two forms (protocol reference §7.2): a V1 combo is `[[choices...], {options}]`, a V3 combo
is `["COMBO", {"options": [...]}]`; scalars are `["INT", {...}]`. Callers ask questions instead of
indexing into that structure, so a new spec form is handled here once.
"""

from __future__ import annotations

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
