"""The Advanced tab's placeholder definitions and cache clearing.

Placeholder definitions (`data/placeholders.json`) are checked by building the same `Registry` the API
builds before they are written. The cache is cleared per user or for everyone, after showing how many
images (and how many bytes) that removes; files are removed as finished entries only (see `cachefiles`).
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from linkpix.dashboard import cachefiles
from linkpix.dashboard.context import DashboardContext
from linkpix.dashboard.workflowedit import parse_json_text
from linkpix.errors import BadRequest, LinkPixError
from linkpix.render.placeholders import Registry

ALL = "(all users)"


def save_placeholders(ctx: DashboardContext, text: str, expected: Any) -> str:
    document = parse_json_text(text, "the placeholder definitions")
    try:
        registry = Registry(document, ctx.placeholders_path.name)
    except LinkPixError as exc:
        raise BadRequest(exc.message) from None

    def replace(current: Any) -> Any:
        if expected is not None and current != expected:
            raise BadRequest("placeholders.json was changed by someone else since you opened it; reload it first")
        return document

    ctx.store.update(ctx.placeholders_path, replace, default={"parameters": {}})
    return f"Saved {len(registry.specs)} parameter definitions; the API uses them on the next request."


def clear_summary(ctx: DashboardContext, choice: str | None) -> str:
    user = None if choice in (None, "", ALL) else choice
    try:
        count, size = cachefiles.summary(ctx.image_cache(), user)
    except LinkPixError as exc:
        return f"⚠️ {exc.message}"
    whose = "all users" if user is None else f"user `{user}`"
    if not count:
        return f"The cache of {whose} is empty: nothing to remove."
    return f"Clearing removes **{count} image{'s' if count != 1 else ''}** ({cachefiles.human_bytes(size)}) of {whose}."


def build(ctx: DashboardContext) -> tuple[list[Any], Any]:
    gr.Markdown("### Placeholder definitions\nThe parameters links may set: type, default, range, aliases, and "
                "which ComfyUI list a value must come from (`data/placeholders.json`).")
    loaded = gr.State(None)
    editor = gr.Code(language="json", label="placeholders.json", lines=14, max_lines=26, elem_id="lp-ph-editor")
    with gr.Row():
        save = gr.Button("Validate and save", variant="primary", elem_id="lp-ph-save")
        reload = gr.Button("Reload", elem_id="lp-ph-reload")
    result = gr.Markdown(elem_id="lp-ph-result")

    gr.Markdown("### Cache\nImages are kept per user; clearing is safe while LinkPix runs (a cleared link is "
                "made again when next opened).")
    with gr.Row():
        who = gr.Dropdown(label="Whose images", choices=[ALL], value=ALL, elem_id="lp-cache-user")
        clear = gr.Button("Clear", variant="stop", elem_id="lp-cache-clear")
    count = gr.Markdown(elem_id="lp-cache-count")
    cleared = gr.Markdown(elem_id="lp-cache-result")

    def load_placeholders() -> tuple[str, Any]:
        try:
            doc = ctx.store.get_copy(ctx.placeholders_path, default={"parameters": {}})
        except LinkPixError as exc:
            return f"// {exc.message}", None
        return json.dumps(doc, indent=2, ensure_ascii=False), doc

    def users(selected: str = ALL) -> Any:
        names = [ALL, *cachefiles.per_user(ctx.image_cache())]
        return gr.update(choices=names, value=selected if selected in names else ALL)

    def on_save(text: str, expected: Any) -> tuple[Any, ...]:
        try:
            message = save_placeholders(ctx, text, expected)
        except LinkPixError as exc:
            return f"Not saved: {exc.message}", gr.skip()
        return message, ctx.store.get_copy(ctx.placeholders_path)

    def on_clear(choice: str) -> tuple[Any, ...]:
        user = None if choice in (None, "", ALL) else choice
        try:
            removed = cachefiles.clear(ctx.image_cache(), user)
        except LinkPixError as exc:
            return f"{exc.message}", gr.skip(), gr.skip()
        return (f"Removed {removed} image{'s' if removed != 1 else ''}.", users(),
                clear_summary(ctx, ALL))

    save.click(on_save, inputs=[editor, loaded], outputs=[result, loaded], api_visibility="private")
    reload.click(load_placeholders, outputs=[editor, loaded], api_visibility="private")
    who.change(lambda c: clear_summary(ctx, c), inputs=[who], outputs=[count], api_visibility="private")
    clear.click(on_clear, inputs=[who], outputs=[cleared, who, count], api_visibility="private")

    def load() -> tuple[Any, ...]:
        text, doc = load_placeholders()
        return text, doc, users(), clear_summary(ctx, ALL)

    return [editor, loaded, who, count], load
