"""Start the API (and with --demo the ComfyUI simulator) as child processes, and stop them together.

Each child's output is prefixed with its name. No child is restarted silently: when one exits, the
others are stopped and the launcher exits with an error naming it, so a crash is never hidden behind a
service that looks alive. Ctrl+C, SIGTERM and SIGHUP (the terminal closed) stop everything; if the
launcher itself is killed, the children follow it (see `lifeline.py`). Before anything starts, the ports
are checked, so a port in use is one sentence naming the setting that changes it, never an old process
answering "LinkPix is up" or a child's traceback.
"""

from __future__ import annotations

import argparse
import errno
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

from linkpix.config import ENV_PREFIX, LAUNCHER_ENV, Settings, load_config
from linkpix.errors import ConfigError
from linkpix.run.lifeline import PARENT_ENV, death_signal_preexec

ROOT = Path(__file__).resolve().parents[2]  # the project folder (linkpix/run/launcher.py)


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
    """Start one child in a session of its own, bound to die with this process (see `lifeline.py`).
    Its output is pumped by `pump`, started after every child is running (a `preexec_fn` is only safe
    while this process has no other threads doing work)."""
    me = os.getpid()
    env = {**os.environ, **child.env, "PYTHONUNBUFFERED": "1", PARENT_ENV: str(me)}
    child.proc = subprocess.Popen(child.argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, start_new_session=True,
                                  preexec_fn=death_signal_preexec(me))
    print(f"[launcher] started {child.name} (pid {child.proc.pid})", flush=True)


def pump(child: Child) -> None:
    threading.Thread(target=_pump, args=(child,), daemon=True).start()


def stop_all(children: Sequence[Child], grace: float = 8.0) -> None:
    """Stop the children in the reverse order of their start, each before the next: the API goes before
    the simulator it talks to, so its last lines are not about a ComfyUI that vanished under it."""
    deadline = time.monotonic() + grace
    for c in reversed(children):
        if c.proc is None:
            continue
        if c.proc.poll() is None:
            c.proc.send_signal(signal.SIGTERM)
        try:
            c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"[launcher] {c.name} did not stop within {grace:.0f} s of SIGTERM; killing it", flush=True)
            c.proc.kill()
            c.proc.wait()


class StopRequest:
    """Set by the signal handler. Not a `threading.Event`: its `set()` takes a lock, and a handler that runs
    while the main thread is inside `Event.wait()` holding that same lock deadlocks the launcher for good
    (seen under load: Ctrl+C or SIGHUP ignored, the children left running)."""

    requested = False

    def is_set(self) -> bool:
        return self.requested


