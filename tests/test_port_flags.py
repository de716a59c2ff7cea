"""`app.py` and `start_server.py` take the API port under both spellings, `--api-port` and `--port`: a reader
who learnt one from the docs is not told "unrecognized arguments" by the other script.

A port held by this test proves which port each script tried: both refuse it, naming it, before serving.
One run of each script on a free port shows the flag really moves the API there."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LINKPIX_")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


# app.py builds the whole app before it binds (about 8 s on two busy cores): slow; the launcher checks first.
@pytest.mark.parametrize("script", [pytest.param("app.py", marks=pytest.mark.slow), "start_server.py"])
@pytest.mark.parametrize("flag", ["--api-port", "--port"])
def test_both_spellings_reach_the_api_port(project, busy_port, script, flag):
    argv = [sys.executable, script, "--config", str(project / "config.json"), flag, str(busy_port)]
    if script == "start_server.py":
        argv.append("--no-dashboard")
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, env=_env())
    assert done.returncode != 0
    assert "unrecognized arguments" not in done.stderr
    assert f"port {busy_port} (api_port)" in done.stderr and "already in use" in done.stderr
    assert "--api-port N" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_app_py_serves_on_the_port_given_with_port(project, simulator):
    port = _free_port()
    env = {**_env(), "LINKPIX_COMFYUI_URL": simulator.url, "LINKPIX_WORKFLOW_PATH": "demo.json"}
    proc = subprocess.Popen([sys.executable, "app.py", "--config", str(project / "config.json"), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        answer = None
        for _ in range(300):  # bounded: at most about 30 s of start-up
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/prompt/hello", timeout=30)
                break
            except requests.ConnectionError:
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
        assert answer is not None, "app.py never answered on the port given with --port"
        assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/png"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
