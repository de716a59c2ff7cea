"""`python3 app.py` as users run it: log lines written off the request thread and none lost when it is
stopped by SIGTERM (a service manager, the launcher) or SIGHUP (the terminal closed)."""

from __future__ import annotations

import os
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


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the API exited while starting"
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not come up")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_every_answered_request_is_logged_when_the_api_is_stopped(project, simulator, tmp_path, signum):
    port = free_port()
    log_file = tmp_path / "linkpix.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKPIX_")}
    env.update(LINKPIX_COMFYUI_URL=simulator.url, LINKPIX_WORKFLOW_PATH="demo.json")
    with open(log_file, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "app.py", "--config", str(project / "config.json"),
                                 "--port", str(port)], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_up(url + "/openapi.json", proc)
            session = requests.Session()
            for i in range(200):
                assert session.get(f"{url}/prompt/logged?width=64&height=64&n={i % 3}", timeout=30).ok
            proc.send_signal(signum)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log_file.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if "GET /prompt/logged" in line]
    assert len(lines) == 200, text[-2000:]
    assert sum("cache=hit" in line for line in lines) >= 197
    assert "Traceback" not in text
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_a_record_with_an_object_argument_or_a_traceback_is_one_line_with_one_prefix():
    import io
    import logging

    from linkpix.run.api import logging_off_thread

    out = io.StringIO()
    with logging_off_thread("INFO", out):
        logging.getLogger("linkpix.comfy.stream").warning("cannot open the websocket (%s)", OSError(111, "refused"))
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("linkpix.test").exception("failed with %r", {"a": 1})
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("WARNING linkpix.comfy.stream: cannot open the websocket ([Errno 111] refused)")
    assert "WARNING:" not in out.getvalue() and "ERROR:" not in out.getvalue()
    assert lines[1].endswith("ERROR linkpix.test: failed with {'a': 1}") and "ValueError: boom" in lines[-1]
