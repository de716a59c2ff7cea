"""The Monitor tab: each ComfyUI backend's health and queue, system stats, recent requests, cache per user,
jobs.

It refreshes itself every few seconds (gr.Timer) while the page is open. Every figure is read, never
changed: the API's /health (one row per backend, GPUs included) and /jobs, ComfyUI's /system_stats, and
the cache folder on disk.
"""

from __future__ import annotations

import time
from typing import Any

import gradio as gr

from linkpix.dashboard import cachefiles, plots, usage_panel
from linkpix.dashboard.apiclient import ApiError
from linkpix.dashboard.context import DashboardContext
from linkpix.dashboard.drawing import Drawing

REFRESH_SECONDS = 5.0
JOB_COLUMNS = ["created", "job", "status", "user", "prompt", "workflow", "images", "cache", "seconds", "error"]
RECENT_COLUMNS = ["time", "request", "user", "status", "cache / error", "ms"]
CACHE_COLUMNS = ["user", "images", "size"]
GPU_COLUMNS = ["backend", "device", "type", "memory", "used", "total"]
BACKEND_COLUMNS = ["backend", "state", "queue", "LinkPix runs", "failed", "mean s", "last model", "last error", "URL"]


def _clock(ts: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts)))
    except (TypeError, ValueError):
        return ""


def health_markdown(health: dict[str, Any] | None, error: str | None) -> str:
    if health is None:
        return f"**LinkPix API: DOWN**: {error}"
    cache = health.get("cache", {})
    lines = []
    backends = health.get("backends") or []
    several = f" ({health.get('backends_up', 0)} of {len(backends)} backends)" if len(backends) > 1 else ""
    if health.get("comfyui") == "reachable":
        lines.append(f"**ComfyUI: up**{several} `{health.get('comfyui_url')}` — version "
                     f"{health.get('comfyui_version') or '?'}")
        lines.append(f"**ComfyUI queue:** {health.get('queue_running', 0)} running, "
                     f"{health.get('queue_pending', 0)} waiting")
    else:
        lines.append(f"**ComfyUI: DOWN**{several} `{health.get('comfyui_url')}`: {health.get('error', '')}")
    lines.append(f"**LinkPix:** {health.get('pending_generations', 0)} generations in progress · cache "
                 f"{cache.get('hits', 0)} hits / {cache.get('misses', 0)} misses since the API started")
    return "  \n".join(lines)


def memory_kind(device: dict[str, Any]) -> str:
    """ComfyUI reports a CPU device's memory in its `vram_*` fields, but it is the host's RAM."""
    return "RAM" if str(device.get("type", "")).lower() == "cpu" else "VRAM"


def gpu_rows(stats: dict[str, Any], backend: str = "") -> list[list[Any]]:
    rows = []
    for d in stats.get("devices", []) or []:
        total, free = d.get("vram_total") or 0, d.get("vram_free") or 0
        rows.append([backend, d.get("name", "?"), d.get("type", "?"), memory_kind(d),
                     cachefiles.human_bytes(max(total - free, 0)), cachefiles.human_bytes(total)])
    return rows


def backend_rows(health: dict[str, Any] | None) -> list[list[Any]]:
    """One row per ComfyUI backend of the pool, as /health reports it."""
    rows = []
    for b in (health or {}).get("backends") or []:
        state = b.get("state", "?") + (" (leaving)" if b.get("retiring") else "")
        rows.append([b.get("name"), state, b.get("queue") if b.get("queue") is not None else "",
                     b.get("runs", 0), b.get("failures", 0),
                     b.get("mean_run_seconds") if b.get("mean_run_seconds") is not None else "",
                     b.get("last_model") or "", (b.get("last_error") or "")[:120], b.get("url")])
    return rows


def all_gpu_rows(health: dict[str, Any] | None) -> list[list[Any]]:
    """Every backend's devices (from /health, which has them from each backend's /system_stats)."""
    rows = []
    for b in (health or {}).get("backends") or []:
        rows.extend(gpu_rows({"devices": b.get("devices") or []}, str(b.get("name"))))
    return rows


def system_markdown(stats: dict[str, Any] | None, error: str | None) -> str:
    if stats is None:
        return f"System stats unavailable: {error}"
    system = stats.get("system", {})
    total, free = system.get("ram_total") or 0, system.get("ram_free") or 0
    return (f"**RAM:** {cachefiles.human_bytes(max(total - free, 0))} used of {cachefiles.human_bytes(total)} · "
            f"**PyTorch:** {system.get('pytorch_version', '?')} · **Python:** "
            f"{str(system.get('python_version', '?')).split(' ')[0]}")


