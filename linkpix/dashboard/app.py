"""The dashboard's page: the seven tabs composed into one Gradio Blocks, each reloading its data when the
page opens and when the tab is selected."""

from __future__ import annotations

import gradio as gr

from linkpix.dashboard import (
    characters_tab,
    edit_tab,
    generate,
    maintenance_tab,
    monitor,
    overview,
    settings_tab,
    styles_tab,
    workflows_tab,
)
from linkpix.dashboard.context import DashboardContext

CSS = """
.lp-progress { width: 100%; height: 14px; background: var(--neutral-200); border-radius: 7px; overflow: hidden; }
.lp-progress-bar { height: 100%; background: var(--color-accent); transition: width .2s ease; }
.lp-progress[data-state=done] .lp-progress-bar { background: #22a06b; }
.lp-progress[data-state=error] .lp-progress-bar { background: #d93f3f; }
.lp-progress-text { font-size: .9em; margin-top: 4px; color: var(--body-text-color-subdued); }
/* A slider's range shrinks so its end labels fit: without this a narrow column cut "8192" to "819". */
.slider_input_container input[type=range] { min-width: 0; flex: 1 1 auto; }
.slider_input_container .min_value, .slider_input_container .max_value { flex: none; }
"""


def build_app(ctx: DashboardContext, monitor_seconds: float = monitor.REFRESH_SECONDS) -> gr.Blocks:
    """The dashboard's Blocks; every tab reloads its data when the page opens and when it is selected."""
    with gr.Blocks(title="LinkPix dashboard", analytics_enabled=False) as app:
        with gr.Tabs():
            with gr.Tab("Dashboard", id="dashboard", elem_id="lp-tab-dashboard") as tab_overview:
                _refresh, overview_out, overview_load = overview.build(ctx)
            with gr.Tab("Generate", id="generate", elem_id="lp-tab-generate") as tab_generate:
                (workflow_in, generate_out), generate_load = generate.build(ctx)
            with gr.Tab("Edit", id="edit", elem_id="lp-tab-edit") as tab_edit:
                edit_out, edit_load = edit_tab.build(ctx)
            with gr.Tab("Characters", id="characters", elem_id="lp-tab-characters") as tab_characters:
                characters_out, characters_load = characters_tab.build(ctx)
            with gr.Tab("Monitor", id="monitor", elem_id="lp-tab-monitor") as tab_monitor:
                _timer, monitor_out, monitor_load = monitor.build(ctx, monitor_seconds)
            with gr.Tab("Settings", id="settings", elem_id="lp-tab-settings") as tab_settings:
                settings_out, settings_load = settings_tab.build(ctx)
                styles_out, styles_load = styles_tab.build(ctx)
            with gr.Tab("Advanced", id="advanced", elem_id="lp-tab-advanced") as tab_advanced:
                workflows_out, workflows_load = workflows_tab.build(ctx)
                maintenance_out, maintenance_load = maintenance_tab.build(ctx)

        quiet = {"api_visibility": "private", "show_progress": "hidden"}
        wiring = [
            (tab_overview, overview_load, [], overview_out),
            (tab_generate, generate_load, [workflow_in], generate_out),
            (tab_edit, edit_load, [], edit_out),
            (tab_characters, characters_load, [], characters_out),
            (tab_monitor, monitor_load, [], monitor_out),
            (tab_settings, settings_load, [], settings_out),
            (tab_settings, styles_load, [], styles_out),
            (tab_advanced, workflows_load, [], workflows_out),
            (tab_advanced, maintenance_load, [], maintenance_out),
        ]
        for tab, load, inputs, outputs in wiring:
            app.load(load, inputs=inputs, outputs=outputs, **quiet)
            if tab is not tab_generate and tab is not tab_edit:  # keep what was typed or picked there
                tab.select(load, inputs=inputs, outputs=outputs, **quiet)
    return app
