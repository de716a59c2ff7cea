"""Stage 3: a workflow template is an API-format graph plus bindings (parameter -> node inputs).

Bindings come from three sources, highest precedence first:

1. `%name%` placeholders anywhere in input values. A string that is exactly `"%steps%"` takes the value
   with its type (20, not "20"); a placeholder inside longer text is interpolated as text.
2. a sidecar `workflows/<name>.yaml`: `seed: "3.seed"`, or `steps: {target: "3.steps", type: int,
   default: 25}`, or a list of targets. An entry with only a default sets a placeholder's default.
3. detection by class type (`detect.py`) for whatever the first two left unbound.

A node input claimed by a higher source is never re-bound by a lower one. Rendering copies the parsed
graph and writes the values into the precomputed slots: there is no text replacement on serialized
JSON, and the values are never scanned again, so a prompt containing `%model%`, quotes or `{{x}}`
reaches ComfyUI exactly as written. The template itself is never modified.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linkpix.errors import BadRequest, ConfigError
from linkpix.model import validate_workflow_name
from linkpix.render.detect import detect, link_of, mask_from_alpha
from linkpix.render.placeholders import Ref, Registry, split_text
from linkpix.render.uiformat import is_ui_format, ui_to_api
from linkpix.storage.jsonstore import JsonStore, atomic_write_bytes

log = logging.getLogger(__name__)

ORIGINALS_DIR = "originals"
SETTINGS_DIR = "settings"


@dataclass(frozen=True)
class Slot:
    """One place in the graph that receives a value: `inputs[input]` of `node`, then `path` below it.

    `param` set: the whole value is that parameter's value (typed). `parts` set: text interpolation.
    """

    node: str
    input: str
    class_type: str
    source: str  # "placeholder" | "yaml" | "detected"
    path: tuple[Any, ...] = ()
    param: str | None = None
    parts: tuple[str | Ref, ...] | None = None

    def names(self) -> tuple[str, ...]:
        if self.param is not None:
            return (self.param,)
        return tuple(dict.fromkeys(p.name for p in self.parts or () if isinstance(p, Ref)))

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"node": self.node, "class_type": self.class_type, "input": self.input,
                               "mode": "value" if self.param is not None else "text"}
        if self.path:
            out["path"] = list(self.path)
        return out


@dataclass(frozen=True)
class ParamBinding:
    """A parameter the template accepts: where it comes from, its type and the value used by default."""

    name: str
    source: str
    type: str
    default: Any
    slots: tuple[Slot, ...]


def _copy(value: Any) -> Any:
    """Deep copy of JSON data (several times faster than copy.deepcopy on workflow graphs)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "string"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_api_graph(graph: Any, where: str) -> dict[str, Any]:
    """An API-format graph: {node id: {"class_type": str, "inputs": {...}}}, else ConfigError."""
    if not isinstance(graph, dict) or not graph:
        raise ConfigError(f"{where}: a workflow must be a non-empty JSON object of node id -> node")
    for nid, node in graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise ConfigError(f"{where}: node {nid!r} has no class_type; export the workflow with "
                              "'Save (API Format)' / 'Export (API)' in ComfyUI")
        if not isinstance(node.get("inputs", {}), dict):
            raise ConfigError(f"{where}: node {nid!r}: inputs must be an object")
    return graph


