"""A RenderedJob made from a whole client-supplied API-format graph, for the ComfyUI front.

A ComfyUI client sends its own finished graph, so there is no template to render and nothing to merge:
the graph itself is what the generator runs, and (with the output format and the input images it names)
what the cache and single-flight are keyed on. Whether the graph is valid is ComfyUI's call; its own
validation errors reach the client unchanged, so nothing is checked here beyond the shape JSON gives
and what would make ComfyUI fail instead of answering (a node that is not an object).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from linkpix.errors import BadRequest, WorkflowRejected
from linkpix.model import InputImage, RenderedJob
from linkpix.render.loras import insert_loras, match_lora, take_graph_tags

CLIENT_GRAPH = "(client graph)"  # the `workflow` a RenderedJob of a client graph reports
_SEED_INPUTS = ("seed", "noise_seed")


def job_from_graph(graph: Any, uploads: tuple[InputImage, ...] = (), output_format: str = "png",
                   lora_files: Callable[[], list[Any] | None] | None = None) -> RenderedJob:
    """The job that runs `graph` as it is. `uploads` are input images the graph names (LoadImage), which
    the generator uploads to the chosen backend before submitting. With `lora_files` (the LoRAs the
    backends have), `<lora:name:weight>` tags in its text become loader nodes, as in a link's prompt
    (SillyTavern puts what its user typed into the workflow's prompt)."""
    if not isinstance(graph, dict):
        raise BadRequest(f"a workflow must be a JSON object of nodes, not {type(graph).__name__}")
    _check_nodes(graph)
    if lora_files is not None:
        graph, loras = take_graph_tags(graph)
        if loras:
            available = lora_files()
            graph, _notes = insert_loras(graph, [(match_lora(u.name, available), u) for u in loras])
    texts = [n["inputs"]["text"] for n in _nodes(graph) if isinstance(n["inputs"].get("text"), str)]
    seeds = [n["inputs"][k] for n in _nodes(graph) for k in _SEED_INPUTS
             if isinstance(n["inputs"].get(k), int) and not isinstance(n["inputs"].get(k), bool)]
    return RenderedJob(graph=graph, workflow=CLIENT_GRAPH, prompt=texts[0] if texts else "",
                       negative=texts[1] if len(texts) > 1 else "", seed=seeds[0] if seeds else 0,
                       seed_is_random=False, params={}, output_format=output_format, uploads=uploads,
                       ignored=())


def _check_nodes(graph: dict[str, Any]) -> None:
    """Refuse what ComfyUI cannot even validate: a node that is not an object, or whose class_type is not
    text, makes its validate_prompt raise (HTTP 500, in 0.3.64 and in today's versions alike), so such a
    graph is answered here, the way ComfyUI answers a node without a class_type."""
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            what = "is not an object" if not isinstance(node, dict) else "has no class_type (text)"
            raise WorkflowRejected(
                f"node {node_id!r} {what}", {},
                {"type": "invalid_prompt", "message": "Cannot execute because a node is missing the class_type "
                 "property.", "details": f"Node ID '#{node_id}'", "extra_info": {}})


def input_names(graph: dict[str, Any]) -> list[str]:
    """The file names the graph's LoadImage-like nodes read (their `image` / `mask` string inputs)."""
    names = []
    for node in _nodes(graph):
        for key in ("image", "mask"):
            value = node["inputs"].get(key)
            if isinstance(value, str) and value:
                names.append(value)
    return names


def _nodes(graph: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in graph.values() if isinstance(n, dict) and isinstance(n.get("inputs"), dict)]
