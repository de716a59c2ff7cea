"""Shared pieces of the benchmarks: a throw-away project, servers in child processes, wrk, percentiles.

Every benchmark measures LinkPix and its baseline in the same run on the same machine and prints the
ratio, so the figures compare like with like whatever machine runs them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from linkpix.simulator import SimulatorServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_project(**settings: object) -> Path:
    """A copy of config, data and workflows in a temporary folder, with `settings` merged in."""
    dest = Path(tempfile.mkdtemp(prefix="linkpix-bench-"))
    for name in ("data", "workflows"):
        shutil.copytree(ROOT / name, dest / name)
    config = json.loads((ROOT / "config.json").read_text())
    config.update(settings)
    (dest / "config.json").write_text(json.dumps(config))
    return dest


def wait_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def process(argv: Sequence[str], probe_url: str, env: dict[str, str] | None = None,
            output: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, up once `probe_url` answers; its stdout and stderr go to `output` (a file, as
    a service's log usually does) or nowhere. Stopped with SIGTERM, as a service manager does."""
    sink = open(output, "ab") if output is not None else subprocess.DEVNULL
    proc = subprocess.Popen(list(argv), cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_up(probe_url)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if output is not None:
            sink.close()


@contextmanager
def simulator(step_delay: float = 0.0) -> Iterator[SimulatorServer]:
    """The simulator in this process (it mostly sleeps), so a benchmark can change its faults live."""
    sim = SimulatorServer(port=0, root=Path(tempfile.mkdtemp(prefix="linkpix-sim-")), step_delay=step_delay)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


API_PIDS: dict[str, int] = {}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def linkpix_api(project: Path, comfyui_url: str, log_name: str = "linkpix.log",
                **env_settings: str) -> Iterator[str]:
    """The API as users run it (`python3 app.py`: default settings, default log level, one access-log
    line per request), its log written to `project/<log_name>`; yields its URL (pid in API_PIDS).
    `env_settings` (LINKPIX_... = value) are for a comparison run only, never for the figure itself."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKPIX_")}
    env.update(env_settings, LINKPIX_COMFYUI_URL=comfyui_url)
    with process([sys.executable, str(ROOT / "app.py"), "--config", str(project / "config.json"),
                  "--port", str(port)], url + "/openapi.json", env=env, output=project / log_name) as proc:
        API_PIDS[url] = proc.pid
        yield url


def log_lines(project: Path, needle: str, log_name: str = "linkpix.log") -> int:
    """How many lines of the API's log (see `linkpix_api`) contain `needle`."""
    path = project / log_name
    if not path.exists():
        return 0
    with open(path, encoding="utf-8", errors="replace") as f:
        return sum(needle in line for line in f)


def wrk(url: str, connections: int = 16, seconds: int = 5, threads: int = 2) -> dict[str, float]:
    """Run wrk (Debian package `wrk`) and return requests/s and latency percentiles in ms."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    out = subprocess.run(["wrk", "--latency", "-t", str(threads), "-c", str(connections),
                          "-d", f"{seconds}s", url], capture_output=True, text=True, check=True).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
               "requests": float(re.search(r"(\d+) requests in", out).group(1))}
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        figures[f"p{pct}_ms"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    figures["errors"] = float(non2xx.group(1)) if non2xx else 0.0
    return figures


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
