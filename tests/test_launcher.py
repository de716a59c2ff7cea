"""`start_server.py --demo`: a newcomer's first command starts everything and stops it cleanly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_until(proc: subprocess.Popen, marker: str, timeout: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} not seen; output so far:\n" + "\n".join(lines))


def test_demo_serves_an_image_and_stops_on_ctrl_c(project):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "start_server.py", "--demo", "--no-dashboard",
                             "--config", str(project / "config.json"), "--api-port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = read_until(proc, "try:", timeout=60)
        assert any("[api]" in line for line in lines)
        sim_url = next(line.split()[-1] for line in lines if line.strip().startswith("comfyui-simulator"))
        r = requests.get(f"http://127.0.0.1:{port}/prompt/hello", timeout=60)
        assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        for url in (f"http://127.0.0.1:{port}/health", sim_url + "/system_stats"):
            with pytest.raises(requests.ConnectionError):
                requests.get(url, timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_child_that_dies_stops_everything(project):
    (project / "config.json").write_text('{"comfyui_url": "not a url"}')  # the API refuses to start
    proc = subprocess.run([sys.executable, "start_server.py", "--no-dashboard", "--config",
                           str(project / "config.json"), "--api-port", str(free_port())],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "comfyui_url" in proc.stdout + proc.stderr
