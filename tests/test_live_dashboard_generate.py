"""The dashboard's Generate tab sends a picture to the browser only when it is new (issue 22 item 5): Gradio
rewrites a picture's cache file each time it is given one, and re-sending the same preview with every progress
step rewrote that file while the browser fetched it (h11: "Too much data for declared Content-Length")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from linkpix.config import ConfigHolder
from linkpix.dashboard.context import DashboardContext
from linkpix.dashboard.generate import run


@pytest.mark.slow
def test_each_picture_is_sent_once(api, project: Path, simulator):
    simulator.faults.step_delay = 0.05
    path = project / "config.json"
    config = json.loads(path.read_text())
    config.update(comfyui_url=simulator.url, workflow_path="demo.json")
    path.write_text(json.dumps(config))
    ctx = DashboardContext(path, ConfigHolder(path, use_env=False), environ={"LINKPIX_API_URL": api.url})
    updates = list(run(ctx, [], "a fox, sent once", ["none"], "demo.json", "", []))
    pictures = [u[1] for u in updates if isinstance(u[1], Image.Image)]
    assert len(updates) > len(pictures) >= 2  # progress steps went without a picture
    contents = [p.tobytes() for p in pictures]
    assert all(a != b for a, b in zip(contents, contents[1:], strict=False))  # never the same picture twice in a row
    assert isinstance(updates[-1][1], Image.Image) and updates[-1][2]  # the finished image, with its seed
