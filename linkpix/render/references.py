"""Reference pictures (a character's face) bound to a workflow's image inputs.

A workflow's reference inputs are its `LoadImage` nodes, in the order the file lists them; the one that
already holds the request's own input image (an edit) is skipped. FLUX.1 Kontext takes one, Qwen-Image-Edit
2509 three (`TextEncodeQwenImageEditPlus.image1..3`). A `LoadImage` left without a picture is removed when
every input it feeds is optional (image2/image3 of that encoder), so one reference runs on a three-slot
workflow; otherwise it keeps the file the workflow names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from linkpix.comfy.objectinfo import ObjectInfo
from linkpix.render.detect import link_of
from linkpix.render.loras import graph_copy

IMAGE_LOADERS = ("LoadImage",)


def reference_slots(graph: Mapping[str, Any], taken: str | None = None) -> list[str]:
    """LoadImage node ids in file order, without `taken` (the node the request's own image went to)."""
    return [n for n, node in graph.items() if isinstance(node, dict) and node.get("class_type") in IMAGE_LOADERS
            and n != taken]


def _optional(info: ObjectInfo | None, class_type: str, input_name: str) -> bool:
    node = info.get(class_type) if info else None
    return isinstance(node, dict) and input_name in node.get("input", {}).get("optional", {})


def bind_references(graph: dict[str, Any], names: Sequence[str], taken: str | None,
                    info: ObjectInfo | None) -> tuple[dict[str, Any], int]:
    """A copy of `graph` with `names` (input file names) in its reference slots; -> (graph, how many bound).

    Slots left over are pruned where the graph allows it (see the module docstring)."""
    out = graph_copy(graph)
    slots = reference_slots(out, taken)
    for node_id, name in zip(slots, names, strict=False):
        out[node_id]["inputs"]["image"] = name
    for node_id in slots[len(names):]:
        readers = [(n, k) for n, node in out.items() if isinstance(node, dict)
                   for k, v in node.get("inputs", {}).items() if link_of(v) and link_of(v)[0] == node_id]
        if readers and all(_optional(info, out[n]["class_type"], k) for n, k in readers):
            for n, k in readers:
                del out[n]["inputs"][k]
            del out[node_id]
    return out, min(len(slots), len(names))
