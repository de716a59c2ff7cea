"""Shared fixtures: a running ComfyUI simulator on a loopback port, and a throw-away project folder; the
support modules' fixtures (a webhook `receiver`, a running `dashboard`) are made available here."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_support import dashboard  # noqa: F401 - a fixture for every test
from fronts_support import FrontServer
from jobs_support import JobsServer, receiver  # noqa: F401 - receiver: a fixture for every test
from support import CAPTURES, ApiServer, running_simulator

from linkpix.simulator import SimulatorServer

__all__ = ["CAPTURES"]

ROOT = Path(__file__).resolve().parent.parent
# What a running LinkPix leaves in data/ and workflows/: never part of a test's starting state.
RUNTIME_FILES = shutil.ignore_patterns("*.lock", "*.sqlite3*", "uploads", "originals", "fronts")
# A module slow as a whole says so on its first `pytestmark` line (docs/testing.md).
WHOLLY_SLOW = re.compile(r"^pytestmark = .*\bpytest\.mark\.slow\b", re.M)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The quick loop (`-m "not slow"`) does not even import a module that is slow as a whole: it would deselect
    every test in it, after paying seconds of imports (Schemathesis, Playwright, the OpenAI client...)."""
    if collection_path.suffix != ".py" or config.getoption("markexpr") != "not slow":
        return None
    return True if WHOLLY_SLOW.search(collection_path.read_text()) else None


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[SimulatorServer]:
    """A fresh simulator per test (its own queue, history and files), with no step delay."""
    with running_simulator(tmp_path / "comfyui", step_delay=0.0) as sim:
        yield sim


@pytest.fixture
def slow_sim(tmp_path: Path) -> Iterator[SimulatorServer]:
    """A simulator that takes 60 ms per sampler step and sends a JPEG preview with each (live previews)."""
    with running_simulator(tmp_path / "comfyui", step_delay=0.06) as sim:
        yield sim


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the shipped config, data and workflows in a temporary folder, safe to modify."""
    dest = tmp_path / "project"
    dest.mkdir()
    for name in ("data", "workflows"):
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, dest / name, ignore=RUNTIME_FILES)
    shutil.copy(ROOT / "config.json", dest / "config.json")
    (dest / "cache").mkdir()
    return dest


@pytest.fixture
def fronts(project: Path, simulator: SimulatorServer) -> Iterator[FrontServer]:
    """LinkPix with its fronts (A1111, OpenAI, ComfyUI, Comfy API v2) on a loopback port, talking to the simulator."""
    server = FrontServer(project, simulator.url)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def api(project: Path, simulator: SimulatorServer) -> Iterator[ApiServer]:
    """LinkPix served by waitress on a loopback port, talking to the simulator, using demo.json."""
    server = ApiServer(project, simulator.url)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def jobs(project: Path, simulator: SimulatorServer) -> Iterator[JobsServer]:
    """The API with helpers for the async jobs routes (submit, wait for a state, read events)."""
    server = JobsServer(project, simulator.url)
    try:
        yield server
    finally:
        server.close()
