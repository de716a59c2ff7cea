"""The Monitor's "Now drawing" shows running jobs' newest preview frames (issue 22: the dashboard shows the frames)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
from jobs_support import wait_until
from PIL import Image

from linkpix.config import ConfigHolder
from linkpix.dashboard.context import DashboardContext
from linkpix.dashboard.drawing import Drawing
from linkpix.dashboard.monitor import snapshot

pytestmark = pytest.mark.slow


def test_now_drawing_shows_the_running_jobs_newest_frame(api, project: Path, simulator, tmp_path: Path):
    simulator.faults.step_delay = 0.2
    path = project / "config.json"
    config = json.loads(path.read_text())
    config.update(comfyui_url=simulator.url, workflow_path="demo.json")
    path.write_text(json.dumps(config))
    ctx = DashboardContext(path, ConfigHolder(path, use_env=False), environ={"LINKPIX_API_URL": api.url})
    drawing = Drawing(tmp_path / "frames")
    (tmp_path / "frames").mkdir()
    job_id = requests.post(api.url + "/generate", json={"prompt": "a fox being drawn", "steps": 12},
                           timeout=30).json()["job_id"]
    wait_until(lambda: api.get(f"/jobs/{job_id}/preview").status_code == 200, 20, "a first frame")
    frames = snapshot(ctx, 5.0, drawing)[7]
    assert len(frames) == 1
    file, caption = frames[0]
    assert caption.startswith("a fox being drawn") and "step" in caption
    assert Image.open(file).format == "JPEG"
    again = snapshot(ctx, 5.0, drawing)[7]
    assert Path(again[0][0]).parent == Path(file).parent  # the same folder, files named by content
    deadline = time.monotonic() + 30
    while api.get(f"/jobs/{job_id}").json()["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert snapshot(ctx, 5.0, drawing)[7] == []  # nothing runs: nothing drawn

