"""Graph walking like ComfyUI's comfy_execution: execution order and classic-cache signatures.

Order (`ExecutionList`): nodes are staged depth-first from each output (ComfyUI's TopologicalSort), and
among ready nodes an output node goes first, then a node feeding an output, then one two hops away, else
the first staged - reproducing the node order seen in the captures. Signatures: class, IS_CHANGED value
and inputs (constants, or the signature of the linked ancestor plus its slot) - never node ids - so the
same sub-graph under other ids hits the cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any


def is_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool))


class DependencyCycleError(Exception):
    """Raised when no node is ready although some are pending."""

    __module__ = "graph"


class ExecutionList:
    """The staged nodes of one prompt and what blocks what."""

    def __init__(self, prompt: dict[str, Any], is_output: Callable[[str], bool],
                 is_cached: Callable[[str], bool]) -> None:
        self.prompt = prompt
        self.is_output = is_output
        self.is_cached = is_cached
        self.pending: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, dict[int, bool]]] = {}

    def add_node(self, node_id: str) -> None:
        stack = [node_id]
        links: list[tuple[str, int, str]] = []
        while stack:
            unique_id = stack.pop()
            if unique_id in self.pending:
                continue
            self.pending[unique_id] = True
            self.block_count[unique_id] = 0
            self.blocking[unique_id] = {}
            for value in self.prompt[unique_id]["inputs"].values():
                if is_link(value) and value[0] in self.prompt:
                    from_id, socket = value
                    if not self.is_cached(from_id):
                        stack.append(from_id)
                    links.append((from_id, socket, unique_id))
        for from_id, socket, to_id in links:
            if not self.is_cached(from_id):
                if to_id not in self.blocking[from_id]:
                    self.blocking[from_id][to_id] = {}
                    self.block_count[to_id] += 1
                self.blocking[from_id][to_id][socket] = True

    def is_empty(self) -> bool:
        return len(self.pending) == 0

    def stage(self) -> str:
        ready = [n for n in self.pending if self.block_count[n] == 0]
        if not ready:
            raise DependencyCycleError("Dependency cycle detected")
        for n in ready:
            if self.is_output(n):
                return n
        for n in ready:
            if any(self.is_output(b) for b in self.blocking[n]):
                return n
        for n in ready:
            for b in self.blocking[n]:
                if any(self.is_output(b1) for b1 in self.blocking.get(b, {})):
                    return n
        return ready[0]

    def complete(self, node_id: str) -> None:
        del self.pending[node_id]
        for blocked in self.blocking.pop(node_id, {}):
            self.block_count[blocked] -= 1


def signatures(prompt: dict[str, Any], is_changed: Callable[[str], Any],
               uses_node_id: Callable[[str], bool]) -> dict[str, str]:
    """Cache key per node id: a hash of its class, IS_CHANGED and inputs including all ancestors."""
    memo: dict[str, str] = {}

    def sig(node_id: str, trail: frozenset[str]) -> str:
        if node_id in memo:
            return memo[node_id]
        node = prompt[node_id]
        parts: list[Any] = [str(node.get("class_type")), repr(is_changed(node_id))]
        if uses_node_id(node_id):
            parts.append(["id", node_id])
        inputs = node.get("inputs", {})
        for key in sorted(inputs):
            value = inputs[key]
            if is_link(value) and value[0] in prompt and value[0] not in trail:
                parts.append([key, "link", sig(value[0], trail | {node_id}), value[1]])
            else:
                parts.append([key, "const", json.dumps(value, sort_keys=True, default=repr)])
        digest = hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()
        memo[node_id] = digest
        return digest

    return {node_id: sig(node_id, frozenset()) for node_id in prompt}
