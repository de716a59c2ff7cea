"""The Settings tab's server configuration: ComfyUI URL or several backends (with a connection test),
timeouts, image format, cache limits, network access. Saved to config.json through the store after
validation; the API notices the change on its next request."""

from __future__ import annotations

from typing import Any

import gradio as gr
from dotenv import dotenv_values

from linkpix.dashboard.configedit import (
    backends_text,
    check_connection,
    env_overrides,
    parse_backends,
    restart_note,
    save_settings,
    settings_in_force,
    validate,
)
from linkpix.dashboard.context import DashboardContext
from linkpix.errors import LinkPixError
from linkpix.render.workflows import list_workflows

NETWORK_WARNING = ("⚠️ **Network access** makes LinkPix and this dashboard listen on all interfaces: anyone "
                   "who can reach this machine can use them. The dashboard then asks for a login "
                   "(`dashboard_user` / `dashboard_password` or `LINKPIX_DASHBOARD_USER` / "
                   "`LINKPIX_DASHBOARD_PASSWORD`) and refuses to start without one, and the API requires an "
                   "API key (`api_keys`) for anything that changes state. Takes effect after a restart.")


def current_values(ctx: DashboardContext) -> dict[str, Any]:
    """The values the form starts from: config.json's own values over the defaults (not the
    environment's, which are shown as a note instead - saving must not copy them into the file)."""
    doc = ctx.store.get(ctx.config_path, default={})
    try:
        settings = validate(doc if isinstance(doc, dict) else {})
    except LinkPixError:
        settings = ctx.settings
    return settings.model_dump()


def overrides_note(ctx: DashboardContext) -> str:
    found = {k: v for k, v in env_overrides(ctx.environ).items() if "password" not in k and "key" not in k}
    if not found:
        return ""
    return "Note: Environment variables override these settings while LinkPix runs: " + ", ".join(
        f"`{k}` = `{v}`" for k, v in found.items())


IN_FORCE_COLUMNS = ["setting", "value in force", "from"]


def in_force_rows(ctx: DashboardContext) -> list[list[str]]:
    """What the running LinkPix uses and where each value comes from (see configedit.settings_in_force);
    the ComfyUI URL as the API itself reports it."""
    doc = ctx.store.get(ctx.config_path, default={})
    env_file = ctx.config_path.parent / ".env"
    dotenv = dotenv_values(env_file) if env_file.is_file() else {}
    rows = settings_in_force(ctx.settings, doc if isinstance(doc, dict) else {}, ctx.environ, dotenv)
    for row in rows:
        if row[0] == "comfyui_url":
            row[1] = ctx.comfyui_url()
    return rows


def build(ctx: DashboardContext) -> tuple[list[Any], Any]:
    gr.Markdown("### Server")
    in_force = gr.Dataframe(headers=IN_FORCE_COLUMNS, label="Values in force now, and where each comes from",
                            interactive=False, value=[], column_count=len(IN_FORCE_COLUMNS),
                            elem_id="lp-set-in-force")
    gr.Markdown("The form below edits `config.json`. A value set by the environment, `.env` or the launcher "
                "(`--demo`, `--api-port`, `--web-port`) wins over config.json while LinkPix runs.")
    env_note = gr.Markdown()
    with gr.Row():
        url = gr.Textbox(label="ComfyUI URL", scale=3, elem_id="lp-set-comfyui-url")
        test = gr.Button("Test connection", scale=1, elem_id="lp-test-connection")
    backends = gr.Textbox(label="Several ComfyUI backends (one per line; replaces the URL above): URL "
                                "[name=gpu1] [weight=2] [max_queue=8] [tags=sdxl,fast]", lines=3,
                          placeholder="http://192.168.1.20:8188 name=gpu1\nhttp://192.168.1.21:8188 name=gpu2",
                          elem_id="lp-set-backends")
    test_result = gr.Markdown(elem_id="lp-test-result")
    with gr.Row():
        timeout = gr.Number(label="Timeout (s) per generation", minimum=1, elem_id="lp-set-timeout")
        fmt = gr.Dropdown(label="Default image format", choices=["png", "jpeg", "webp"], elem_id="lp-set-format")
        workflow = gr.Dropdown(label="Default workflow", choices=[], allow_custom_value=True,
                               elem_id="lp-set-workflow")
    with gr.Row():
        max_pixels = gr.Number(label="Largest width × height", precision=0, elem_id="lp-set-max-pixels")
        cache_mb = gr.Number(label="Cache limit (MiB, 0 = none)", elem_id="lp-set-cache-mb")
        cache_days = gr.Number(label="Evict images older than (days, 0 = never)", elem_id="lp-set-cache-days")
        error_images = gr.Checkbox(label="Answer errors on image links with a picture", elem_id="lp-set-errimg")
    network = gr.Checkbox(label="Network access (listen on all interfaces)", elem_id="lp-set-network")
    gr.Markdown(NETWORK_WARNING)
    save = gr.Button("Save settings", variant="primary", elem_id="lp-save-settings")
    result = gr.Markdown(elem_id="lp-settings-result")

    fields = [url, backends, timeout, fmt, workflow, max_pixels, cache_mb, cache_days, error_images, network]
    keys = ["comfyui_url", "comfyui_urls", "timeout", "image_format", "workflow_path", "max_pixels",
            "cache_max_mb", "cache_max_age_days", "error_images", "network_access"]

    def load() -> tuple[Any, ...]:
        values = current_values(ctx)
        names = list_workflows(ctx.config.workflows_dir)
        out = [values[k] for k in keys]
        out[1] = backends_text(values["comfyui_urls"])
        out[4] = gr.update(choices=names, value=values["workflow_path"])
        return (*out, overrides_note(ctx), in_force_rows(ctx))

    def on_save(*values: Any) -> str:
        changes = dict(zip(keys, values, strict=True))
        if changes["max_pixels"] is not None:
            changes["max_pixels"] = int(changes["max_pixels"])
        missing = [k for k, v in changes.items() if (v is None or v == "") and k != "comfyui_urls"]
        if missing:
            return f"Not saved: {', '.join(missing)} must have a value."
        try:
            changes["comfyui_urls"] = parse_backends(changes["comfyui_urls"])
            changed = save_settings(ctx.store, ctx.config_path, changes)
        except LinkPixError as exc:
            return f"Not saved: {exc.message}"
        if not changed:
            return "Nothing changed."
        return f"Saved {', '.join(changed)}. {restart_note(changed)}"

    def on_test(value: str, several: str) -> str:
        try:
            urls = [b["url"] for b in parse_backends(several)] or [value]
        except LinkPixError as exc:
            return f"**Failed:** {exc.message}"
        lines = []
        for each in urls:
            ok, text = check_connection(each)
            lines.append(text if ok else f"**Failed:** {text}")
        return "  \n".join(lines)

    test.click(on_test, inputs=[url, backends], outputs=[test_result], api_visibility="private")
    save.click(on_save, inputs=fields, outputs=[result], api_visibility="private")
    return [*fields, env_note, in_force], load
