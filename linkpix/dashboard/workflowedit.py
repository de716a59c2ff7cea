"""Workflows from the Advanced tab: upload, edit, per-workflow defaults, restore the original.

Nothing reaches `workflows/` unless it would work: the text must be JSON, a UI-format export is
converted to the API format (with ComfyUI's object_info, as the frontend does), the graph must be one
ComfyUI can satisfy (`graphcheck`), and its parameter bindings must build. Every refusal is a
`ConfigError`/`BadRequest` whose message says what is wrong. Saving goes through `save_workflow`, which
keeps the first version in `workflows/originals/` so it can always be restored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linkpix.dashboard.graphcheck import graph_problems
from linkpix.errors import BadRequest, ConfigError, LinkPixError
from linkpix.model import validate_workflow_name
from linkpix.render.placeholders import Registry
from linkpix.render.uiformat import is_ui_format, ui_to_api
from linkpix.render.workflows import (
    ORIGINALS_DIR,
    WorkflowTemplate,
    check_api_graph,
    save_workflow,
    settings_path,
    sidecar_path,
)
from linkpix.storage.jsonstore import JsonStore


@dataclass(frozen=True)
class Prepared:
    """A workflow ready to save: the API-format graph and what was found in it."""

    name: str
    graph: dict[str, Any]
    converted: bool
    parameters: dict[str, Any]


def parse_json_text(text: str, what: str = "the workflow") -> Any:
    """JSON from the editor or an uploaded file; the error names line and column."""
    if not (text or "").strip():
        raise BadRequest(f"{what} is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"{what} is not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def upload_name(filename: str) -> str:
    """A workflow name from an uploaded file's name (`My Flow (1).json` -> `My_Flow_1.json`)."""
    stem = Path(filename or "workflow.json").stem
    clean = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem).strip("._") or "workflow"
    while "__" in clean:
        clean = clean.replace("__", "_")
    return validate_workflow_name(clean[:100])


def prepare(name: str, document: Any, registry: Registry, object_info: Mapping[str, Any] | None,
            sidecar: Any = None) -> Prepared:
    """Convert (UI format), check against object_info, and build the bindings; raise with the reason.

    Without object_info (ComfyUI down) a UI-format file cannot be converted and a graph cannot be
    checked: the first is refused, the second is accepted on its structure alone.
    """
    name = validate_workflow_name(name)
    converted = is_ui_format(document)
    try:
        graph = ui_to_api(document, object_info, name) if converted else document
        check_api_graph(graph, name)
    except ConfigError as exc:
        raise BadRequest(exc.message) from None
    if object_info:
        problems = graph_problems(graph, object_info)
        if problems:
            raise BadRequest("ComfyUI cannot run this workflow: " + "; ".join(problems),
                             {"problems": problems})
    try:
        template = WorkflowTemplate(name, graph, registry, sidecar)
    except LinkPixError as exc:
        raise BadRequest(f"the workflow's parameters cannot be bound: {exc.message}") from None
    return Prepared(name, graph, converted, template.describe()["parameters"])


def save(workflows_dir: Path, prepared: Prepared, store: JsonStore) -> Path:
    return save_workflow(workflows_dir, prepared.name, prepared.graph, store)


def sidecar_of(workflows_dir: Path, name: str, store: JsonStore) -> Any:
    side = sidecar_path(workflows_dir / validate_workflow_name(name))
    return store.get(side) if side is not None else None


def read_text(workflows_dir: Path, name: str, store: JsonStore) -> str:
    """The workflow as pretty JSON for the editor."""
    path = workflows_dir / validate_workflow_name(name)
    return json.dumps(store.get(path), indent=2, ensure_ascii=False)


def original_path(workflows_dir: Path, name: str) -> Path:
    return workflows_dir / ORIGINALS_DIR / validate_workflow_name(name)


def restore_original(workflows_dir: Path, name: str, store: JsonStore) -> Path:
    """Put the first saved version back (the copy in originals/ stays for next time)."""
    original = original_path(workflows_dir, name)
    if not original.is_file():
        raise BadRequest(f"{name} has no saved original: it was never changed from the dashboard")
    document = parse_json_text(original.read_text(encoding="utf-8"), f"the original of {name}")
    path = workflows_dir / original.name
    store.write(path, document)
    return path


# ------------------------------------------------------------------------------ per-workflow defaults
def read_settings(workflows_dir: Path, name: str, store: JsonStore) -> dict[str, Any]:
    doc = store.get(settings_path(workflows_dir, validate_workflow_name(name)), default={})
    return dict(doc) if isinstance(doc, Mapping) else {}


def save_settings(workflows_dir: Path, name: str, text: str, store: JsonStore, registry: Registry,
                  accepted: Mapping[str, Any]) -> dict[str, Any]:
    """Write `workflows/settings/<name>.json` after checking each value the way a request would be.

    `accepted` is the workflow's parameters (from its description): a default for a parameter the
    workflow does not take would silently do nothing, so it is refused. `{}` removes all defaults.
    """
    name = validate_workflow_name(name)
    doc = parse_json_text(text or "{}", "the workflow defaults")
    if not isinstance(doc, dict):
        raise BadRequest('workflow defaults must be a JSON object of parameter -> value, e.g. {"steps": 25}')
    clean: dict[str, Any] = {}
    for key, value in doc.items():
        if key in ("style", "styles"):
            clean[key] = value
            continue
        canonical = registry.canonical(key)
        if canonical not in accepted:
            raise BadRequest(f"{name} has no parameter {key!r}; it accepts: {', '.join(sorted(accepted))}")
        clean[key] = registry.coerce(key, value)
    store.write(settings_path(workflows_dir, name), clean)
    return clean
