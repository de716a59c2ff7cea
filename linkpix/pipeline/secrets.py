"""A caller's Comfy partner-node key (`extra_data.api_key_comfy_org`), passed to ComfyUI for that caller's
run only, and kept nowhere else.

Partner (API) nodes bill the key's Comfy account. Three things could hand one caller's paid result to
another, and each is closed by giving the run a scope of its own - a random `linkpix_run` input added to
the graph's partner nodes (every node when none is known as one):
- LinkPix's single-flight joins identical graphs into one run, and its cache answers an identical graph
  with the stored picture: the scoped graph is identical to no other, so neither ever matches it;
- ComfyUI's own node cache keys a node on its inputs, not on the hidden key (ComfyUI 0.3.64,
  comfy_execution/caching.py), so an identical graph of another caller just after would get the
  partner node's output without paying: ComfyUI also keys on the added input, which its execution
  ignores (an input a node does not declare is not passed to it).

The key itself lives in this process's memory, by scope, from submit until the run ends: never in the
job store, the graph, a log or an event. A job whose LinkPix restarts before ComfyUI has its prompt
cannot be sent again with the key, and fails saying so; one ComfyUI already has is re-attached.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from linkpix.errors import ExecutionFailed

SCOPE_INPUT = "linkpix_run"  # the added input; ComfyUI passes a node only the inputs it declares
KEY_FIELD = "api_key_comfy_org"
PARTNER_KEY_RE = re.compile(r"^[\x21-\x7e]{1,512}$")  # what a key may look like: printable ASCII, no spaces


def scope_graph(graph: dict[str, Any], object_info: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
    """The graph with a new scope on its partner nodes (`api_node` in object_info; every node when it
    names none of them or is unknown), and that scope."""
    scope = uuid.uuid4().hex
    nodes = {nid: node for nid, node in graph.items() if isinstance(node, dict)}
    partner = [nid for nid, node in nodes.items()
               if isinstance((object_info or {}).get(node.get("class_type")), dict)
               and (object_info or {})[node["class_type"]].get("api_node")]
    marked = set(partner) or set(nodes)
    scoped = {nid: dict(node, inputs={**(node.get("inputs") or {}), SCOPE_INPUT: scope}) if nid in marked else node
              for nid, node in graph.items()}
    return scoped, scope


def scope_of(graph: Mapping[str, Any]) -> str | None:
    for node in graph.values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if isinstance(inputs, dict) and isinstance(inputs.get(SCOPE_INPUT), str):
            return inputs[SCOPE_INPUT]
    return None


def unscoped(graph: Mapping[str, Any]) -> dict[str, Any]:
    """The graph as its caller sent it (for GET /api/v2/jobs/{id}/workflow)."""
    return {nid: dict(node, inputs={k: v for k, v in node["inputs"].items() if k != SCOPE_INPUT})
            if isinstance(node, dict) and isinstance(node.get("inputs"), dict) else node
            for nid, node in graph.items()}


class RunSecrets:
    """Partner keys by run scope, in memory only (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, str] = {}

    def put(self, scope: str, key: str) -> None:
        with self._lock:
            self._keys[scope] = key

    def drop(self, graph: Mapping[str, Any]) -> None:
        """The run of this graph is over (or never started): forget its key."""
        scope = scope_of(graph)
        if scope is not None:
            with self._lock:
                self._keys.pop(scope, None)

    def extra_data(self, graph: Mapping[str, Any]) -> dict[str, str]:
        """What the submit of this graph adds to ComfyUI's `extra_data`: its run's key, if it has one."""
        scope = scope_of(graph)
        if scope is None:
            return {}
        with self._lock:
            key = self._keys.get(scope)
        if key is None:
            raise ExecutionFailed("this job's Comfy partner-node key (extra_data.api_key_comfy_org) is kept in "
                                  "memory only, and LinkPix restarted before ComfyUI had the job: submit it again")
        return {KEY_FIELD: key}

    def __repr__(self) -> str:  # never the keys
        return f"RunSecrets({len(self._keys)} runs)"
