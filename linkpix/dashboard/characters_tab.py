"""The Characters tab: define the profiles links name with `char=<name>` (docs/characters.md).

Everything goes through the API (`/api/characters`, `/uploads`), as a client would, so the same checks apply
(names, strengths, LoRAs the backends have, uploads that exist) and their messages are shown as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from linkpix.dashboard.apiclient import ApiError
from linkpix.dashboard.context import DashboardContext

NEW = "(new character)"
HEADERS = ["name", "scope", "words", "negative", "loras", "references", "style", "workflow", "version"]


def parse_loras(text: str) -> list[dict[str, Any]]:
    """`"face:0.8, ink"` -> [{"name": "face", "strength": 0.8}, {"name": "ink", "strength": 1.0}]; the API
    checks the names and strengths (a word that is not a number is sent as it is, and refused there)."""
    out = []
    for item in (p.strip() for p in text.replace("\n", ",").split(",")):
        if not item:
            continue
        name, _, strength = item.rpartition(":") if ":" in item else (item, "", "")
        try:
            value: Any = float(strength) if strength else 1.0
        except ValueError:
            value = strength
        out.append({"name": name.strip(), "strength": value})
    return out


def show_loras(loras: list[dict[str, Any]]) -> str:
    return ", ".join(f"{lo['name']}:{lo['strength']:g}" for lo in loras)


def table(characters: list[dict[str, Any]]) -> list[list[str]]:
    return [[c["name"], c["scope"], c["words"], c["negative"], show_loras(c["loras"]), ", ".join(c["references"]),
             c.get("style") or "", c.get("workflow") or "", c["version"]] for c in characters]


def build(ctx: DashboardContext) -> tuple[list[Any], Any]:
    gr.Markdown("### Characters\nThe same face in every picture: a link with `?char=<name>` (or a prompt starting "
                "with `char:<name>`) adds the words to the prompt, the negative to the negative prompt, loads the "
                "LoRAs and gives the reference pictures to the workflow's image inputs. See docs/characters.md.")
    with gr.Row():
        with gr.Column(scale=2):
            pick = gr.Dropdown(label="Character to edit", choices=[NEW], value=NEW, elem_id="lp-char-pick")
            name = gr.Textbox(label="Name", elem_id="lp-char-name")
            shared = gr.Checkbox(label="Shared with every user (needs an admin key)", elem_id="lp-char-shared")
            words = gr.Textbox(label="Words (before the prompt)", lines=2, elem_id="lp-char-words")
            negative = gr.Textbox(label="Negative", lines=2, elem_id="lp-char-negative")
            loras = gr.Textbox(label="LoRAs (name:strength, comma-separated)", elem_id="lp-char-loras")
            references = gr.Textbox(label="Reference pictures (upload ids, comma-separated)",
                                    elem_id="lp-char-references")
            pictures = gr.File(label="Add reference pictures", file_count="multiple", file_types=["image"],
                               elem_id="lp-char-pictures")
            with gr.Row():
                style = gr.Textbox(label="Style (optional)", elem_id="lp-char-style")
                workflow = gr.Textbox(label="Workflow (optional)", elem_id="lp-char-workflow")
            description = gr.Textbox(label="Description", elem_id="lp-char-description")
            with gr.Row():
                save = gr.Button("Save character", variant="primary", elem_id="lp-char-save")
                delete = gr.Button("Delete character", variant="stop", elem_id="lp-char-delete")
            result = gr.Markdown(elem_id="lp-char-result")
        with gr.Column(scale=3):
            listing = gr.Dataframe(headers=HEADERS, value=[], column_count=len(HEADERS), interactive=False,
                                   label="Characters", max_height=400)

    def current() -> list[dict[str, Any]]:
        try:
            return ctx.api().characters()
        except ApiError:
            return []

    def refreshed(selected: str = NEW) -> tuple[Any, ...]:
        found = current()
        return gr.update(choices=[NEW, *[c["name"] for c in found]], value=selected), table(found)

    def on_pick(selected: str) -> tuple[Any, ...]:
        found = next((c for c in current() if c["name"] == selected), None)
        if found is None:
            return "", False, "", "", "", "", "", "", ""
        return (found["name"], found["scope"] == "shared", found["words"], found["negative"],
                show_loras(found["loras"]), ", ".join(found["references"]), found.get("style") or "",
                found.get("workflow") or "", found.get("description") or "")

    def on_save(n: str, is_shared: bool, w: str, neg: str, lo: str, refs: str, files: list[Any] | None, st: str,
                wf: str, d: str) -> tuple[Any, ...]:
        api = ctx.api()
        try:
            ids = [r.strip() for r in refs.split(",") if r.strip()]
            for f in files or []:
                ids.append(api.upload(Path(getattr(f, "name", f)).read_bytes()))
            body = {"words": w, "negative": neg, "loras": parse_loras(lo), "references": ids, "style": st or None,
                    "workflow": wf or None, "description": d}
            saved = api.put_character(n.strip(), body, bool(is_shared))
        except (ApiError, OSError) as exc:
            return (f"Not saved: {exc}", gr.skip(), gr.skip(), gr.skip(), gr.skip())
        return (f"Saved `{saved['name']}` (version {saved['version']}): use it with `?char={saved['name']}`.",
                ", ".join(saved["references"]), None, *refreshed(saved["name"]))

    def on_delete(n: str, is_shared: bool) -> tuple[Any, ...]:
        try:
            ctx.api().delete_character(n.strip(), bool(is_shared))
        except ApiError as exc:
            return (f"Not deleted: {exc}", gr.skip(), gr.skip())
        return (f"Deleted `{n}`.", *refreshed())

    editor = [name, shared, words, negative, loras, references, style, workflow, description]
    pick.change(on_pick, inputs=[pick], outputs=editor, api_visibility="private")
    save.click(on_save, inputs=[name, shared, words, negative, loras, references, pictures, style, workflow,
                                description], outputs=[result, references, pictures, pick, listing],
               api_visibility="private")
    delete.click(on_delete, inputs=[name, shared], outputs=[result, pick, listing], api_visibility="private")
    return [pick, listing], lambda: refreshed()
