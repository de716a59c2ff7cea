"""What a graph sent to the ComfyUI front may load, and how big it may be: checked before ComfyUI sees it.

ComfyUI trusts its graphs: `LoadImage` joins the name it is given onto its input folder, so
`../../etc/x.png` or `/tmp/x.png` reads any file the server can, and any file in the input folder (other
users' uploads among them) is one name away. On a LinkPix shared by several users the front is the only
door, so the door checks: an image input of a loader node must name one of the caller's own uploads (a
name they uploaded through the front, or an upload id of theirs), and no loader input may climb out of
its folder. Size is checked too: ComfyUI validates a graph in one pass that grows with its node count,
and a 200,000-node graph kept a backend busy for minutes (and so judged frozen for everyone).
"""

from __future__ import annotations

import re
from typing import Any

from linkpix.errors import PayloadTooLarge, WorkflowRejected

# Inputs of a loader node that name an input file (LoadImage.image, LoadImageMask.image, LoadAudio.audio,
# LoadVideo.file...). Other loader inputs name model files, which ComfyUI checks against its own lists,
# and which may sit in a subfolder ("sdxl/model.safetensors"): those may not climb or be absolute.
FILE_INPUTS = frozenset({"image", "mask", "video", "audio", "file", "filename", "path", "input_file"})
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


def is_loader(class_type: Any) -> bool:
    return isinstance(class_type, str) and "load" in class_type.lower()


def is_file_input(name: str) -> bool:
    return name in FILE_INPUTS or name.endswith(("_image", "_path", "_file", "_filename"))


def climbs(value: str) -> bool:
    """Absolute, a drive, a `..` step or a NUL: a name that could leave the folder it is meant for."""
    parts = value.replace("\\", "/").split("/")
    return value.startswith(("/", "\\", "~")) or bool(_DRIVE_RE.match(value)) or ".." in parts \
        or "\x00" in value


def check_body(length: int | None, max_mb: float) -> None:
    """413 for a POST /prompt body over `max_mb` MiB (front_max_graph_mb), before it is read."""
    limit = int(max_mb * 1024 * 1024)
    if length is not None and length > limit:
        raise PayloadTooLarge(f"the graph is {length} bytes; the limit is {limit} bytes (front_max_graph_mb)",
                              {"bytes": length, "max_bytes": limit})


def check_size(graph: dict[str, Any], max_nodes: int) -> None:
    """413 for a graph with more nodes than `max_nodes` (front_max_nodes)."""
    if len(graph) > max_nodes:
        raise PayloadTooLarge(f"the graph has {len(graph)} nodes; the limit is {max_nodes} (front_max_nodes)",
                              {"nodes": len(graph), "max_nodes": max_nodes})


def refuse(node_id: str, class_type: str, input_name: str, value: str, why: str) -> WorkflowRejected:
    """ComfyUI's own shape for an invalid input (prompt_outputs_failed_validation), so clients show it."""
    message = f"{class_type}.{input_name} = {value[:200]!r}: {why}"
    error = {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
             "details": message, "extra_info": {}}
    node_errors = {node_id: {"errors": [{"type": "value_not_in_list", "message": why, "details": message,
                                         "extra_info": {"input_name": input_name}}],
                             "dependent_outputs": [], "class_type": class_type}}
    return WorkflowRejected(message, node_errors, error)


def loader_file_inputs(graph: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(node id, class type, input name, value) of every string input of a loader node, after refusing
    the ones that climb out of their folder."""
    found = []
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not is_loader(node.get("class_type")):
            continue
        inputs = node.get("inputs")
        if not isinstance(inputs, dict):
            continue
        for name, value in inputs.items():
            if not isinstance(value, str):
                continue  # a link to another node, or a number
            if climbs(value):
                raise refuse(str(node_id), node["class_type"], name, value,
                             "absolute paths and '..' are not allowed; name an uploaded file")
            found.append((str(node_id), node["class_type"], name, value))
    return found
