"""Helpers for the async jobs tests (no tests here): a LinkPix server whose job manager is stopped before
the server, a local webhook receiver on 127.0.0.1, SSE reading and polling."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from support import ApiServer

# The receivers listen on loopback, which webhooks may reach only when webhook_allow lists it.
FAST = {"webhook_backoff": 0.2, "webhook_timeout": 3, "webhook_allow": ["127.0.0.1"]}


class JobsServer(ApiServer):
    """ApiServer plus helpers; `close()` stops the job manager first, as a process exit would (running
    jobs stay `running` in the database for the next start to re-attach)."""

    def __init__(self, project: Path, comfyui_url: str, **overrides: Any) -> None:
        super().__init__(project, comfyui_url, **{**FAST, **overrides})
        # "Connection: close": a Response kept by a test would otherwise keep its connection open and
        # make the server's shutdown wait for it.
        self.http = requests.Session()
        self.http.headers["Connection"] = "close"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.http.get(self.url + path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.http.post(self.url + path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.http.delete(self.url + path, **kwargs)

    def submit(self, **body: Any) -> str:
        body.setdefault("width", 64)
        body.setdefault("height", 64)
        r = self.post("/generate", json=body)
        assert r.status_code == 202, r.text
        return r.json()["job_id"]

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.get(f"/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_for(self, job_id: str, states: tuple[str, ...] = ("succeeded", "failed", "cancelled"),
                 timeout: float = 30) -> dict[str, Any]:
        return wait_until(lambda: (lambda j: j if j["status"] in states else None)(self.job(job_id)),
                          timeout, f"job {job_id} to reach {states}")

    def close(self) -> None:
        self.http.close()
        if self.services.jobs is not None:
            self.services.jobs.close()
        super().close()


def wait_until(probe: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """A webhook receiver: records every POST (headers, raw body); answers with `statuses` in turn
    (then 200)."""

    def __init__(self, port: int = 0, statuses: list[int] | None = None) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        self.got = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.calls.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if status < 300:
                    receiver.got.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.calls]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a loopback port (conftest.py makes this fixture available to every test)."""
    hook = Receiver()
    try:
        yield hook
    finally:
        hook.close()


def read_events(url: str, timeout: float = 30) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of an SSE stream, read with requests (stream=True) until the server ends it."""
    with requests.get(url, stream=True, timeout=timeout) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/event-stream")
        kind, data = None, []
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and kind is not None:
                yield kind, json.loads("\n".join(data))
                kind, data = None, []