class WorkflowTemplate:
    """A parsed workflow and its bindings. Immutable after construction; `render` returns new graphs."""

    def __init__(self, name: str, document: Any, registry: Registry, sidecar: Any = None,
                 object_info: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.registry = registry
        self.converted = is_ui_format(document)
        graph = ui_to_api(document, object_info, name) if self.converted else document
        self._graph = _copy(check_api_graph(graph, name))
        slots: list[Slot] = []
        self._scan_placeholders(slots)
        claimed = {(s.node, s.input) for s in slots}
        yaml_defaults, yaml_types = self._apply_sidecar(sidecar, slots, claimed)
        bound = {n for s in slots for n in s.names()}
        found = detect(self._graph, lambda n, i: (n, i) in claimed or self._holds_placeholder(n, i))
        for param, targets in found.items():
            if param in bound:
                continue
            for nid, inp in targets:
                slots.append(Slot(nid, inp, self._graph[nid]["class_type"], "detected", param=param))
        self.slots: tuple[Slot, ...] = tuple(slots)
        self.params: dict[str, ParamBinding] = self._bindings(yaml_defaults, yaml_types)

    # ------------------------------------------------------------------------------- building
    def _holds_placeholder(self, node: str, inp: str) -> bool:
        value = self._graph[node]["inputs"].get(inp)
        return isinstance(value, str) and split_text(value) is not None

    def _scan_placeholders(self, slots: list[Slot]) -> None:
        def walk(value: Any, nid: str, inp: str, path: tuple[Any, ...]) -> None:
            if isinstance(value, str):
                parts = split_text(value)
                if parts is None:
                    return
                canon = tuple(Ref(self.registry.canonical(p.name)) if isinstance(p, Ref) else p for p in parts)
                cls = self._graph[nid]["class_type"]
                if len(canon) == 1 and isinstance(canon[0], Ref):
                    slots.append(Slot(nid, inp, cls, "placeholder", path, param=canon[0].name))
                else:
                    slots.append(Slot(nid, inp, cls, "placeholder", path, parts=canon))
            elif isinstance(value, list) and link_of(value) is None:
                for i, v in enumerate(value):
                    walk(v, nid, inp, path + (i,))
            elif isinstance(value, dict):
                for k, v in value.items():
                    walk(v, nid, inp, path + (k,))

        for nid, node in self._graph.items():
            for inp, value in node.get("inputs", {}).items():
                walk(value, nid, inp, ())

    def _apply_sidecar(self, sidecar: Any, slots: list[Slot],
                       claimed: set[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, str]]:
        defaults: dict[str, Any] = {}
        types: dict[str, str] = {}
        if sidecar is None:
            return defaults, types
        where = f"{Path(self.name).stem}.yaml"
        if not isinstance(sidecar, Mapping):
            raise ConfigError(f"{where}: expected a mapping of parameter -> \"node_id.input\"")
        placeholder_params = {n for s in slots for n in s.names()}
        for raw_name, entry in sidecar.items():
            name = self.registry.canonical(str(raw_name))
            if isinstance(entry, str | list):
                entry = {"targets": entry}
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{where}: {raw_name}: use \"node.input\", a list, or {{target, type, default}}")
            targets = entry.get("targets", entry.get("target", []))
            targets = [targets] if isinstance(targets, str) else list(targets or [])
            if "default" in entry:
                defaults[name] = entry["default"]
            if "type" in entry:
                if entry["type"] not in ("string", "int", "float", "bool"):
                    raise ConfigError(f"{where}: {raw_name}: type must be string, int, float or bool")
                types[name] = entry["type"]
            if name in placeholder_params:
                continue  # placeholders win; the entry may still give the default and type
            for target in targets:
                nid, _, inp = str(target).rpartition(".")
                node = self._graph.get(nid)
                if node is None or inp not in node.get("inputs", {}):
                    raise ConfigError(f"{where}: {raw_name}: target {target!r} is not a node input of "
                                      f"{self.name} (write it as \"node_id.input_name\")")
                if (nid, inp) in claimed:
                    log.warning("%s: %s -> %s is already a placeholder; ignored", where, raw_name, target)
                    continue
                if link_of(node["inputs"][inp]) is not None:
                    raise ConfigError(f"{where}: {raw_name}: {target} is a link, not a value")
                claimed.add((nid, inp))
                slots.append(Slot(nid, inp, node["class_type"], "yaml", param=name))
        return defaults, types

    def _bindings(self, yaml_defaults: dict[str, Any], yaml_types: dict[str, str]) -> dict[str, ParamBinding]:
        by_name: dict[str, list[Slot]] = {}
        for slot in self.slots:
            for n in slot.names():
                by_name.setdefault(n, []).append(slot)
        out: dict[str, ParamBinding] = {}
        for name, slots in by_name.items():
            spec = self.registry.spec(name)
            first = slots[0]
            if name in yaml_defaults:
                default = yaml_defaults[name]
            elif first.source != "placeholder":  # the value written in the file
                default = self._graph[first.node]["inputs"][first.input]
                if spec is not None and spec.render == "negate" and isinstance(default, int | float):
                    default = abs(default)
            else:
                default = spec.default if spec is not None else None
            kind = yaml_types.get(name) or (spec.type if spec else _type_of(default))
            sources = {s.source for s in slots}
            source = next(s for s in ("placeholder", "yaml", "detected") if s in sources)
            out[name] = ParamBinding(name, source, kind, default, tuple(slots))
        return out

    # ------------------------------------------------------------------------------- using
    @property
    def graph(self) -> dict[str, Any]:
        """A private copy of the graph as stored (placeholders still in it)."""
        return _copy(self._graph)

    def accepts(self, name: str) -> bool:
        return self.registry.canonical(name) in self.params

    def render(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A new API-format graph with `values` (canonical name -> typed value) written in.

        Parameters without a value keep their default; a parameter with neither (a placeholder with no
        default, such as `%model%` or a custom `%outfit%`) is a BadRequest that names it.
        """
        missing = []
        resolved: dict[str, Any] = {}
        for name, binding in self.params.items():
            value = values.get(name, binding.default)
            if value is None:
                missing.append(name)
            else:
                resolved[name] = self.registry.written(name, value)
        if missing:
            raise BadRequest(f"workflow {self.name} needs a value for " + ", ".join(
                f"%{n}% (?{n}=...)" for n in missing), {"missing": missing, "workflow": self.name})
        out = _copy(self._graph)
        for slot in self.slots:
            if slot.param is not None:
                value = resolved[slot.param]
                if isinstance(value, list):  # a 2-element list would be read as a link
                    value = {"__value__": value}
            else:
                value = "".join(p if isinstance(p, str) else _text(resolved[p.name]) for p in slot.parts or ())
            container: Any = out[slot.node]["inputs"]
            key: Any = slot.input
            for step in slot.path:
                container, key = container[key], step
            container[key] = value
        return out

    def needs(self) -> dict[str, Any]:
        """The inputs the workflow takes besides text: `image` (a LoadImage), and `mask`: "file" (a
        LoadImageMask or `%mask%`), "alpha" (read from the image's alpha channel) or None."""
        image = self.params.get("image")
        mask = "file" if "mask" in self.params else None
        if mask is None and image is not None and image.slots:
            mask = "alpha" if mask_from_alpha(self._graph, image.slots[0].node) else None
        return {"image": image is not None, "mask": mask}

    def describe(self) -> dict[str, Any]:
        """What `GET /api/workflows/<name>` shows: each parameter, its type, default, targets, source."""
        params = {}
        for name, b in self.params.items():
            spec = self.registry.spec(name)
            entry: dict[str, Any] = {"type": b.type, "default": b.default, "source": b.source,
                                     "targets": [s.describe() for s in b.slots]}
            if spec is not None:
                entry["description"] = spec.description
                for key in ("min", "max"):
                    if getattr(spec, key) is not None:
                        entry[key] = getattr(spec, key)
            else:
                entry["custom"] = True
            params[name] = entry
        return {"name": self.name, "format": "ui (converted)" if self.converted else "api",
                "nodes": len(self._graph), "needs": self.needs(), "parameters": params}


# ------------------------------------------------------------------------------ workflow files
def list_workflows(workflows_dir: Path) -> list[str]:
    """Workflow file names (top level of the folder, `*.json`)."""
    try:
        return sorted(p.name for p in workflows_dir.iterdir()
                      if p.suffix == ".json" and p.is_file() and not p.name.startswith("."))
    except FileNotFoundError:
        return []


def workflow_path(workflows_dir: Path, name: str) -> Path:
    """The file of an existing workflow, or BadRequest listing the available ones."""
    name = validate_workflow_name(name)
    path = workflows_dir / name
    if not path.is_file():
        available = list_workflows(workflows_dir)
        raise BadRequest(f"unknown workflow {name!r}; available: {', '.join(available) or 'none'}",
                         {"parameter": "workflow", "allowed": available})
    return path


def sidecar_path(path: Path) -> Path | None:
    for suffix in (".yaml", ".yml"):
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def settings_path(workflows_dir: Path, name: str) -> Path:
    return workflows_dir / SETTINGS_DIR / name


def save_workflow(workflows_dir: Path, name: str, document: Any, store: JsonStore) -> Path:
    """Write a workflow (from the dashboard), keeping its first version in `workflows/originals/`.

    The document must be an API-format graph or a UI-format workflow (converted when used). Written
    atomically under the store's lock; the original is copied once and never overwritten.
    """
    name = validate_workflow_name(name)
    if not is_ui_format(document):
        try:
            check_api_graph(document, name)
        except ConfigError as exc:
            raise BadRequest(exc.message) from None
    path = workflows_dir / name
    original = workflows_dir / ORIGINALS_DIR / name
    if not original.exists():
        data = path.read_bytes() if path.is_file() else None
        if data is None:
            data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        atomic_write_bytes(original, data)
    store.write(path, document)
    return path
