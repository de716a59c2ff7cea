"""The dashboard login locks an address out after a few wrong passwords (issue 13 item 7), over real
sockets against the Gradio server as the launcher starts it; another address may still log in."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from dashboard_support import running_dashboard

from linkpix.dashboard.lockout import MAX_FAILURES
from linkpix.dashboard.server import Running


@pytest.fixture
def dashboard(api, project: Path) -> Iterator[Running]:
    with running_dashboard(api, project, monitor_seconds=60.0, network_access=True, dashboard_user="admin",
                           dashboard_password="right", api_keys={"k": "admin"}) as running:
        yield running


def _login(running: Running, password: str, source: str = "127.0.0.1") -> http.client.HTTPResponse:
    host, port = running.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=20, source_address=(source, 0))
    conn.request("POST", "/login", urlencode({"username": "admin", "password": password}),
                 {"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_wrong_passwords_lock_the_address_out_and_not_others(dashboard):
    assert _login(dashboard, "right").status == 200
    for _ in range(MAX_FAILURES):
        assert _login(dashboard, "wrong").status == 400
    locked = _login(dashboard, "right")  # even the right password waits now
    assert locked.status == 429 and int(locked.getheader("Retry-After")) > 0
    assert _login(dashboard, "right", source="127.0.0.2").status == 200  # another address is not locked


def test_a_good_login_clears_the_count(dashboard):
    for _ in range(MAX_FAILURES - 1):
        assert _login(dashboard, "wrong").status == 400
    assert _login(dashboard, "right").status == 200
    assert _login(dashboard, "wrong").status == 400  # counting starts again


def test_the_lock_ends_after_its_time():
    from linkpix.dashboard.lockout import LoginLockout

    now = [1000.0]
    guard = LoginLockout(lambda *a: None, max_failures=3, lock_seconds=60, clock=lambda: now[0])
    for _ in range(3):
        guard.failed("10.0.0.9")
    assert guard.locked_for("10.0.0.9") == 60 and guard.locked_for("10.0.0.8") == 0
    now[0] += 61
    assert guard.locked_for("10.0.0.9") == 0
    guard.failed("10.0.0.9")
    assert guard.locked_for("10.0.0.9") == 0  # a fresh count after serving the lock
