"""Schemathesis against the running API's /openapi.json (issue 15 item 5).

Every documented operation is called with cases Schemathesis draws from the description (valid ones and,
in its negative mode, invalid ones) on a real waitress server talking to the simulator. The checks are the
ones that make the description a contract: no 5xx, only documented status codes and content types, and
every JSON answer valid against its documented schema. The run is bounded (`FUZZ_EXAMPLES` cases per
operation, `LINKPIX_FUZZ_EXAMPLES` to change it) so it fits CI; its figures are printed at the end:
operations, cases, failures.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support import ApiServer

from linkpix.simulator import SimulatorServer

ROOT = Path(__file__).resolve().parent.parent
FUZZ_EXAMPLES = int(os.environ.get("LINKPIX_FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
FIGURES: dict[str, Any] = {"operations": set(), "cases": 0, "failures": 0, "failed": []}


@pytest.fixture(scope="module")
def fuzz_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """LinkPix as shipped (its config, workflows and styles) on a loopback port, with the simulator."""
    tmp = tmp_path_factory.mktemp("fuzz")
    project = tmp / "project"
    project.mkdir()
    for name in ("data", "workflows"):
        shutil.copytree(ROOT / name, project / name,
                        ignore=shutil.ignore_patterns("*.lock", "jobs.sqlite3*", "uploads", "originals"))
    shutil.copy(ROOT / "config.json", project / "config.json")
    (project / "cache").mkdir()
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp / "comfyui", step_delay=0.0)
    sim.start()
    # Event streams end with their job or after events_max_seconds: keep the unknown-job ones short.
    server = ApiServer(project, sim.url, events_max_seconds=2.0, events_heartbeat=1.0)
    try:
        yield server
    finally:
        server.close()
        sim.stop()


@pytest.fixture(scope="module")
def api_schema(fuzz_api: ApiServer, request: pytest.FixtureRequest) -> Any:
    request.addfinalizer(_report(request.config))
    return schemathesis.openapi.from_url(fuzz_api.url + "/openapi.json")


def _report(config: pytest.Config) -> Any:
    def write() -> None:
        line = (f"schemathesis: {len(FIGURES['operations'])} operations, {FIGURES['cases']} cases, "
                f"{FIGURES['failures']} failures")
        if FIGURES["failed"]:
            line += " (" + ", ".join(sorted(set(FIGURES["failed"]))) + ")"
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capture is None:
            print(line)
            return
        with capture.global_and_fixture_disabled():  # CI shows the figures whether or not anything failed
            reporter.write_line(line)
    return write


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.timeout(900)  # every operation runs inside this one test (as subtests)
@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_documented_contract(case: Any) -> None:
    label = case.operation.label
    FIGURES["operations"].add(label)
    FIGURES["cases"] += 1
    try:
        case.call_and_validate(checks=CHECKS, timeout=30)
    except BaseException:
        FIGURES["failures"] += 1
        FIGURES["failed"].append(label)
        raise
