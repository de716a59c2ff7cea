"""The Settings tab's styles: add, edit, delete, preview the final prompt; each user's default style.

Changes land in `data/styles.json` / `data/user_preferences.json` through the store; the API serves them
on the next request (a link with `?style=<new>` works at once, no restart).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from linkpix.dashboard.context import DashboardContext
from linkpix.dashboard.stylesedit import (
    delete_style,
    list_styles,
    preview_style,
    save_style,
    set_user_default,
    user_defaults,
)
from linkpix.errors import LinkPixError
from linkpix.render.styles import NONE

NEW = "(new style)"
SAMPLE_PROMPT = "a red fox in the snow"


def style_table(ctx: DashboardContext) -> list[list[str]]:
    styles = list_styles(ctx.store, ctx.styles_path)
    return [[name, s.pre, s.post, s.negative, s.description] for name, s in styles.items()]


def preferences_table(ctx: DashboardContext) -> list[list[str]]:
    return [[user, style] for user, style in user_defaults(ctx.store, ctx.preferences_path).items()]


def build(ctx: DashboardContext) -> tuple[list[Any], Any]:
    gr.Markdown("### Styles\nA style wraps the prompt: `pre` goes before it, `post` after it, and `negative` is "
                "added to the negative prompt. Use one in a link with `?style=<name>`.")
    with gr.Row():
        with gr.Column(scale=2):
            pick = gr.Dropdown(label="Style to edit", choices=[NEW], value=NEW, elem_id="lp-style-pick")
            name = gr.Textbox(label="Name", elem_id="lp-style-name")
            pre = gr.Textbox(label="Before the prompt (pre)", elem_id="lp-style-pre")
            post = gr.Textbox(label="After the prompt (post)", lines=2, elem_id="lp-style-post")
            negative = gr.Textbox(label="Negative", lines=2, elem_id="lp-style-negative")
            description = gr.Textbox(label="Description", elem_id="lp-style-description")
            with gr.Row():
                save = gr.Button("Save style", variant="primary", elem_id="lp-style-save")
                delete = gr.Button("Delete style", variant="stop", elem_id="lp-style-delete")
            result = gr.Markdown(elem_id="lp-style-result")
        with gr.Column(scale=2):
            sample = gr.Textbox(label="Preview with this prompt", value=SAMPLE_PROMPT, elem_id="lp-style-sample")
            final = gr.Textbox(label="Final prompt", interactive=False, lines=3, elem_id="lp-style-final")
            final_negative = gr.Textbox(label="Negative from the style", interactive=False, lines=2)
            table = gr.Dataframe(headers=["name", "pre", "post", "negative", "description"], value=[],
                                 column_count=5, interactive=False, label="All styles", max_height=300)
    gr.Markdown("### Default style per user\nUsed when a link names no style (`user=` in the link or the "
                "`X-LinkPix-User` header picks the user; without either it is `default`).")
    with gr.Row():
        pref_user = gr.Textbox(label="User", value="default", elem_id="lp-pref-user")
        pref_style = gr.Dropdown(label="Default style", choices=[NONE], value=NONE, allow_custom_value=True,
                                 elem_id="lp-pref-style")
        pref_save = gr.Button("Set default style", elem_id="lp-pref-save")
    pref_result = gr.Markdown(elem_id="lp-pref-result")
    prefs = gr.Dataframe(headers=["user", "default style"], value=[], column_count=2, interactive=False,
                         label="Defaults")

    def names() -> list[str]:
        return [n for n in list_styles(ctx.store, ctx.styles_path) if n != NONE]

    def refreshed(selected: str = NEW) -> tuple[Any, ...]:
        return (gr.update(choices=[NEW, *names()], value=selected), style_table(ctx),
                gr.update(choices=[NONE, *names()]), preferences_table(ctx))

    refresh_outputs = [pick, table, pref_style, prefs]

    def on_pick(selected: str) -> tuple[str, str, str, str, str]:
        style = list_styles(ctx.store, ctx.styles_path).get(selected)
        if style is None or selected == NEW:
            return "", "", "", "", ""
        return style.name, style.pre, style.post, style.negative, style.description

    def on_preview(p: str, po: str, n: str, s: str) -> tuple[str, str]:
        return preview_style(p, po, n, s or SAMPLE_PROMPT)

    def on_save(n: str, p: str, po: str, neg: str, d: str) -> tuple[Any, ...]:
        try:
            saved = save_style(ctx.store, ctx.styles_path, n, p, po, neg, d)
        except LinkPixError as exc:
            return (f"Not saved: {exc.message}", *[gr.skip()] * 4)
        return (f"Saved style `{saved}`: links can use `?style={saved}` now.", *refreshed(saved))

    def on_delete(n: str) -> tuple[Any, ...]:
        try:
            delete_style(ctx.store, ctx.styles_path, n, ctx.preferences_path)
        except LinkPixError as exc:
            return (f"Not deleted: {exc.message}", *[gr.skip()] * 4)
        return (f"Deleted style `{n}`.", *refreshed())

    def on_pref(user: str, style: str) -> tuple[Any, ...]:
        try:
            set_user_default(ctx.store, ctx.preferences_path, user, style or "",
                             set(list_styles(ctx.store, ctx.styles_path)))
        except LinkPixError as exc:
            return f"Not saved: {exc.message}", gr.skip()
        return f"`{user}` now uses `{style or 'no default'}` when a link names no style.", preferences_table(ctx)

    editor = [name, pre, post, negative, description]
    pick.change(on_pick, inputs=[pick], outputs=editor, api_visibility="private")
    for box in (pre, post, negative, sample):
        box.change(on_preview, inputs=[pre, post, negative, sample], outputs=[final, final_negative],
                   api_visibility="private", show_progress="hidden")
    save.click(on_save, inputs=editor, outputs=[result, *refresh_outputs], api_visibility="private")
    delete.click(on_delete, inputs=[name], outputs=[result, *refresh_outputs], api_visibility="private")
    pref_save.click(on_pref, inputs=[pref_user, pref_style], outputs=[pref_result, prefs], api_visibility="private")
    return refresh_outputs, lambda: refreshed()
