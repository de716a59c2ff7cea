"""A submitted v2 workflow made runnable: `core/ASSET` references become the caller's uploaded images,
and what ComfyUI would refuse anyway (a UI export, an unknown node class, a missing required input, a
value not among its combo's choices: an unknown checkpoint or sampler) is refused at once with
`invalid_workflow` / `workflow_format_ui`, before a job exists.

References resolve only to the caller's own assets: another user's asset id is `missing_asset`, exactly
like an id that never existed, so an id leaks nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from linkpix.comfy.objectinfo import combo_choices, input_spec
from linkpix.pipeline.request import InputImage
from linkpix.web.fronts.v2.errors import V2Error
from linkpix.web.fronts.v2.records import AssetRecord

ASSET_TYPE = "core/ASSET"


def check_format(workflow: Any) -> dict[str, Any]:
    """The API-format graph, or the contract's refusal of anything else."""
    if not isinstance(workflow, dict) or not workflow:
        raise V2Error(422, "invalid_workflow", "'workflow' must be the API-format graph: an object of nodes "
                      "({\"3\": {\"class_type\": \"KSampler\", \"inputs\": {...}}, ...})")
    if isinstance(workflow.get("nodes"), list) and "links" in workflow:
        raise V2Error(422, "workflow_format_ui", "This is a UI-export graph (nodes/links). Export the workflow "
                      "in API format instead (ComfyUI: Workflow > Export (API)).")
    return workflow


def check_nodes(graph: dict[str, Any], object_info: dict[str, Any] | None) -> None:
    """Every node an object with a known class_type and its required inputs (when object_info is known)."""
    errors: dict[str, list[dict[str, str]]] = {}
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            errors[str(node_id)] = [{"field": "class_type", "reason": "missing_class_type"}]
            continue
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            errors[str(node_id)] = [{"field": "inputs", "reason": "not_an_object"}]
            continue
        if object_info is None:
            continue
        spec = object_info.get(node["class_type"])
        if not isinstance(spec, dict):
            errors[str(node_id)] = [{"field": "class_type", "reason": "unknown_class_type"}]
            continue
        required = (spec.get("input") or {}).get("required") or {}
        problems = [{"field": name, "reason": "missing_input"} for name in required if name not in inputs]
        problems += _bad_choices(object_info, node["class_type"], inputs)
        if problems:
            errors[str(node_id)] = problems
    if errors:
        first, problems = next(iter(errors.items()))
        node = graph.get(first) if isinstance(graph.get(first), dict) else {}
        what = f"Node {first} ({node.get('class_type', '?')}): {problems[0]['reason'].replace('_', ' ')}"
        allowed = problems[0].get("allowed")
        raise V2Error(422, "invalid_workflow", f"{what} '{problems[0]['field']}'"
                      + (f" = {str(problems[0]['value'])[:100]!r}; allowed: {_listing(allowed)}" if allowed else "")
                      + (f" (and {len(errors) - 1} more node(s))" if len(errors) > 1 else ""),
                      {"node_errors": errors})


def _bad_choices(object_info: dict[str, Any], class_type: str, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """The inputs whose value is not one of their combo's choices (a sampler, a checkpoint, a scheduler),
    as ComfyUI's own validation would find them (`value_not_in_list`) once the job ran. Not judged: a link
    to another node, and the combos ComfyUI does not judge by its list either (an upload's file name,
    which LinkPix brings to the backend with the job; a list fetched live; a multiple choice)."""
    found = []
    for name, value in inputs.items():
        spec = input_spec(object_info, class_type, name)
        choices = combo_choices(spec)
        extra = spec[1] if spec and len(spec) > 1 and isinstance(spec[1], dict) else {}
        if choices is None or isinstance(value, list) or extra.get("multiselect") or "remote" in extra \
                or any(key.endswith("_upload") for key in extra):
            continue
        if value not in choices:
            found.append({"field": name, "reason": "value_not_in_list", "value": value, "allowed": choices[:50]})
    return found


def _listing(allowed: list[Any]) -> str:
    shown = ", ".join(repr(a) for a in allowed[:10])
    return shown + (f" ... ({len(allowed)} in all)" if len(allowed) > 10 else "")


def resolve_assets(graph: dict[str, Any], find: Callable[[str], AssetRecord | None],
                   load: Callable[[AssetRecord], InputImage]) -> tuple[dict[str, Any], tuple[InputImage, ...]]:
    """The graph with each `core/ASSET` reference replaced by its image's content name, and those images.

    `find` returns the caller's asset of an id (None for a missing one or another user's)."""
    missing: list[str] = []
    images: dict[str, InputImage] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, dict) and value.get("__type") == ASSET_TYPE:
            info = value.get("info")
            asset_id = info.get("id") if isinstance(info, dict) else None
            record = find(asset_id) if isinstance(asset_id, str) and asset_id else None
            if record is None:
                missing.append(str(asset_id) if isinstance(asset_id, str) else "<malformed core/ASSET: no info.id>")
                return value
            image = load(record)
            images[image.name] = image
            return image.name
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    resolved = walk(graph)
    if missing:
        raise V2Error(422, "missing_asset", f"Unresolvable core/ASSET reference(s): {', '.join(missing)} (an "
                      "asset must be uploaded by the same API key with POST /api/v2/assets)",
                      {"missing_ids": missing})
    return resolved, tuple(images.values())
