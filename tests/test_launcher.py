"""`start_server.py --demo`: a newcomer's first command starts everything and stops it cleanly."""

from __future__ import annotations

import json
import os
import re
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


# -- issue 9, item 4: signals, ports, the ComfyUI hint ------------------------------------------------------

def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LINKPIX_")}


def _launch(project, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "start_server.py", "--config", str(project / "config.json"), *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())


def _children(lines: list[str]) -> dict[str, int]:
    found = [re.search(r"\[launcher\] started (\S+) \(pid (\d+)\)", line) for line in lines]
    return {m.group(1): int(m.group(2)) for m in found if m}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"  # a zombie has exited; only its parent's (init's) reaping is left
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _wait_gone(pids: list[int], ports: list[int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids) and all(_refused(p) for p in ports):
            return
        time.sleep(0.1)
    raise AssertionError(f"still running: pids {[p for p in pids if _alive(p)]}, "
                         f"ports {[p for p in ports if not _refused(p)]}")


def _kill_all(proc: subprocess.Popen, pids: list[int]) -> None:
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_sighup_stops_every_child(project):
    """Closing the terminal sends SIGHUP to the launcher only (the children have sessions of their own)."""
    api_port = free_port()
    proc = _launch(project, "--demo", "--no-dashboard", "--api-port", str(api_port))
    pids: list[int] = []
    try:
        lines = read_until(proc, "try:", timeout=60)
        children = _children(lines)
        pids = list(children.values())
        assert set(children) == {"comfyui-simulator", "api"}
        sim_port = int(next(line for line in lines if line.strip().startswith("comfyui-simulator")).rsplit(":", 1)[1])
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=30) == 0
        _wait_gone(pids, [api_port, sim_port], timeout=5)
    finally:
        _kill_all(proc, pids)


def test_sigkill_of_the_launcher_takes_every_child_with_it(project):
    """No code of the launcher runs on SIGKILL: the children must notice by themselves."""
    api_port, web_port = free_port(), free_port()
    proc = _launch(project, "--demo", "--api-port", str(api_port), "--web-port", str(web_port))
    pids: list[int] = []
    try:
        lines = read_until(proc, "try:", timeout=90)
        children = _children(lines)
        pids = list(children.values())
        assert set(children) == {"comfyui-simulator", "api", "dashboard"}
        deadline = time.monotonic() + 90
        while _refused(web_port) and time.monotonic() < deadline:  # the dashboard takes longer to start
            assert _alive(children["dashboard"])
            time.sleep(0.2)
        assert not _refused(web_port) and not _refused(api_port)
        proc.kill()
        proc.wait()
        _wait_gone(pids, [api_port, web_port], timeout=30)
    finally:
        _kill_all(proc, pids)


@pytest.mark.parametrize("which", ["api", "web"])
def test_a_port_in_use_is_named_before_anything_starts(project, which):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = {"api": busy, "web": free_port()} if which == "api" else {"api": free_port(), "web": busy}
        done = subprocess.run([sys.executable, "start_server.py", "--config", str(project / "config.json"),
                               "--api-port", str(ports["api"]), "--web-port", str(ports["web"])],
                              cwd=ROOT, capture_output=True, text=True, timeout=60, env=_env())
    out = done.stdout + done.stderr
    assert done.returncode == 2
    assert f"port {busy} ({which}_port)" in out and "already in use" in out
    assert f"--{which}-port" in out and f"LINKPIX_{which.upper()}_PORT" in out
    assert "LinkPix is up" not in out and "Traceback" not in out and "GRADIO_SERVER_PORT" not in out
    assert "[launcher] started" not in out  # nothing was started


def test_the_api_alone_names_its_port_setting_too(project):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "app.py", "--config", str(project / "config.json"),
                               "--port", str(busy)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              env=_env())
    assert done.returncode != 0
    assert f"port {busy} (api_port)" in done.stderr and "LINKPIX_API_PORT" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_demo_an_unreachable_comfyui_is_said_at_start(project):
    config = json.loads((project / "config.json").read_text())
    config["comfyui_url"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    (project / "config.json").write_text(json.dumps(config))
    proc = _launch(project, "--no-dashboard", "--api-port", str(free_port()))
    pids: list[int] = []
    try:
        lines = read_until(proc, "try:", timeout=60)
        pids = list(_children(lines).values())
        hint = next(line for line in lines if "not reachable" in line)
        assert config["comfyui_url"] in hint and "--demo" in hint
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=20)  # reading on, so a full pipe can never hold the launcher
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("the launcher did not stop within 20 s of Ctrl+C; its last output:\n"
                                 + proc.communicate()[0][-3000:]) from None
        assert proc.returncode == 0, rest
    finally:
        _kill_all(proc, pids)


def test_every_announced_address_answers_when_up_is_said(project):
    """The dashboard starts seconds after the API: "LinkPix is up" waits for it, so its link works at once."""
    api_port, web_port = free_port(), free_port()
    proc = _launch(project, "--demo", "--api-port", str(api_port), "--web-port", str(web_port))
    pids: list[int] = []
    try:
        lines = read_until(proc, "try:", timeout=120)
        pids = list(_children(lines).values())
        assert set(_children(lines)) == {"comfyui-simulator", "api", "dashboard"}
        r = requests.get(f"http://127.0.0.1:{web_port}/", timeout=10)
        assert r.status_code == 200 and "<html" in r.text.lower()
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, rest
    finally:
        _kill_all(proc, pids)
