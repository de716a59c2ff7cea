"""Start the API (and with --demo the ComfyUI simulator) as child processes, and stop them together.

Each child's output is prefixed with its name. No child is restarted silently: when one exits, the
others are stopped and the launcher exits with an error naming it, so a crash is never hidden behind a
service that looks alive.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .config import load_config
from .errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _pump(child: Child) -> None:
    assert child.proc is not None and child.proc.stdout is not None
    for raw in child.proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip()
        print(f"[{child.name}] {line}", flush=True)


def start(child: Child) -> None:
    env = {**os.environ, **child.env, "PYTHONUNBUFFERED": "1"}
    child.proc = subprocess.Popen(child.argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    threading.Thread(target=_pump, args=(child,), daemon=True).start()


def stop_all(children: Sequence[Child], grace: float = 8.0) -> None:
    for c in children:
        if c.proc and c.proc.poll() is None:
            c.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for c in children:
        if c.proc is None:
            continue
        try:
            c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait()


def wait_until_up(url: str, children: Sequence[Child], timeout: float = 60.0) -> bool:
    """Poll `url` until it answers (any status), giving up if a child dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c.proc and c.proc.poll() is not None for c in children):
            return False
        try:
            requests.get(url, timeout=1)
            return True
        except requests.RequestException:
            time.sleep(0.2)
    return False


def plan(args: argparse.Namespace) -> tuple[list[Child], dict[str, str]]:
    """Which children to start, and the URLs to announce."""
    cfg = load_config(args.config)
    s = cfg.settings
    api_port = args.api_port or s.api_port
    env = {"LINKPIX_API_PORT": str(api_port)}
    children: list[Child] = []
    urls = {"api": f"http://127.0.0.1:{api_port}"}
    if args.demo:
        sim_port = free_port()
        children.append(Child("comfyui-simulator", [sys.executable, "-m", "linkpix.simulator",
                                                    "--port", str(sim_port), "--step-delay", "0.05"]))
        env["LINKPIX_COMFYUI_URL"] = f"http://127.0.0.1:{sim_port}"
        env.setdefault("LINKPIX_WORKFLOW_PATH", os.environ.get("LINKPIX_WORKFLOW_PATH", "demo.json"))
        urls["comfyui-simulator"] = env["LINKPIX_COMFYUI_URL"]
    children.append(Child("api", [sys.executable, "app.py", "--config", str(args.config)], env))
    dashboard = ROOT / "gradio_app.py"
    if not args.no_dashboard and dashboard.exists():
        from .dashboard.context import dashboard_auth

        dashboard_auth(s)  # network access without a dashboard login: refuse before starting anything
        children.append(Child("dashboard", [sys.executable, str(dashboard), "--config", str(args.config)],
                              env))
        urls["dashboard"] = f"http://127.0.0.1:{s.web_port}"
    return children, urls


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start LinkPix: the API, the dashboard, and with "
                                                 "--demo a ComfyUI simulator so no GPU is needed.")
    parser.add_argument("--demo", action="store_true",
                        help="also start the ComfyUI simulator on a free loopback port and use it")
    parser.add_argument("--config", default="config.json")
    parser.add_argument("--api-port", type=int)
    parser.add_argument("--no-dashboard", action="store_true", help="start the API only")
    args = parser.parse_args(argv)
    try:
        children, urls = plan(args)
    except ConfigError as exc:
        print(f"LinkPix cannot start: {exc.message}", file=sys.stderr)
        return 2
    stopping = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    for child in children:
        start(child)
    try:
        if wait_until_up(urls["api"] + "/health", children):
            print("LinkPix is up:", flush=True)
            for name, url in urls.items():
                print(f"  {name:18} {url}", flush=True)
            print(f"  try:              {urls['api']}/prompt/hello", flush=True)
        return _supervise(children, stopping)
    finally:
        stop_all(children)


def _supervise(children: Sequence[Child], stopping: threading.Event) -> int:
    while not stopping.wait(0.3):
        for child in children:
            code = child.proc.poll() if child.proc else None
            if code is not None:
                print(f"[launcher] {child.name} exited with code {code}; stopping the others", flush=True)
                return 1
    print("[launcher] stopping", flush=True)
    return 0
