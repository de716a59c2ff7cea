"""The Generate tab: prompt, style, workflow, seed and the workflow's own parameters; a progress bar fed
by the job's events; the image, its seed and the link that reproduces it.

Generation goes through the API's async jobs (`POST /generate` + the event stream), never around it.
The parameter controls are rebuilt from the workflow's description whenever another workflow is picked.
"""

from __future__ import annotations

import html
import io
from collections.abc import Iterator
from typing import Any

import gradio as gr
from PIL import Image, UnidentifiedImageError

from linkpix.dashboard.apiclient import ApiError
from linkpix.dashboard.context import DashboardContext
from linkpix.dashboard.genjob import Update, follow, job_body
from linkpix.dashboard.paramcontrols import ControlSpec, control_specs, request_params
from linkpix.dashboard.stylesedit import user_defaults
from linkpix.errors import LinkPixError


def progress_html(fraction: float, text: str, state: str = "running") -> str:
    """A progress bar whose `data-progress` (0-100) tests and people can both read."""
    pct = max(0, min(100, round(fraction * 100)))
    return (f'<div class="lp-progress" data-progress="{pct}" data-state="{state}">'
            f'<div class="lp-progress-bar" style="width:{pct}%"></div></div>'
            f'<div class="lp-progress-text">{html.escape(text)} · {pct}%</div>')


def _component(spec: ControlSpec) -> gr.components.Component:
    common: dict[str, Any] = {"label": spec.label, "info": spec.info or None, "elem_id": f"lp-param-{spec.name}",
                              "key": f"param-{spec.name}", "interactive": True}
    if spec.kind == "dropdown":
        return gr.Dropdown(choices=list(spec.choices), value=spec.value, allow_custom_value=True, **common)
    if spec.kind == "slider":
        return gr.Slider(minimum=spec.minimum or 0, maximum=spec.maximum or 0, value=spec.value, step=spec.step,
                         **common)
    if spec.kind == "number":
        return gr.Number(value=spec.value, minimum=spec.minimum, maximum=spec.maximum, precision=spec.precision,
                         **common)
    if spec.kind == "checkbox":
        return gr.Checkbox(value=bool(spec.value), **common)
    return gr.Textbox(value=spec.value, lines=spec.lines, **common)


def choices(ctx: DashboardContext) -> tuple[list[str], str | None, list[str], list[str], str]:
    """(workflows, default workflow, styles, default styles, message) from the API."""
    try:
        api = ctx.api()
        wf = api.workflows()
        styles = sorted(api.styles())
    except ApiError as exc:
        return [], None, ["none"], ["none"], f"⚠️ {exc.message}"
    default = user_defaults(ctx.store, ctx.preferences_path).get("default", "none")
    picked = [s for s in default.split(",") if s in styles] or ["none"]
    return wf.get("workflows", []), wf.get("default"), styles, picked, ""


def _specs(ctx: DashboardContext, workflow: str) -> tuple[list[ControlSpec], str]:
    api = ctx.api()
    try:
        description = api.workflow(workflow)
    except ApiError as exc:
        return [], f"⚠️ {exc.message}"
    try:
        models = api.models()
        note = ""
    except ApiError as exc:
        models, note = None, f"Model lists unavailable ({exc.message}); type names by hand."
    try:
        registry = ctx.registry()
    except LinkPixError as exc:
        return [], f"⚠️ {exc.message}"
    return control_specs(description, registry, models), note


