"""The simulator's flags for building pools: --name, --checkpoints, --unets, --loras, --run-delay (and the same
keyword arguments), and its freeze fault."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from jobs_support import free_port, wait_until

from linkpix.simulator import SimulatorServer

ROOT = Path(__file__).resolve().parent.parent


def graph(seed: int) -> dict:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": seed}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "flags"}}}


def run_seconds(url: str, seed: int) -> float:
    started = time.monotonic()
    prompt_id = requests.post(f"{url}/prompt", json={"prompt": graph(seed)}, timeout=5).json()["prompt_id"]
    wait_until(lambda: requests.get(f"{url}/history/{prompt_id}", timeout=5).json(), 10, "the run to finish")
    return time.monotonic() - started


def test_the_command_line_flags_shape_what_it_lists_and_how_long_it_runs(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "linkpix.simulator", "--port", str(port), "--root",
                             str(tmp_path), "--name", "gpu7", "--checkpoints", "a.safetensors,b.safetensors",
                             "--unets", "u.safetensors", "--loras", "l1.safetensors, l2.safetensors",
                             "--run-delay", "0.4"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), 30, "the simulator to listen")
        assert requests.get(f"{url}/models/checkpoints", timeout=5).json() == ["a.safetensors", "b.safetensors"]
        assert requests.get(f"{url}/models/diffusion_models", timeout=5).json() == ["u.safetensors"]
        info = requests.get(f"{url}/object_info/LoraLoader", timeout=5).json()
        assert info["LoraLoader"]["input"]["required"]["lora_name"][0] == ["l1.safetensors", "l2.safetensors"]
        stats = requests.get(f"{url}/system_stats", timeout=5).json()
        assert stats["devices"][0]["name"].startswith("gpu7: ") and stats["system"]["argv"][-2:] == ["--name", "gpu7"]
        assert run_seconds(url, 1) >= 0.4
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/prompt", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_keyword_arguments_and_a_freeze_that_accepts_but_never_answers(tmp_path):
    sim = SimulatorServer(port=0, root=tmp_path, name="k", checkpoints=["only.safetensors"], run_delay=0.2)
    sim.start()
    try:
        info = requests.get(f"{sim.url}/object_info/CheckpointLoaderSimple", timeout=5).json()
        assert info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == ["only.safetensors"]
        assert run_seconds(sim.url, 2) >= 0.2
        sim.faults.run_delay = 0.0
        sim.freeze()
        with socket.create_connection(("127.0.0.1", sim.port), timeout=2) as conn:  # the kernel still accepts
            conn.sendall(b"GET /prompt HTTP/1.1\r\nHost: x\r\n\r\n")
            conn.settimeout(0.5)
            try:
                answer = conn.recv(100)
            except TimeoutError:
                answer = None
            assert answer is None  # ... but nothing answers
            sim.thaw()
            conn.settimeout(5)
            assert conn.recv(100).startswith(b"HTTP/1.1 200")  # what arrived meanwhile is handled after
        assert run_seconds(sim.url, 3) < 5
    finally:
        sim.stop()
