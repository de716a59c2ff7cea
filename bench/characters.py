"""Characters and LoRAs: what `char=` and `<lora:...>` add to a link, through the service as users run it.

Distinct links (each one a miss, run on the simulator with no step delay) with no character, with `char=` (words,
a negative, a LoRA), and with a `<lora:...>` tag; medians in ms and the ratio to the plain links, measured in
the same run. The work added is a profile lookup, one more render of the template and the loader surgery.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import requests
from common import linkpix_api, make_project, median

from linkpix.simulator import SimulatorServer


def timed(url: str) -> float:
    started = time.perf_counter()
    requests.get(url, timeout=60).raise_for_status()
    return (time.perf_counter() - started) * 1000


def main(rounds: int = 40) -> dict[str, float]:
    project = make_project(workflow_path="sd15.json")
    sim = SimulatorServer(port=0, root=Path(tempfile.mkdtemp(prefix="linkpix-sim-")), loras=["face.safetensors"])
    sim.start()
    try:
        with linkpix_api(project, sim.url) as api:
            requests.put(api + "/api/characters/alice", json={"words": "alice, red hair", "negative": "beard",
                                                               "loras": [{"name": "face", "strength": 0.7}]},
                         timeout=30).raise_for_status()
            cases = {"plain": "", "char": "&char=alice", "lora tag": "%20%3Clora%3Aface%3A0.6%3E"}
            for suffix in cases.values():  # warm up each path
                timed(f"{api}/prompt/warm%20up{suffix if suffix.startswith('%') else ''}?width=64&height=64"
                      f"{suffix if suffix.startswith('&') else ''}")
            times: dict[str, list[float]] = {name: [] for name in cases}
            for i in range(rounds):
                for name, suffix in cases.items():  # interleaved, so load on the machine hits all alike
                    tag = suffix if suffix.startswith("%") else ""
                    query = suffix if suffix.startswith("&") else ""
                    times[name].append(timed(f"{api}/prompt/link%20{i}{tag}?width=64&height=64{query}"))
        base = median(times["plain"])
        figures = {"plain_ms": base}
        print(f"characters: {rounds} distinct links each (misses, simulator without step delay)")
        for name, values in times.items():
            figures[f"{name}_ms"] = median(values)
            print(f"  {name:9s} median {median(values):7.2f} ms  ratio {median(values) / base:5.2f}")
        return figures
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
