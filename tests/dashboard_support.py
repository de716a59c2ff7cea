"""The dashboard as the launcher starts it (Gradio on a loopback port), against a running API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # Gradio is imported by the tests that start a dashboard, not by every test
    from linkpix.dashboard.server import Running


@contextmanager
def running_dashboard(api: Any, project: Path, monitor_seconds: float = 1.0, **config: Any) -> Iterator[Running]:
    """The dashboard of `project` (its config.json updated with `config`), talking to `api`."""
    from linkpix.config import ConfigHolder
    from linkpix.dashboard.context import DashboardContext
    from linkpix.dashboard.server import start
    from linkpix.run.launcher import free_port

    path = project / "config.json"
    values = json.loads(path.read_text())
    values.update(config)
    path.write_text(json.dumps(values))
    ctx = DashboardContext(path, ConfigHolder(path, use_env=False), environ={"LINKPIX_API_URL": api.url})
    running = start(ctx, port=free_port(), host="127.0.0.1", monitor_seconds=monitor_seconds)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def dashboard(api: Any, project: Path, simulator: Any) -> Iterator[Running]:
    """The dashboard over the simulator and the demo workflow (conftest.py makes it available)."""
    with running_dashboard(api, project, comfyui_url=simulator.url, workflow_path="demo.json") as running:
        yield running
