"""A proxy named by the environment (HTTP_PROXY, NO_PROXY) is read once, when a backend's transport is made,
and still used for every call to ComfyUI after: over a real forwarding proxy on loopback."""

from __future__ import annotations

import http.server
import threading
import urllib.request
from collections.abc import Iterator

import pytest

from linkpix.comfy.transport import Transport
from linkpix.simulator import SimulatorServer


class _Forwarder(http.server.BaseHTTPRequestHandler):
    """A plain HTTP proxy: GETs with an absolute URL are fetched and answered, and counted."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append(self.path)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.path, timeout=5) as upstream:
            body = upstream.read()
            self.send_response(upstream.status)
            self.send_header("Content-Type", upstream.headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def forwarder() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (_Forwarder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_proxy_from_the_environment_is_used_after_it_is_read_once(
        simulator: SimulatorServer, forwarder: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, seen = forwarder
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    transport = Transport(simulator.url, 2, 5)
    monkeypatch.delenv("HTTP_PROXY")  # read at start: a later change of the environment is not looked up
    response = transport.request("GET", "/system_stats", control=True)
    assert response.ok and "system" in response.json()
    assert seen == [simulator.url + "/system_stats"]


def test_no_proxy_still_exempts_the_backend(simulator: SimulatorServer, forwarder: tuple[str, list[str]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, seen = forwarder
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    transport = Transport(simulator.url, 2, 5)
    assert transport.request("GET", "/system_stats", control=True).ok
    assert seen == []
