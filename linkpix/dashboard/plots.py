"""The Monitor's plots: the last hour of the service's own figures, minute by minute.

People would rather look than read: requests per minute, the cache's hit rate, generation time and the
queue, each a line over the last hour, from the API's `GET /api/stats/history` (the API keeps the
points; the dashboard only draws them). They refresh on their own timer while the page is open.
"""

from __future__ import annotations

import time
from typing import Any

import gradio as gr
import pandas as pd

from linkpix.dashboard.apiclient import ApiError
from linkpix.dashboard.context import DashboardContext

# (field of a point, plot title, y axis title, scale applied to the value, top of the y axis)
PLOTS = (
    ("requests", "Requests per minute", "requests", 1.0, None),
    ("hit_rate", "Cache hit rate", "% of lookups", 100.0, 100.0),
    ("generation_seconds", "Generation time", "seconds (mean)", 1.0, None),
    ("queue", "Queue length", "runs and waiting jobs", 1.0, None),
)


def frames(points: list[dict[str, Any]]) -> list[pd.DataFrame]:
    """One frame per plot (columns `minute`: 0 for the minute under way, -1 the one before...; `value`);
    a minute without a figure is left out, not drawn as zero."""
    timed = [p for p in points if isinstance(p.get("time"), int | float)]
    now = timed[-1]["time"] if timed else 0.0
    out = []
    for name, _title, _y, scale, _top in PLOTS:
        rows = [(round((p["time"] - now) / 60), p[name] * scale) for p in timed if p.get(name) is not None]
        out.append(_frame(rows))
    return out


def _frame(rows: list[tuple[int, float]]) -> pd.DataFrame:
    """Typed columns even when empty (an empty frame is never drawn: see `snapshot`)."""
    return pd.DataFrame({"minute": pd.Series([r[0] for r in rows], dtype="int64"),
                         "value": pd.Series([r[1] for r in rows], dtype="float64")})


def snapshot(ctx: DashboardContext) -> tuple[Any, ...]:
    try:
        body = ctx.api(timeout=5).stats_history()
        points, note = body.get("points", []), ""
    except ApiError as exc:
        points, note = [], f"Plots unavailable: {exc.message}"
    minutes = sum(1 for p in points if not p.get("partial"))
    note = note or (f"The last {minutes} minute{'s' if minutes != 1 else ''} and the one under way · "
                    f"updated {time.strftime('%H:%M:%S')}")
    plotted = []
    for frame, (_name, _title, _y, _scale, top) in zip(frames(points), PLOTS, strict=True):
        # the top of the y axis: fixed (a rate), else a little above the highest value, at least 1
        if not len(frame):  # Vega cannot size an axis from no data ("Infinite extent for field minute")
            plotted.append(gr.LinePlot(value=None))
            continue
        high = top if top is not None else max(1.0, float(frame["value"].max()) * 1.15)
        plotted.append(gr.LinePlot(value=frame, y_lim=[0, high]))
    return (*plotted, note)


def build(ctx: DashboardContext, timer_seconds: float) -> list[Any]:
    """The four plots and their caption, refreshed every `timer_seconds`; returns the components."""
    plots = []
    with gr.Group(elem_id="lp-monitor-plots"):
        for row in (PLOTS[:2], PLOTS[2:]):
            with gr.Row():
                for name, title, y_title, _scale, top in row:
                    plots.append(gr.LinePlot(None, x="minute", y="value", title=title,
                                             x_title="minutes ago", y_title=y_title, x_lim=[-60, 0],
                                             y_lim=[0, top or 1], height=220,
                                             elem_id=f"lp-plot-{name.replace('_', '-')}"))
        caption = gr.Markdown(elem_id="lp-monitor-plots-note")
    outputs = [*plots, caption]
    timer = gr.Timer(timer_seconds)
    timer.tick(lambda: snapshot(ctx), outputs=outputs, api_visibility="private", show_progress="hidden")
    return outputs
