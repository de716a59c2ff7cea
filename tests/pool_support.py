"""Helpers for the pool tests (no tests here): several named simulators, an API over them, custom workflows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests
from support import ApiServer

from linkpix.simulator import SimulatorServer

DEMO_CHECKPOINTS = ["demo.safetensors", "v1-5-pruned-emaonly.safetensors"]


class Sims:
    """Named simulators on loopback ports; `stop()` stops (and thaws) them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.by_name: dict[str, SimulatorServer] = {}

    def start(self, name: str, **kwargs: Any) -> SimulatorServer:
        kwargs.setdefault("checkpoints", DEMO_CHECKPOINTS)
        sim = SimulatorServer(port=0, root=self.root / name, name=name, **kwargs)
        sim.start()
        self.by_name[name] = sim
        return sim

    def __getitem__(self, name: str) -> SimulatorServer:
        return self.by_name[name]

    def specs(self, *names: str, **extra: Any) -> list[dict[str, Any]]:
        """`comfyui_urls` entries for the named simulators (all of them by default)."""
        return [{"url": self.by_name[n].url, "name": n, **extra} for n in (names or self.by_name)]

    def stop(self) -> None:
        for sim in self.by_name.values():
            sim.thaw()
            sim.stop()


def pool_api(project: Path, sims: Sims, *names: str, **overrides: Any) -> ApiServer:
    """LinkPix over the named simulators (all by default), with demo.json as the default workflow."""
    if overrides.get("comfyui_urls", ()) is None:
        del overrides["comfyui_urls"]  # taken from config.json
    else:
        overrides.setdefault("comfyui_urls", sims.specs(*names))
    return ApiServer(project, None, **overrides)


def prompts_in(sim: SimulatorServer) -> list[str]:
    """Every prompt id a simulator runs or holds, asked over HTTP."""
    body = requests.get(f"{sim.url}/queue", timeout=5).json()
    return [item[1] for item in body["queue_running"] + body["queue_pending"]]


def posts_to(sim: SimulatorServer) -> int:
    """How many POST /prompt the simulator got, refused ones included (ComfyUI's counter)."""
    return sim.prompt_counter


def write_workflow(project: Path, name: str, change: dict[str, dict[str, Any]]) -> str:
    """A copy of demo.json with nodes added or inputs changed: {node_id: {"class_type"?, "inputs": {...}}}."""
    graph = json.loads((project / "workflows" / "demo.json").read_text())
    for node_id, node in change.items():
        if node_id in graph:
            graph[node_id]["inputs"].update(node.get("inputs", {}))
        else:
            graph[node_id] = node
    (project / "workflows" / f"{name}.json").write_text(json.dumps(graph))
    return name
