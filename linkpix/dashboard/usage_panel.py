"""The Monitor's fair-share panel: GPU-seconds per user and day (a bar plot of `GET /api/usage`), and the
fair queue per user (from `/health`: how many of each user's requests wait, at which places, how many
run). Prompts are never shown here: a user's place in the queue is enough to see that turns are fair."""

from __future__ import annotations

import time
from typing import Any

import gradio as gr
import pandas as pd

from linkpix.dashboard.apiclient import ApiError
from linkpix.dashboard.context import DashboardContext

QUEUE_COLUMNS = ["user", "waiting", "of which links", "places in the queue", "running", "recent GPU-s"]
DAYS_SHOWN = 14


def usage_frame(body: dict[str, Any]) -> pd.DataFrame:
    """Columns `day`, `user`, `gpu_seconds` and `bar` (user and day, one bar each): the last DAYS_SHOWN days
    of GET /api/usage. (One bar per user and day: the plot's colour grouping draws nothing in gradio 6.)"""
    rows = [r for r in body.get("days") or [] if isinstance(r, dict)]
    days = sorted({str(r.get("day")) for r in rows})[-DAYS_SHOWN:]
    kept = [r for r in rows if str(r.get("day")) in days]
    return pd.DataFrame({"day": pd.Series([str(r.get("day")) for r in kept], dtype="object"),
                         "user": pd.Series([str(r.get("user")) for r in kept], dtype="object"),
                         "gpu_seconds": pd.Series([float(r.get("gpu_seconds") or 0) for r in kept], dtype="float64"),
                         "bar": pd.Series([f"{r.get('user')} {str(r.get('day'))[5:]}" for r in kept], dtype="object")})


def queue_rows(health: dict[str, Any] | None) -> list[list[Any]]:
    """One row per user with requests waiting or running, as /health's `fair_queue` reports them."""
    rows = []
    for u in ((health or {}).get("fair_queue") or {}).get("users") or []:
        places = u.get("positions") or []
        shown = ", ".join(str(p) for p in places[:12]) + (" ..." if len(places) > 12 else "")
        rows.append([u.get("user"), u.get("waiting", 0), u.get("interactive", 0), shown, u.get("running", 0),
                     u.get("recent_gpu_seconds", 0)])
    return rows


def snapshot(ctx: DashboardContext) -> tuple[Any, ...]:
    api = ctx.api(timeout=5)
    notes = []
    try:
        frame = usage_frame(api.usage())
    except ApiError as exc:
        frame, notes = usage_frame({}), [f"Usage unavailable: {exc.message}"]
    try:
        health: dict[str, Any] | None = api.health()
    except ApiError as exc:
        health = None
        notes.append(f"Queue unavailable: {exc.message}")
    waiting = ((health or {}).get("fair_queue") or {}).get("waiting", 0)
    notes.append(f"{waiting} request(s) wait in LinkPix's fair queue · updated {time.strftime('%H:%M:%S')}")
    # an empty frame is not drawn: Vega cannot size an axis from no data ("Infinite extent"; dashboard/plots.py)
    return gr.BarPlot(value=frame if len(frame) else None), queue_rows(health), " · ".join(notes)


def build(ctx: DashboardContext, timer_seconds: float) -> list[Any]:
    """The usage plot, the queue table and their caption, refreshed every `timer_seconds`."""
    with gr.Group(elem_id="lp-monitor-usage"):
        with gr.Row():
            plot = gr.BarPlot(None, x="bar", y="gpu_seconds",
                              title="GPU-seconds per user and day", x_title="user, day (UTC)", y_title="GPU-seconds",
                              height=220, elem_id="lp-plot-gpu-seconds", scale=2)
            queue = gr.Dataframe(headers=QUEUE_COLUMNS, label="Fair queue per user", interactive=False, value=[],
                                 column_count=len(QUEUE_COLUMNS), elem_id="lp-monitor-fair-queue", scale=3)
        caption = gr.Markdown(elem_id="lp-monitor-usage-note")
    outputs = [plot, queue, caption]
    timer = gr.Timer(timer_seconds)
    timer.tick(lambda: snapshot(ctx), outputs=outputs, api_visibility="private", show_progress="hidden")
    return outputs