def run(ctx: DashboardContext, specs: list[ControlSpec], prompt: str, styles: list[str] | None,
        workflow: str, seed: Any, values: list[Any]) -> Iterator[tuple[Any, ...]]:
    """(progress, image, seed, link, message) updates for one generation."""
    if not (prompt or "").strip():
        yield progress_html(0, "Nothing to do", "error"), None, "", "", "⚠️ Write a prompt first."
        return
    try:
        body = job_body(prompt, list(styles or []), workflow, seed, request_params(specs, values))
    except ValueError as exc:
        yield progress_html(0, "Nothing to do", "error"), None, "", "", f"⚠️ {exc}"
        return
    update: Update
    for update in follow(ctx.api(), body):
        # A picture is sent only when it is new. Gradio writes every picture it is given to a file named by
        # its hash, truncating and rewriting the same file for the same picture; re-sending the last preview
        # with each progress step rewrote the file while the browser was fetching it, and uvicorn (h11)
        # failed the fetch: "Too much data for declared Content-Length".
        image: Any = gr.skip()
        if update.image is not None or update.preview is not None:
            try:
                image = Image.open(io.BytesIO(update.image or update.preview or b""))
            except UnidentifiedImageError:  # a workflow that saves a video or a sound: its link opens the file
                image = gr.skip()
        if update.error:
            yield (progress_html(update.fraction, update.text, "error"), image, "", "",
                   f"⚠️ **{update.text}**: {update.error}")
            return
        if update.done:
            cache = update.meta.get("cache")
            yield (progress_html(1.0, update.text, "done"), image, str(update.seed), update.link,
                   f"{update.text}" + (f" (cache {cache})" if cache else ""))
            return
        yield progress_html(update.fraction, update.text), image, gr.skip(), gr.skip(), gr.skip()


def build(ctx: DashboardContext) -> tuple[list[Any], Any]:
    """The tab; returns (outputs, load function) so the app refreshes the lists when it opens."""
    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(label="Prompt", lines=3, placeholder="a red fox in the snow", elem_id="lp-prompt")
            with gr.Row():
                styles = gr.Dropdown(label="Style", multiselect=True, choices=["none"], value=["none"],
                                     elem_id="lp-style")
                workflow = gr.Dropdown(label="Workflow", choices=[], elem_id="lp-workflow")
                seed = gr.Textbox(label="Seed", value="", elem_id="lp-seed", placeholder="from the link",
                                  info="Empty: derived from the prompt and settings (same link, same image); "
                                       "a number; or 'random'.")
            lists_note = gr.Markdown()
            with gr.Accordion("Workflow parameters", open=True):

                @gr.render(inputs=[workflow], triggers=[workflow.change])
                def parameters(name: str | None) -> None:
                    if not name:
                        gr.Markdown("Pick a workflow.")
                        return
                    specs, note = _specs(ctx, name)
                    if note:
                        gr.Markdown(note)
                    with gr.Row():
                        controls = [_component(s) for s in specs]

                    def go(p: str, st: list[str] | None, wf: str, sd: Any, *vals: Any) -> Iterator[tuple[Any, ...]]:
                        yield from run(ctx, specs, p, st, wf, sd, list(vals))

                    button.click(go, inputs=[prompt, styles, workflow, seed, *controls],
                                 outputs=[progress, image, seed_out, link, message], concurrency_limit=4,
                                 show_progress="hidden", api_visibility="private")

            with gr.Row():
                button = gr.Button("Generate", variant="primary", elem_id="lp-generate")
                reload = gr.Button("Reload lists", size="sm")
        with gr.Column(scale=2):
            progress = gr.HTML(progress_html(0, "Idle", "idle"), elem_id="lp-progress")
            image = gr.Image(label="Image", type="pil", interactive=False, elem_id="lp-image", format="png")
            message = gr.Markdown(elem_id="lp-message")
            seed_out = gr.Textbox(label="Seed used", interactive=False, elem_id="lp-seed-out")
            link = gr.Textbox(label="Link that reproduces this image", interactive=False, buttons=["copy"],
                              elem_id="lp-link")

    def load(current: str | None) -> tuple[Any, ...]:
        wfs, default, style_names, picked, note = choices(ctx)
        keep = current if current in wfs else default  # the same value: no re-render, typed values stay
        return gr.update(choices=wfs, value=keep), gr.update(choices=style_names, value=picked), note

    outputs = [workflow, styles, lists_note]
    reload.click(load, inputs=[workflow], outputs=outputs, api_visibility="private")
    return [workflow, outputs], load
