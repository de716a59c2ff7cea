"""`gradio_app.py` as the launcher runs it: a child process that prints its URL, serves the page, binds
loopback unless network access is on, refuses to start without a login when it is, and stops cleanly
on SIGTERM (what start_server.py sends on Ctrl+C)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from linkpix.errors import ConfigError
from linkpix.run.launcher import free_port, plan

# Slow (docs/testing.md): starts the dashboard as a process.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKPIX_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _configure(project: Path, **values) -> Path:
    path = project / "config.json"
    config = json.loads(path.read_text())
    config.update(values)
    path.write_text(json.dumps(config))
    return path


def test_dashboard_child_prints_its_url_serves_and_stops_on_sigterm(project, api):
    port = free_port()
    config = _configure(project, web_port=port)
    proc = subprocess.Popen([sys.executable, "gradio_app.py", "--config", str(config)], cwd=ROOT,
                            env=_env(LINKPIX_API_URL=api.url), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        line, deadline = "", time.monotonic() + 60
        while "dashboard on" not in line and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
        assert f"LinkPix dashboard on http://127.0.0.1:{port}" in line, line
        assert f"API: {api.url}" in line
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "LinkPix dashboard" in page.text
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0 and "stopping" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_network_access_without_login_refuses_to_start(project):
    config = _configure(project, network_access=True, web_port=free_port())
    done = subprocess.run([sys.executable, "gradio_app.py", "--config", str(config)], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "needs a login" in done.stderr and "LINKPIX_DASHBOARD_PASSWORD" in done.stderr


def test_launcher_starts_the_dashboard_child_and_checks_its_login_first(project):
    config = _configure(project)
    children, urls = plan(argparse.Namespace(config=str(config), demo=False, api_port=None, no_dashboard=False))
    dashboard = next(c for c in children if c.name == "dashboard")
    assert dashboard.argv[1:] == [str(ROOT / "gradio_app.py"), "--config", str(config)]
    assert urls["dashboard"].startswith("http://127.0.0.1:")
    _configure(project, network_access=True)
    with pytest.raises(ConfigError, match="needs a login"):
        plan(argparse.Namespace(config=str(config), demo=False, api_port=None, no_dashboard=False))
