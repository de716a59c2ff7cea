"""Settings the dashboard changes reach the running API without a restart."""

from __future__ import annotations

import json
import os
import time

from support import ApiServer

from linkpix.simulator import SimulatorServer


def edit_config(project, **changes) -> None:
    path = project / "config.json"
    values = json.loads(path.read_text())
    values.update(changes)
    path.write_text(json.dumps(values))
    stamp = time.time_ns() + 1_000_000  # a distinct mtime even on coarse clocks
    os.utime(path, ns=(stamp, stamp))


def test_new_comfyui_url_is_used_for_the_next_run(project, simulator, tmp_path):
    other = SimulatorServer(port=0, root=tmp_path / "other-comfyui")
    other.start()
    edit_config(project, comfyui_url=simulator.url)
    server = ApiServer(project, None)
    try:
        assert server.get("/prompt/first?width=64&height=64").status_code == 200
        edit_config(project, comfyui_url=other.url)
        assert server.get("/prompt/second?width=64&height=64").status_code == 200
        assert (simulator.prompts_received, other.prompts_received) == (1, 1)
        assert server.get("/health").json()["comfyui_url"] == other.url
    finally:
        server.close()
        other.stop()


def test_cache_limit_applies_live(project, simulator):
    edit_config(project, comfyui_url=simulator.url)
    server = ApiServer(project, None)
    try:
        for i in range(3):
            assert server.get(f"/prompt/keep%20{i}?width=64&height=64").status_code == 200
        assert server.get("/health").json()["cache"]["images"] == 3
        edit_config(project, cache_max_mb=0.000001)  # about one byte: everything must go
        server.get("/health")  # any request notices the change
        assert server.get("/health").json()["cache"]["images"] == 0
    finally:
        server.close()
