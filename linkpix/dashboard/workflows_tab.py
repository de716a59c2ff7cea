"""The Advanced tab's workflows: upload, view and edit the JSON, see the parameters and where they land,
per-workflow defaults, restore the original. Everything is checked before it is written (see
`workflowedit`), and a save made over someone else's newer edit is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gradio as gr

from linkpix.dashboard import workflowedit as we
from linkpix.dashboard.apiclient import ApiError
from linkpix.dashboard.context import DashboardContext
from linkpix.errors import BadRequest, LinkPixError
from linkpix.render.workflows import list_workflows


def object_info_or_none(ctx: DashboardContext) -> tuple[dict[str, Any] | None, str]:
    try:
        return ctx.object_info(), ""
    except ApiError as exc:
        return None, f" (not checked against ComfyUI: {exc.message})"


def parameter_rows(description: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, p in description.get("parameters", {}).items():
        where = ", ".join(f"node {t['node']} {t['class_type']}.{t['input']}" for t in p.get("targets", []))
        rows.append([name, p.get("type"), json.dumps(p.get("default")), p.get("source"), where])
    return rows


def describe(ctx: DashboardContext, name: str) -> tuple[list[list[Any]], str]:
    """What the running API reports for this workflow (the truth a link gets)."""
    try:
        d = ctx.api().workflow(name)
    except ApiError as exc:
        return [], f"⚠️ {exc.message}"
    side = f", bindings from `{d['sidecar']}`" if d.get("sidecar") else ""
    return parameter_rows(d), f"`{name}`: {d.get('format')} format, {d.get('nodes')} nodes{side}."


def save_checked(ctx: DashboardContext, name: str, document: Any, expected: Any | None) -> str:
    """Prepare (convert, check, bind) and save; refuse if the file changed since it was loaded."""
    wdir = ctx.config.workflows_dir
    info, note = object_info_or_none(ctx)
    prepared = we.prepare(name, document, ctx.registry(), info, we.sidecar_of(wdir, name, ctx.store))
    path = wdir / prepared.name
    if expected is not None and path.is_file() and ctx.store.get(path) != expected:
        raise BadRequest(f"{prepared.name} was changed by someone else since you opened it; reload it first")
    we.save(wdir, prepared, ctx.store)
    converted = " (converted from ComfyUI's UI format)" if prepared.converted else ""
    return (f"Saved `{prepared.name}`{converted}: {len(prepared.parameters)} parameters "
            f"({', '.join(prepared.parameters)}){note}.")


def build(ctx: DashboardContext) -> tuple[list[Any], Any]:
    gr.Markdown("### Workflows\nExport from ComfyUI with **Save (API Format)**; a normal (UI-format) save is "
                "converted using what your ComfyUI reports. Links pick one with `?workflow=<name>`.")
    with gr.Row():
        upload = gr.File(label="Upload a workflow (.json)", file_types=[".json"], type="filepath", scale=2,
                         elem_id="lp-wf-upload")
        with gr.Column(scale=2):
            upload_name = gr.Textbox(label="Save as (empty: the file's name)", elem_id="lp-wf-upload-name")
            upload_btn = gr.Button("Add workflow", variant="primary", elem_id="lp-wf-upload-btn")
    upload_result = gr.Markdown(elem_id="lp-wf-upload-result")
    with gr.Row():
        pick = gr.Dropdown(label="Workflow", choices=[], elem_id="lp-wf-pick", scale=3)
        restore = gr.Button("Restore original", scale=1, elem_id="lp-wf-restore")
    summary = gr.Markdown(elem_id="lp-wf-summary")
    params = gr.Dataframe(headers=["parameter", "type", "default", "source", "lands in"], value=[], column_count=5,
                          interactive=False, label="Detected parameters and where they land", elem_id="lp-wf-params")
    loaded = gr.State(None)
    with gr.Row():
        with gr.Column(scale=3):
            editor = gr.Code(language="json", label="Workflow JSON (API format)", lines=18, max_lines=30,
                             elem_id="lp-wf-editor")
            save = gr.Button("Validate and save", variant="primary", elem_id="lp-wf-save")
        with gr.Column(scale=2):
            defaults = gr.Code(language="json", label="Defaults for this workflow (workflows/settings/<name>.json)",
                               lines=10, elem_id="lp-wf-defaults")
            save_defaults = gr.Button("Save defaults", elem_id="lp-wf-save-defaults")
    result = gr.Markdown(elem_id="lp-wf-result")

    def open_workflow(name: str | None) -> tuple[Any, ...]:
        if not name:
            return [], "", "", "{}", None
        wdir = ctx.config.workflows_dir
        try:
            text = we.read_text(wdir, name, ctx.store)
            settings = json.dumps(we.read_settings(wdir, name, ctx.store), indent=2)
            document = ctx.store.get_copy(wdir / name)
        except LinkPixError as exc:
            return [], f"⚠️ {exc.message}", "", "{}", None
        rows, text_summary = describe(ctx, name)
        if we.original_path(wdir, name).is_file():
            text_summary += " A saved original can be restored."
        return rows, text_summary, text, settings, document

    opened = [params, summary, editor, defaults, loaded]

    def names(selected: str | None = None) -> Any:
        found = list_workflows(ctx.config.workflows_dir)
        value = selected if selected in found else (found[0] if found else None)
        return gr.update(choices=found, value=value)

    def on_upload(path: str | None, name: str) -> tuple[Any, ...]:
        if not path:
            return "Choose a .json file first.", gr.skip()
        try:
            target = we.upload_name(name.strip() or Path(path).name)
            document = we.parse_json_text(Path(path).read_text(encoding="utf-8"), "the uploaded file")
            if (ctx.config.workflows_dir / target).is_file():
                raise BadRequest(f"a workflow named {target} exists; choose another name or edit it below")
            message = save_checked(ctx, target, document, None)
        except (LinkPixError, UnicodeDecodeError) as exc:
            reason = exc.message if isinstance(exc, LinkPixError) else "the file is not UTF-8 text"
            return f"Not added: {reason}", gr.skip()
        return message, names(target)

    def on_save(name: str | None, text: str, expected: Any) -> tuple[Any, ...]:
        if not name:
            return ("Pick a workflow first.", *[gr.skip()] * 5)
        try:
            message = save_checked(ctx, name, we.parse_json_text(text), expected)
        except LinkPixError as exc:
            return (f"Not saved: {exc.message}", *[gr.skip()] * 5)
        return (message, *open_workflow(name))

    def on_defaults(name: str | None, text: str) -> str:
        if not name:
            return "Pick a workflow first."
        try:
            accepted = ctx.api().workflow(name).get("parameters", {})
            saved = we.save_settings(ctx.config.workflows_dir, name, text, ctx.store, ctx.registry(), accepted)
        except (LinkPixError, ApiError) as exc:
            return f"Not saved: {exc.message}"
        return f"Defaults of `{name}` saved: {json.dumps(saved)}"

    def on_restore(name: str | None) -> tuple[Any, ...]:
        if not name:
            return ("Pick a workflow first.", *[gr.skip()] * 5)
        try:
            we.restore_original(ctx.config.workflows_dir, name, ctx.store)
        except LinkPixError as exc:
            return (f"{exc.message}", *[gr.skip()] * 5)
        return (f"`{name}` is back to its original.", *open_workflow(name))

    pick.change(open_workflow, inputs=[pick], outputs=opened, api_visibility="private")
    upload_btn.click(on_upload, inputs=[upload, upload_name], outputs=[upload_result, pick], api_visibility="private")
    save.click(on_save, inputs=[pick, editor, loaded], outputs=[result, *opened], api_visibility="private")
    save_defaults.click(on_defaults, inputs=[pick, defaults], outputs=[result], api_visibility="private")
    restore.click(on_restore, inputs=[pick], outputs=[result, *opened], api_visibility="private")
    return [pick], lambda: names()
