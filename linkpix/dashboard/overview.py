"""The Dashboard tab: where to reach LinkPix, the link to paste into SillyTavern, what is active, and
whether ComfyUI is up."""

from __future__ import annotations

from typing import Any

import gradio as gr

from linkpix.dashboard.apiclient import ApiError
from linkpix.dashboard.context import DashboardContext
from linkpix.dashboard.links import example_link, lan_urls, markdown_image
from linkpix.dashboard.stylesedit import user_defaults


def status_markdown(ctx: DashboardContext) -> str:
    """ComfyUI status as the API sees it (one line, with the reason when it is down)."""
    try:
        health = ctx.api(timeout=5).health()
    except ApiError as exc:
        return f"**LinkPix API: DOWN**: {exc.message}"
    if health.get("comfyui") == "reachable":
        queue = f"{health.get('queue_running', 0)} running, {health.get('queue_pending', 0)} waiting"
        return (f"**ComfyUI: up** at `{health.get('comfyui_url')}` "
                f"(version {health.get('comfyui_version') or '?'}; queue: {queue})")
    return f"**ComfyUI: DOWN** at `{health.get('comfyui_url')}`: {health.get('error', 'no answer')}"


def addresses(ctx: DashboardContext) -> dict[str, Any]:
    """Everything the tab shows about addresses and links, as values (unit-tested)."""
    s = ctx.settings
    local = ctx.api_url
    lan = lan_urls(s.api_port) if s.network_access else []
    share_base = lan[0] if lan else local
    link = example_link(share_base)
    if s.network_access:
        where = ("**Network access is on**: other machines on your network can use these addresses"
                 + (":\n" + "\n".join(f"- `{u}`" for u in lan) if lan else " (no LAN address was found).")
                 + ("\n\n⚠️ Anyone who can reach this machine can generate images; state-changing API calls "
                    "need an API key (`api_keys`)."))
    else:
        where = ("Network access is **off**: only this machine can use LinkPix. To use it from SillyTavern on "
                 "another machine, turn on network access in Settings.")
    return {"local": local, "lan": lan, "where": where, "example": link, "markdown": markdown_image(link)}


def active_markdown(ctx: DashboardContext) -> str:
    s = ctx.settings
    default_style = user_defaults(ctx.store, ctx.preferences_path).get("default", "none")
    problems = [str(p) for p in ctx.store.problems()]
    text = (f"**Active workflow:** `{s.workflow_path}`  \n**Default style:** `{default_style}`  \n"
            f"**Image format:** `{s.image_format}` · **Timeout:** {s.timeout:g} s")
    if problems:
        text += "\n\n⚠️ Files that could not be read (the last good version is used):\n" + "\n".join(
            f"- {p}" for p in problems)
    return text


def build(ctx: DashboardContext) -> tuple[gr.Button, list[Any], Any]:
    """The tab's components; returns (refresh button, outputs, load function) for the app to wire."""
    gr.Markdown("## LinkPix\nPut ComfyUI behind a link: open a `/prompt/...` link and get an image.")
    with gr.Row():
        with gr.Column(scale=3):
            local = gr.Textbox(label="API address on this machine", interactive=False, buttons=["copy"],
                               elem_id="lp-api-url")
            where = gr.Markdown(elem_id="lp-where")
            example = gr.Textbox(label="Example link (open it in a browser)", interactive=False,
                                 buttons=["copy"], elem_id="lp-example-link")
            snippet = gr.Textbox(label="For a SillyTavern message (allow external media in User Settings)",
                                 interactive=False, buttons=["copy"], elem_id="lp-markdown-link")
        with gr.Column(scale=2):
            status = gr.Markdown(elem_id="lp-status")
            active = gr.Markdown(elem_id="lp-active")
            refresh = gr.Button("Refresh", size="sm")

    def load() -> tuple[str, str, str, str, str, str]:
        a = addresses(ctx)
        return a["local"], a["where"], a["example"], a["markdown"], status_markdown(ctx), active_markdown(ctx)

    outputs = [local, where, example, snippet, status, active]
    refresh.click(load, outputs=outputs, api_visibility="private")
    return refresh, outputs, load
