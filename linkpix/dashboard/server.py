"""Launching the dashboard: bind address, login, the URL it prints, and a clean stop on SIGTERM/Ctrl+C.

It binds 127.0.0.1 unless network access is on; then a login is required and a missing one stops
start-up with a message (never a default password). The launcher (`start_server.py`) stops its children
with SIGTERM, so that signal closes the Gradio server and exits 0 like Ctrl+C does.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from linkpix.dashboard.app import CSS, build_app
from linkpix.dashboard.context import DashboardContext, dashboard_auth
from linkpix.dashboard.lockout import LoginLockout

log = logging.getLogger(__name__)


@dataclass
class Running:
    app: gr.Blocks
    url: str

    def close(self) -> None:
        self.app.close()


def start(ctx: DashboardContext, port: int | None = None, host: str | None = None,
          monitor_seconds: float | None = None, quiet: bool = True) -> Running:
    """Build and launch without blocking; raises ConfigError (no login with network access on)."""
    settings = ctx.settings
    auth = dashboard_auth(settings)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    kwargs: dict[str, Any] = {}
    if monitor_seconds is not None:
        kwargs["monitor_seconds"] = monitor_seconds
    app = build_app(ctx, **kwargs)
    app.queue(default_concurrency_limit=8)
    bind = host or settings.bind_host
    if auth is not None:  # wrong passwords are limited per address (Gradio's login has no limit)
        kwargs_app = {"middleware": [Middleware(LoginLockout)]}
    else:
        kwargs_app = {}
    app.launch(server_name=bind, server_port=port or settings.web_port, auth=auth, prevent_thread_lock=True,
               quiet=quiet, css=CSS, ssr_mode=False, footer_links=[], show_error=True, app_kwargs=kwargs_app,
               auth_message="LinkPix dashboard: log in with dashboard_user / dashboard_password.")
    shown = "127.0.0.1" if bind in ("0.0.0.0", "127.0.0.1") else bind
    return Running(app, f"http://{shown}:{app.server_port}")


def serve_forever(ctx: DashboardContext, port: int | None = None) -> int:
    """Run until SIGINT or SIGTERM; returns the exit code."""
    stop = threading.Event()

    def _on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    running = start(ctx, port, quiet=True)
    print(f"LinkPix dashboard on {running.url} (API: {ctx.api_url})", flush=True)
    if ctx.settings.network_access:
        print("  network access is on: listening on all interfaces, login required", flush=True)
    try:
        stop.wait()
    finally:
        print("LinkPix dashboard stopping", flush=True)
        running.close()
    return 0
