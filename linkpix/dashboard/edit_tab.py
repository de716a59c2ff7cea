"""The Edit tab: upload a photo, write the instruction, see before and after side by side, the method
LinkPix chose and how well a colour table fits, and download the full-resolution result and the `.cube`.

Like the Generate tab it only talks to the API (`POST /edit`), so what it shows is what the API returns.
The pictures shown are previews (at most PREVIEW pixels on the long side); the downloads are full size.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, ImageOps

from linkpix.dashboard.apiclient import ApiError
from linkpix.dashboard.context import DashboardContext

PREVIEW = 1200
METHODS = ("auto", "lut", "region", "direct")


def _preview(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        img = ImageOps.exif_transpose(img)
        img.thumbnail((PREVIEW, PREVIEW))
        return img.convert("RGB")


def edit_workflows(ctx: DashboardContext) -> tuple[list[str], str | None, str]:
    """(workflows that take an image, the default edit workflow, message)."""
    try:
        listing = ctx.api().workflows()
    except ApiError as exc:
        return [], None, f"⚠️ {exc.message}"
    needs = listing.get("needs", {})
    names = [n for n in listing.get("workflows", []) if needs.get(n, {}).get("image")]
    default = listing.get("edit_default")
    return names, default if default in names else (names[0] if names else None), ""


def summary(meta: dict[str, Any]) -> str:
    """What the result is: method, fit, size (the markdown the tab shows; unit-tested)."""
    fit = meta.get("fit") or {}
    method = meta.get("method")
    why = {"lut": "a colour edit: the model's colours applied to the original at full resolution",
           "region": "a spatial edit: only the region the model changed, in the original at full resolution",
           "direct": "the model's output as it is, at the model's size"}.get(str(method), "")
    text = f"**Method: {method}** — {why}  \n**Size:** {meta.get('width')}×{meta.get('height')} · " \
           f"**format:** {meta.get('format')} · **cache:** {meta.get('cache')}"
    if fit:
        text += (f"  \n**Fit of the colour table** (CIEDE2000 against the model's output): mean ΔE "
                 f"{fit.get('mean', 0):.2f}, 95th percentile {fit.get('p95', 0):.2f}, "
                 f"{100 * fit.get('miss', 0):.1f} % of pixels missed by more than 10")
    if meta.get("region_share") is not None:
        text += f"  \n**Region taken from the model:** {100 * meta['region_share']:.1f} % of the picture"
    if meta.get("notes"):
        text += "  \n" + "; ".join(str(n) for n in meta["notes"])
    return text


def run(ctx: DashboardContext, path: str | None, prompt: str, workflow: str | None,
        method: str) -> tuple[Any, ...]:
    """(before, after, info, result file, cube file) for one edit."""
    if not path:
        return None, None, "⚠️ Upload a photo first.", None, None
    if not (prompt or "").strip():
        return None, None, "⚠️ Write the instruction first.", None, None
    data = Path(path).read_bytes()
    api = ctx.api()
    try:
        meta = api.edit(data, prompt, workflow, method).json()
        result = api.image_bytes(meta["url"])
        cube = api.edit(data, prompt, workflow, method, fmt="cube").content
    except ApiError as exc:
        return _preview(data), None, f"⚠️ {exc.message}", None, None
    folder = Path(tempfile.mkdtemp(prefix="linkpix-edit-"))
    ext = {"jpeg": "jpg"}.get(meta.get("format"), meta.get("format") or "png")
    result_path = folder / f"edited.{ext}"
    result_path.write_bytes(result)
    cube_path = folder / "look.cube"
    cube_path.write_bytes(cube)
    return _preview(data), _preview(result), summary(meta), str(result_path), str(cube_path)


def build(ctx: DashboardContext) -> tuple[list[Any], Any]:
    """The tab; returns (outputs, load function) so the app refreshes the workflow list when it opens."""
    with gr.Row():
        with gr.Column(scale=2):
            photo = gr.Image(label="Photo", type="filepath", sources=["upload"], elem_id="lp-edit-image",
                             format="png")
            prompt = gr.Textbox(label="Instruction", lines=2, placeholder="warm cinematic colour grade",
                                elem_id="lp-edit-prompt")
            with gr.Row():
                workflow = gr.Dropdown(label="Workflow", choices=[], elem_id="lp-edit-workflow")
                method = gr.Radio(list(METHODS), value="auto", label="Method", elem_id="lp-edit-method",
                                  info="auto: a colour edit at full resolution, a spatial edit as the model made it")
            note = gr.Markdown()
            button = gr.Button("Edit", variant="primary", elem_id="lp-edit-run")
        with gr.Column(scale=3):
            with gr.Row():
                before = gr.Image(label="Before", interactive=False, elem_id="lp-edit-before")
                after = gr.Image(label="After", interactive=False, elem_id="lp-edit-after")
            info = gr.Markdown(elem_id="lp-edit-info")
            with gr.Row():
                result = gr.File(label="Full-resolution result", interactive=False, elem_id="lp-edit-download")
                cube = gr.File(label="Colour table (.cube: Resolve, Lightroom, ffmpeg)", interactive=False,
                               elem_id="lp-edit-cube")

    button.click(lambda p, t, w, m: run(ctx, p, t, w, m), inputs=[photo, prompt, workflow, method],
                 outputs=[before, after, info, result, cube], concurrency_limit=2, api_visibility="private")

    def load() -> tuple[Any, ...]:
        names, default, message = edit_workflows(ctx)
        return gr.update(choices=names, value=default), message

    return [workflow, note], load