def wait_until_up(url: str, children: Sequence[Child], timeout: float = 60.0,
                  stop: StopRequest | None = None) -> bool:
    """Poll `url` until it answers (any status), giving up if a child dies, time runs out or `stop` is set."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c.proc and c.proc.poll() is not None for c in children) or (stop is not None and stop.is_set()):
            return False
        try:
            requests.get(url, timeout=1)
            return True
        except requests.RequestException:
            time.sleep(0.2)
    return False


def plan(args: argparse.Namespace) -> tuple[list[Child], dict[str, str]]:
    """Which children to start, and the URLs to announce."""
    s = load_config(args.config).settings
    api_port = args.api_port or s.api_port
    web_port = getattr(args, "web_port", None) or s.web_port
    env: dict[str, str] = {}
    decided: list[str] = []  # "key=why" for the settings the launcher decides (the dashboard shows them)
    for key, flag, given in (("api_port", "--api-port", args.api_port),
                             ("web_port", "--web-port", getattr(args, "web_port", None))):
        if given:  # otherwise each child reads the port from config.json / the environment itself
            env[f"{ENV_PREFIX}{key.upper()}"] = str(given)
            decided.append(f"{key}={flag}")
    children: list[Child] = []
    urls = {"api": f"http://127.0.0.1:{api_port}"}
    if args.demo:
        sim_port = free_port()
        children.append(Child("comfyui-simulator", [sys.executable, "-m", "linkpix.simulator",
                                                    "--port", str(sim_port), "--step-delay", "0.05"]))
        env["LINKPIX_COMFYUI_URL"] = f"http://127.0.0.1:{sim_port}"
        decided.append("comfyui_url=--demo: the simulator")
        if "LINKPIX_WORKFLOW_PATH" not in os.environ:
            env["LINKPIX_WORKFLOW_PATH"] = "demo.json"
            decided.append("workflow_path=--demo")
        urls["comfyui-simulator"] = env["LINKPIX_COMFYUI_URL"]
    env[LAUNCHER_ENV] = ",".join(decided)
    children.append(Child("api", [sys.executable, "app.py", "--config", str(args.config)], env))
    dashboard = ROOT / "gradio_app.py"
    if not args.no_dashboard and dashboard.exists():
        from linkpix.dashboard.context import dashboard_auth

        dashboard_auth(s)  # network access without a dashboard login: refuse before starting anything
        children.append(Child("dashboard", [sys.executable, str(dashboard), "--config", str(args.config)],
                              env))
        urls["dashboard"] = f"http://127.0.0.1:{web_port}"
    return children, urls


def port_problems(args: argparse.Namespace, settings: Settings) -> list[str]:
    """One sentence per port LinkPix needs that it cannot listen on, saying what changes it."""
    wanted = [("api_port", args.api_port or settings.api_port, "--api-port")]
    if not args.no_dashboard and (ROOT / "gradio_app.py").exists():
        wanted.append(("web_port", getattr(args, "web_port", None) or settings.web_port, "--web-port"))
    problems = []
    for key, port, flag in wanted:
        why = _cannot_listen(settings.bind_host, port)
        if why:
            problems.append(f"port {port} ({key}) on {settings.bind_host} {why}. Stop what uses it, or pick "
                            f"another port: {flag} N, \"{key}\" in {Path(args.config).name}, or "
                            f"{ENV_PREFIX}{key.upper()}=N.")
    if len(wanted) == 2 and wanted[0][1] == wanted[1][1]:
        problems.append(f"api_port and web_port are both {wanted[0][1]}: give the dashboard another port "
                        "(--web-port N, or web_port in config.json).")
    return problems


def _cannot_listen(host: str, port: int) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress does: TIME_WAIT is fine
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "is already in use (by an older LinkPix still running, or another program)"
            if exc.errno == errno.EACCES:
                return "needs privileges this user lacks (ports below 1024)"
            return f"cannot be used ({exc.strerror})"
    return None


def comfyui_hint(settings: Settings, timeout: float = 2.0) -> str | None:
    """Without --demo, a sentence when ComfyUI does not answer at the configured URL (None when it does)."""
    url = settings.comfyui_url
    try:
        requests.get(url + "/system_stats", timeout=timeout)
        return None
    except requests.RequestException as exc:
        kind = "no answer" if isinstance(exc, requests.Timeout) else "cannot connect"
    return (f"ComfyUI is not reachable at {url} ({kind}). Images will fail with 503 until it is: start "
            f"ComfyUI (with --listen if it runs on another machine) or set comfyui_url / "
            f"{ENV_PREFIX}COMFYUI_URL. To try LinkPix without ComfyUI or a GPU: python3 start_server.py --demo")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start LinkPix: the API, the dashboard, and with "
                                                 "--demo a ComfyUI simulator so no GPU is needed.")
    parser.add_argument("--demo", action="store_true",
                        help="also start the ComfyUI simulator on a free loopback port and use it")
    parser.add_argument("--config", default="config.json")
    parser.add_argument("--api-port", type=int, help="port of the API (instead of api_port)")
    parser.add_argument("--web-port", type=int, help="port of the dashboard (instead of web_port)")
    parser.add_argument("--no-dashboard", action="store_true", help="start the API only")
    args = parser.parse_args(argv)
    try:
        children, urls = plan(args)
        settings = load_config(args.config).settings
    except ConfigError as exc:
        print(f"LinkPix cannot start: {exc.message}", file=sys.stderr)
        return 2
    problems = port_problems(args, settings)
    if problems:
        for problem in problems:
            print(f"LinkPix cannot start: {problem}", file=sys.stderr)
        return 2
    if not args.demo:
        hint = comfyui_hint(settings)
        if hint:
            print(f"[launcher] {hint}", flush=True)
    stopping = StopRequest()

    def _on_signal(signum: int, _frame: object) -> None:
        stopping.requested = True

    for signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if signum is not None:
            signal.signal(signum, _on_signal)
    try:
        for child in children:
            start(child)
        for child in children:
            pump(child)
        # Announce only once every child answers: the dashboard takes seconds longer than the API.
        probes = [url + ("/health" if name == "api" else "/") for name, url in urls.items()]
        if all(wait_until_up(probe, children, stop=stopping) for probe in probes):
            print("LinkPix is up:", flush=True)
            for name, url in urls.items():
                print(f"  {name:18} {url}", flush=True)
            print(f"  try:              {urls['api']}/prompt/hello", flush=True)
        return _supervise(children, stopping)
    finally:
        stop_all(children)


def _supervise(children: Sequence[Child], stopping: StopRequest) -> int:
    while not stopping.is_set():
        time.sleep(0.3)  # a signal interrupts the sleep; its handler only sets a flag
        for child in children:
            code = child.proc.poll() if child.proc else None
            if code is not None:
                print(f"[launcher] {child.name} exited with code {code}; stopping the others", flush=True)
                return 1
    print("[launcher] stopping", flush=True)
    return 0
