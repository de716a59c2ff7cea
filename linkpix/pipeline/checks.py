"""Checks of a request once resolved, against the limits and against what the backend has.

They run in the resolver, after the merge rule has decided every value, so they judge what will reach
ComfyUI whoever chose it (the request, the workflow settings, the preferences, the workflow file).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from linkpix.comfy.objectinfo import ObjectInfo, combo_choices, input_spec
from linkpix.errors import BadRequest
from linkpix.render.placeholders import Registry, not_available
from linkpix.render.styles import Style


def needs_input(workflow: str) -> BadRequest:
    """The 400 for a workflow that edits an image, run without one: ComfyUI would edit its placeholder
    `example.png` and answer with a picture nobody asked for."""
    return BadRequest(f"workflow {workflow} edits an input image and none was sent: give image (an upload id "
                      "from POST /uploads, or base64 in JSON), or use POST /edit or /v1/images/edits",
                      {"parameter": "image", "missing": "image"}, rule="image_input")


def check_text_length(params: Mapping[str, Any], limit: int) -> None:
    """Every free-text value a request sends (the negative prompt, any string parameter) gets the
    prompt's limit: long text costs GPU time in the text encoder as surely as a long prompt does."""
    for name, value in params.items():
        if isinstance(value, str) and len(value) > limit:
            raise BadRequest(f"{name} has {len(value)} characters; the limit is {limit} (max_prompt_chars)",
                             {"parameter": name, "max_chars": limit})


def check_style_length(chosen: tuple[Style, ...], limit: int) -> None:
    """The chosen styles together may add at most the prompt's limit, to the prompt and to the negative."""
    added = sum(len(s.pre) + len(s.post) for s in chosen)
    negative = sum(len(s.negative) for s in chosen)
    if max(added, negative) > limit:
        names = ", ".join(s.name for s in chosen)
        raise BadRequest(f"the styles {names} add {max(added, negative)} characters of text; the limit is "
                         f"{limit} (max_prompt_chars): choose fewer or shorter styles",
                         {"parameter": "style", "max_chars": limit})


def check_models(graph: Mapping[str, Any], workflow: str, registry: Registry, info: ObjectInfo) -> None:
    """Every model file (and sampler, scheduler) the rendered graph names must be one the backend
    lists, whoever chose it: the request, the settings, the preferences or the workflow file. So a
    missing model is a 400 that lists what ComfyUI has, before a job is accepted, rather than a 422
    from ComfyUI (or a job that fails later)."""
    for node_id, node in graph.items():
        if not isinstance(node, Mapping) or not isinstance(node.get("inputs"), Mapping):
            continue
        cls = node.get("class_type")
        for input_name, value in node["inputs"].items():
            if not isinstance(value, str):
                continue  # a link to another node, or a number
            param = registry.source_of(cls, input_name)
            if param is None and not input_name.endswith("_name"):
                continue  # only model files (ckpt_name, lora_name, clip_name...) and named choices
            spec = input_spec(info, cls, input_name)
            allowed = combo_choices(spec)
            if allowed is None or remote_combo(spec) or upload_combo(spec):
                continue
            if value not in allowed:
                exc = not_available(param or input_name, value, allowed)
                exc.message += f" (workflow {workflow}, node {node_id} {cls}.{input_name})"
                exc.args = (exc.message,)
                exc.details["node"] = node_id
                raise exc


def remote_combo(spec: list[Any] | None) -> bool:
    """A COMBO without an options list: ComfyUI fetches its values itself, so there is nothing to check."""
    return bool(spec) and spec[0] == "COMBO" and "options" not in (spec[1] if len(spec) > 1 else {})


def upload_combo(spec: list[Any] | None) -> bool:
    """An input image (LoadImage.image: `image_upload`): its file is uploaded just before the run, so
    today's list cannot hold it yet."""
    options = spec[1] if spec and len(spec) > 1 and isinstance(spec[1], Mapping) else {}
    return any(key.endswith("_upload") and value for key, value in options.items())


def check_size(values: Mapping[str, Any], max_pixels: int) -> None:
    """width x height within `max_pixels`, whoever chose them."""
    w, h = values.get("width"), values.get("height")
    if isinstance(w, int) and isinstance(h, int) and w * h > max_pixels:
        raise BadRequest(f"{w}x{h} is {w * h} pixels; the limit is {max_pixels} (max_pixels)",
                         {"parameter": "width", "max_pixels": max_pixels}, rule="max_pixels")
