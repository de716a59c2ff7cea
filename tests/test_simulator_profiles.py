"""The simulator's two profiles (issue 15 item 7): `0.3.64` as the captures show it, `current` as today's
ComfyUI server code reads (linkpix/simulator/profiles.py quotes the sources), on each point that changed."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from simulator_support import Recorder, post_prompt, wait_history
from support import running_simulator

from linkpix.simulator import SimulatorServer


def _graph(text: str = "a lighthouse", hold: bool = False) -> dict[str, Any]:
    """A fast graph; `hold` makes it wait in its sampler until interrupted (with faults.hang)."""
    return {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "demo.safetensors"}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["1", 1]}},
            "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
            "4": {"class_type": "KSampler", "inputs": {"seed": 5 if not hold else 6, "steps": 2, "cfg": 7.0,
                                                       "sampler_name": "euler", "scheduler": "normal",
                                                       "denoise": 1.0, "model": ["1", 0], "positive": ["2", 0],
                                                       "negative": ["2", 0], "latent_image": ["3", 0]}},
            "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
            "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "prof"}}}


@pytest.fixture(params=["0.3.64", "current"])
def sim(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SimulatorServer]:
    with running_simulator(tmp_path / "comfyui", step_delay=0.0, profile=request.param) as server:
        yield server


def _current(sim: SimulatorServer) -> bool:
    return sim.profile.name == "current"


def test_version_is_reported_as_each_server_does(sim: SimulatorServer) -> None:
    version = requests.get(sim.url + "/system_stats", timeout=10).json()["system"]["comfyui_version"]
    assert version.split("-")[0] == ("0.38.1" if _current(sim) else "0.3.64")


@pytest.mark.parametrize("prompt_id", ["not-a-uuid", "3F2504E0-4F89-41D3-9A0C-0305E82C3301",
                                       "3f2504e04f8941d39a0c0305e82c3301", 12345])
def test_a_non_canonical_prompt_id(sim: SimulatorServer, prompt_id: Any) -> None:
    r = requests.post(sim.url + "/prompt", json={"prompt": _graph(), "prompt_id": prompt_id}, timeout=10)
    if _current(sim):
        assert r.status_code == 400
        assert r.json() == {"error": {"type": "invalid_prompt_id", "message": "prompt_id must be a valid UUID",
                                      "details": "prompt_id must be a UUID string in canonical lowercase "
                                                 "hyphenated form; omit it to let the server generate one",
                                      "extra_info": {}}, "node_errors": {}}
    else:  # 0.3.64 took any value, as text
        assert r.status_code == 200 and r.json()["prompt_id"] == str(prompt_id)


def test_a_canonical_prompt_id_or_none(sim: SimulatorServer) -> None:
    mine = str(uuid.uuid4())
    assert post_prompt(sim.url, _graph(), prompt_id=mine)["prompt_id"] == mine
    minted = post_prompt(sim.url, _graph("other"), prompt_id=None)["prompt_id"]
    if _current(sim):
        assert str(uuid.UUID(minted)) == minted
    else:
        assert minted == "None"  # 0.3.64's str(json_data.get("prompt_id", uuid4())) of an explicit null


def test_create_time_in_queue_and_history(sim: SimulatorServer) -> None:
    before = int(time.time() * 1000)
    pid = post_prompt(sim.url, _graph())["prompt_id"]
    entry = wait_history(sim.url, pid)[pid]
    extra = entry["prompt"][3]
    if _current(sim):
        assert before <= extra["create_time"] <= int(time.time() * 1000)
    else:
        assert "create_time" not in extra


def test_executed_messages_and_history_carry_asset_ids_on_current(sim: SimulatorServer) -> None:
    rec = Recorder(sim.url)
    try:
        pid = post_prompt(sim.url, _graph(), client_id=rec.client_id)["prompt_id"]
        frames = list(rec.until_done(pid))
        again = post_prompt(sim.url, _graph(), client_id=rec.client_id)["prompt_id"]  # all cached now
        cached = rec.until_done(again)[len(frames):]
    finally:
        rec.close()
    for run in (frames, cached):
        executed = [f["data"] for f in run if f.get("type") == "executed"]
        assert len(executed) == 1
        image = executed[0]["output"]["images"][0]
        assert {"filename", "subfolder", "type"} <= set(image)
        if _current(sim):
            assert str(uuid.UUID(image["id"])) == image["id"] and image["preview_id"] == image["id"]
        else:
            assert "id" not in image and "preview_id" not in image
    stored = wait_history(sim.url, pid)[pid]["outputs"]["6"]["images"][0]
    assert ("id" in stored) is _current(sim)


def test_jobs_routes_exist_only_on_current(sim: SimulatorServer) -> None:
    r = requests.get(sim.url + "/api/jobs", timeout=10)
    if not _current(sim):
        assert r.status_code == 404
        assert requests.post(sim.url + f"/api/jobs/{uuid.uuid4()}/cancel", timeout=10).status_code == 404
        return
    assert r.status_code == 200 and r.json()["jobs"] == []
    done = post_prompt(sim.url, _graph())["prompt_id"]
    wait_history(sim.url, done)
    sim.faults.hang = True
    running = post_prompt(sim.url, _graph("held", hold=True))["prompt_id"]
    pending = post_prompt(sim.url, _graph("waiting"))["prompt_id"]
    deadline = time.monotonic() + 10
    while requests.get(f"{sim.url}/api/jobs/{running}", timeout=10).json()["status"] != "in_progress":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    body = requests.get(sim.url + "/api/jobs", params={"sort_order": "asc"}, timeout=10).json()
    assert [(j["id"], j["status"]) for j in body["jobs"]] == [(done, "completed"), (running, "in_progress"),
                                                              (pending, "pending")]
    assert body["pagination"] == {"offset": 0, "limit": None, "total": 3, "has_more": False}
    assert all(isinstance(j["create_time"], int) for j in body["jobs"])
    one = requests.get(f"{sim.url}/api/jobs/{done}", timeout=10).json()
    assert one["outputs_count"] == 1 and one["outputs"]["6"]["images"][0]["filename"].startswith("prof")
    assert one["workflow"]["prompt"]["2"]["inputs"]["text"] == "a lighthouse"
    assert requests.get(sim.url + "/api/jobs", params={"status": "done"}, timeout=10).status_code == 400
    assert requests.get(f"{sim.url}/api/jobs/{uuid.uuid4()}", timeout=10).status_code == 404
    # cancel: pending is dequeued, running interrupted, a finished one is a no-op
    assert requests.post(f"{sim.url}/api/jobs/{pending}/cancel", timeout=10).json() == {"cancelled": True}
    assert requests.post(f"{sim.url}/api/jobs/{running}/cancel", timeout=10).json() == {"cancelled": True}
    sim.faults.hang = False
    assert wait_history(sim.url, running)[running]["status"]["status_str"] == "error"
    assert requests.get(f"{sim.url}/api/jobs/{running}", timeout=10).json()["status"] == "cancelled"
    assert requests.post(f"{sim.url}/api/jobs/{done}/cancel", timeout=10).json() == {"cancelled": False}
    bad = requests.post(sim.url + "/api/jobs/cancel", json={"job_ids": ["x"]}, timeout=10)
    assert bad.status_code == 400 and bad.json()["invalid_ids"] == ["x"]


@pytest.mark.parametrize("name, mime", [("page.html", "text/html"), ("drawing.svg", "image/svg+xml")])
def test_view_serves_runnable_files_as_downloads_on_current(sim: SimulatorServer, name: str, mime: str) -> None:
    (sim.dirs["output"] / name).write_text("<svg xmlns='http://www.w3.org/2000/svg'><script>1</script></svg>")
    r = requests.get(sim.url + "/view", params={"filename": name}, timeout=10)
    assert r.status_code == 200
    if _current(sim):
        assert r.headers["Content-Type"] == "application/octet-stream"
        assert r.headers["Content-Disposition"] == f'attachment; filename="{name}"'
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Cache-Control"] == "no-store"
        as_img = requests.get(sim.url + "/view", params={"filename": name}, headers={"Sec-Fetch-Dest": "image"},
                              timeout=10)
        assert as_img.headers["Content-Type"].startswith(mime if mime == "image/svg+xml" else "application/octet")
    else:
        assert r.headers["Content-Disposition"] == f'filename="{name}"'
        assert r.headers["Content-Type"].startswith("application/octet-stream" if mime == "text/html" else mime)


def test_cli_takes_the_profile(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "linkpix.simulator", "--profile", "2.0"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "--profile" in out.stderr and "current" in out.stderr
