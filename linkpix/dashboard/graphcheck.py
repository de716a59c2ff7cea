"""Check an API-format graph against ComfyUI's object_info before it is saved.

A workflow that ComfyUI cannot run should be refused when it is uploaded or edited, with the node and
the reason, not discovered later as a 422 on someone's link. The checks mirror what ComfyUI validates
before queueing: known node classes, required inputs present, links pointing at an existing node's
output, combo values among the choices, numbers within min/max. Values that are placeholders
(`%steps%`, `"a %prompt%"`) are filled at request time, so they are not judged here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from linkpix.comfy.objectinfo import combo_choices
from linkpix.render.detect import link_of
from linkpix.render.placeholders import split_text

MAX_REPORTED = 12


def graph_problems(graph: Mapping[str, Any], info: Mapping[str, Any]) -> list[str]:
    """Sentences naming each problem (empty: ComfyUI should accept the graph's structure)."""
    problems: list[str] = []
    for nid, node in graph.items():
        cls = node.get("class_type")
        spec = info.get(cls)
        where = f"node {nid} ({cls})"
        if not isinstance(spec, Mapping):
            problems.append(f"{where}: ComfyUI has no node type {cls!r} (a missing custom node?)")
            continue
        declared = spec.get("input", {}) or {}
        required = declared.get("required", {}) or {}
        optional = declared.get("optional", {}) or {}
        inputs = node.get("inputs", {}) or {}
        for name in required:
            if name not in inputs:
                problems.append(f"{where}: required input {name!r} is missing")
        for name, value in inputs.items():
            input_spec = required.get(name, optional.get(name))
            if input_spec is None:
                continue  # ComfyUI ignores inputs it does not declare
            problem = _check_input(graph, info, name, value, list(input_spec))
            if problem:
                problems.append(f"{where}: {problem}")
    if len(problems) > MAX_REPORTED:
        problems = problems[:MAX_REPORTED] + [f"... and {len(problems) - MAX_REPORTED} more"]
    return problems


def _check_input(graph: Mapping[str, Any], info: Mapping[str, Any], name: str, value: Any,
                 spec: list[Any]) -> str | None:
    link = link_of(value)
    if link is not None:
        src, slot = link
        source = graph.get(str(src))
        if source is None:
            return f"input {name!r} links to node {src}, which is not in the workflow"
        outputs = (info.get(source.get("class_type")) or {}).get("output")
        if isinstance(outputs, list) and isinstance(slot, int) and not 0 <= slot < len(outputs):
            return f"input {name!r} links to output {slot} of node {src}, which has {len(outputs)} outputs"
        return None
    if isinstance(value, str) and split_text(value) is not None:
        return None  # a placeholder: its value comes with each request
    choices = combo_choices(spec)
    if choices is not None:
        if choices and value not in choices:
            shown = ", ".join(map(str, choices[:8])) + (" ..." if len(choices) > 8 else "")
            return f"{value!r} is not available for {name!r} on this ComfyUI (it has: {shown})"
        return None
    kind = spec[0] if spec else None
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}
    if kind in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"input {name!r} must be a number (got {value!r})"
        if kind == "INT" and isinstance(value, float) and not value.is_integer():
            return f"input {name!r} must be a whole number (got {value!r})"
        lo, hi = options.get("min"), options.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return f"input {name!r} is {value}, outside ComfyUI's range {lo}..{hi}"
    elif kind == "BOOLEAN" and not isinstance(value, bool):
        return f"input {name!r} must be true or false (got {value!r})"
    return None