def job_rows(jobs: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for j in jobs:
        images = j.get("images") or []
        caches = ",".join(sorted({str(i.get("cache")) for i in images if i.get("cache")}))
        seconds = ""
        if j.get("finished") and j.get("created"):
            seconds = f"{j['finished'] - j['created']:.1f}"
        error = j.get("error") or {}
        rows.append([_clock(j.get("created")), str(j.get("job_id", ""))[:8], j.get("status"), j.get("user"),
                     (j.get("prompt") or "")[:60], j.get("workflow"), f"{len(images)}/{j.get('image_count', 1)}",
                     caches, seconds, error.get("message", "") if isinstance(error, dict) else str(error)])
    return rows


def recent_rows(requests: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per request the API answered (newest first), as its request log recorded it."""
    return [[_clock(r.get("time")), f"{r.get('method', '')} {r.get('path', '')}"[:70], r.get("user") or "",
             r.get("status"), r.get("cache") or r.get("error") or "", r.get("ms")] for r in requests]


def cache_rows(root: Any, health: dict[str, Any] | None = None) -> list[list[Any]]:
    """Images and bytes per user: the API's own count when its /health gives it (a count from disk every
    refresh took 0.2 s at 20,000 cached files), else counted here."""
    users = ((health or {}).get("cache") or {}).get("users")
    per_user = dict(sorted(users.items())) if isinstance(users, dict) else cachefiles.per_user(root)
    return [[user, row["images"], cachefiles.human_bytes(row["bytes"])] for user, row in per_user.items()]


def snapshot(ctx: DashboardContext, every: float = REFRESH_SECONDS, drawing: Drawing | None = None) -> tuple[Any, ...]:
    api = ctx.api(timeout=5)
    health, error = None, None
    try:
        health = api.health()
    except ApiError as exc:
        error = exc.message
    stats, stats_error = None, None
    if health is not None and health.get("comfyui") == "reachable":
        try:
            stats = ctx.comfy_get("/system_stats", timeout=3)
        except ApiError as exc:
            stats_error = exc.message
    else:
        stats_error = "ComfyUI is not reachable"
    try:
        jobs = api.jobs(limit=50) if health is not None else []
    except ApiError:
        jobs = []
    try:
        recent = api.recent_requests() if health is not None else []
    except ApiError:
        recent = []
    root = ctx.image_cache()
    gpus = all_gpu_rows(health) if health and health.get("backends") else gpu_rows(stats or {})
    frames = drawing.items(api, jobs) if drawing is not None else []
    return (health_markdown(health, error), system_markdown(stats, stats_error), backend_rows(health), gpus,
            recent_rows(recent), cache_rows(root, health), job_rows(jobs), frames,
            f"Updated {time.strftime('%H:%M:%S')} · refreshes every {every:g} s")


def build(ctx: DashboardContext, timer_seconds: float = REFRESH_SECONDS) -> tuple[gr.Timer, list[Any], Any]:
    updated = gr.Markdown(elem_id="lp-monitor-updated")
    plotted = plots.build(ctx, timer_seconds)  # the last hour, minute by minute (dashboard/plots.py)
    used = usage_panel.build(ctx, timer_seconds)  # GPU-seconds per user and day, the fair queue per user
    with gr.Row():
        health = gr.Markdown(elem_id="lp-monitor-health")
        system = gr.Markdown(elem_id="lp-monitor-system")
    backends = gr.Dataframe(headers=BACKEND_COLUMNS, label="ComfyUI backends", interactive=False,
                            elem_id="lp-monitor-backends", value=[], column_count=len(BACKEND_COLUMNS))
    gpus = gr.Dataframe(headers=GPU_COLUMNS, label="Devices", interactive=False, elem_id="lp-monitor-gpus",
                        value=[], column_count=len(GPU_COLUMNS))
    with gr.Row():
        cache = gr.Dataframe(headers=CACHE_COLUMNS, label="Cache per user", interactive=False, scale=1,
                             value=[], column_count=len(CACHE_COLUMNS), elem_id="lp-monitor-cache")
        recent = gr.Dataframe(headers=RECENT_COLUMNS, label="Recent requests", interactive=False, scale=3,
                              value=[], column_count=len(RECENT_COLUMNS), elem_id="lp-monitor-recent")
    jobs = gr.Dataframe(headers=JOB_COLUMNS, label="Jobs (newest first)", interactive=False, value=[],
                        column_count=len(JOB_COLUMNS), elem_id="lp-monitor-jobs")
    frames = gr.Gallery(label="Now drawing: running jobs' newest preview frames", columns=4, height=240,
                        elem_id="lp-monitor-drawing", show_label=True)
    gr.Markdown("Recent requests: the API's newest image links, job submissions and cancellations, "
                "with their status, cache hit or miss (or error) and time taken.")
    outputs = [health, system, backends, gpus, recent, cache, jobs, frames, updated]
    drawing = Drawing()
    timer = gr.Timer(timer_seconds)
    timer.tick(lambda: snapshot(ctx, timer_seconds, drawing), outputs=outputs, api_visibility="private",
               show_progress="hidden")
    # Opening the page or the tab fills the plots too, not only the tables: else they stay empty until
    # their own timer first ticks.
    return timer, [*outputs, *plotted, *used], lambda: (*snapshot(ctx, timer_seconds, drawing), *plots.snapshot(ctx),
                                                        *usage_panel.snapshot(ctx))
