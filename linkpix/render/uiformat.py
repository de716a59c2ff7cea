"""Convert a UI-format workflow (ComfyUI's "Save": `nodes` + `links` arrays) to the API format.

People often drop the wrong export into `workflows/`. Rather than refuse it, we convert it the way the
ComfyUI frontend does before queueing (protocol reference §10): widget values are matched to input
names using /object_info's `input_order`, UI-only values (the seed's "randomize", an upload button's
"image") are skipped, links through Reroute nodes are followed, PrimitiveNode values become constants,
muted nodes are dropped and bypassed nodes are passed through. Without object_info (ComfyUI down) the
conversion is impossible and the message says to export with "Save (API Format)". Group nodes and
subgraphs are refused with the same advice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from linkpix.errors import ConfigError

VIRTUAL_NODES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode", "SetNode", "GetNode"})
MUTED, BYPASSED = 2, 4
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
ADVICE = "export it from ComfyUI with 'Save (API Format)' (Workflow > Export (API))"


def is_ui_format(document: Any) -> bool:
    return isinstance(document, Mapping) and isinstance(document.get("nodes"), list) \
        and isinstance(document.get("links"), list)


def _links(document: Mapping[str, Any]) -> dict[int, tuple[int, int, str]]:
    """link id -> (origin node id, origin slot, type); accepts the 0.4 arrays and version-1 objects."""
    out = {}
    for link in document.get("links", []):
        if isinstance(link, list) and len(link) >= 6:
            out[link[0]] = (link[1], link[2], link[5])
        elif isinstance(link, Mapping):
            out[link["id"]] = (link["origin_id"], link["origin_slot"], link.get("type", "*"))
    return out


def _order(info: Mapping[str, Any]) -> list[tuple[str, list[Any]]]:
    inputs = info.get("input", {})
    order = info.get("input_order") or {s: list(inputs.get(s, {})) for s in ("required", "optional")}
    out = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            spec = inputs.get(section, {}).get(name)
            if spec is not None:
                out.append((name, list(spec)))
    return out


def _widget_slots(name: str, spec: list[Any]) -> int:
    """How many widgets_values entries this input consumes (0 for a socket)."""
    kind = spec[0] if spec else None
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}
    is_combo = isinstance(kind, list) or kind == "COMBO"
    if not (is_combo or kind in WIDGET_TYPES) or opts.get("forceInput"):
        return 0
    count = 1
    control = opts.get("control_after_generate")
    if is_combo:
        if control:
            count += 2
        if opts.get("image_upload") or opts.get("video_upload") or opts.get("animated_image_upload"):
            count += 1
    elif kind in ("INT", "FLOAT"):
        if control or (kind == "INT" and name in ("seed", "noise_seed") and control is not False):
            count += 1
    return count


class _Converter:
    def __init__(self, document: Mapping[str, Any], info: Mapping[str, Any], name: str) -> None:
        self.nodes = {n["id"]: n for n in document["nodes"] if isinstance(n, Mapping) and "id" in n}
        self.links = _links(document)
        self.info = info
        self.name = name

    def _origin(self, link_id: Any, depth: int = 0) -> tuple[str, Any] | None:
        """("link", [id, slot]) or ("const", value) for a link, or None to drop the input."""
        if link_id is None or link_id not in self.links or depth > 64:
            return None
        oid, oslot, ltype = self.links[link_id]
        node = self.nodes.get(oid)
        if node is None:
            return None
        kind, mode = node.get("type"), node.get("mode", 0)
        if kind == "Reroute":
            ins = node.get("inputs") or [{}]
            return self._origin(ins[0].get("link"), depth + 1)
        if kind == "PrimitiveNode":
            values = node.get("widgets_values") or [None]
            return ("const", values[0])
        if mode == MUTED or kind in VIRTUAL_NODES:
            return None
        if mode == BYPASSED:
            ins = [i for i in node.get("inputs", []) if i.get("link") is not None and i.get("type") == ltype]
            same = [i for n, i in enumerate(node.get("inputs", [])) if n == oslot and i in ins]
            pick = (same or ins or [None])[0]
            return self._origin(pick.get("link"), depth + 1) if pick else None
        return ("link", [str(oid), oslot])

    def convert(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for nid, node in self.nodes.items():
            kind = node.get("type")
            if kind in VIRTUAL_NODES or node.get("mode", 0) in (MUTED, BYPASSED):
                continue
            info = self.info.get(kind)
            if not isinstance(info, Mapping):
                raise ConfigError(f"{self.name}: node {nid} has type {kind!r}, which this ComfyUI does not "
                                  f"have (a custom node, group node or subgraph?); {ADVICE}")
            inputs: dict[str, Any] = {}
            values = node.get("widgets_values", [])
            if isinstance(values, Mapping):
                inputs.update(values)
            else:
                pos = 0
                for name, spec in _order(info):
                    used = _widget_slots(name, spec)
                    if used and pos < len(values):
                        inputs[name] = values[pos]
                    pos += used
            for inp in node.get("inputs", []):
                if inp.get("link") is None:
                    continue
                origin = self._origin(inp["link"])
                if origin is None:
                    inputs.pop(inp.get("name"), None)
                else:
                    inputs[inp["name"]] = origin[1]
            entry: dict[str, Any] = {"class_type": kind, "inputs": inputs}
            if node.get("title"):
                entry["_meta"] = {"title": node["title"]}
            out[str(nid)] = entry
        return out


def ui_to_api(document: Mapping[str, Any], object_info: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """The API-format graph of a UI-format workflow (ConfigError with advice when impossible)."""
    if not object_info:
        raise ConfigError(f"{name} is a UI-format workflow (ComfyUI's plain 'Save'). Converting it needs "
                          f"ComfyUI's /object_info, which is unavailable right now; {ADVICE}")
    subgraphs = (document.get("definitions") or {}).get("subgraphs") if isinstance(
        document.get("definitions"), Mapping) else None
    if subgraphs or (document.get("extra") or {}).get("groupNodes"):
        raise ConfigError(f"{name} uses subgraphs or group nodes, which LinkPix does not convert; {ADVICE}")
    graph = _Converter(document, object_info, name).convert()
    if not graph:
        raise ConfigError(f"{name}: the UI-format workflow has no runnable nodes; {ADVICE}")
    return graph
