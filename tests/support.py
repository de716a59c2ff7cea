"""Test helpers: run a LinkPix app under waitress on a loopback port, in this process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from linkpix.run.api import make_server
from linkpix.simulator import SimulatorServer
from linkpix.web import create_app

# Captured from a real ComfyUI 0.3.64 (see comfyui_captures/README.md): the truth the simulator and the
# client are checked against. The repository carries them; nothing reads a folder outside it.
CAPTURES = Path(__file__).resolve().parent / "comfyui_captures"


class ApiServer:
    """The real WSGI server the service uses, on a free port, stopped by `close()`."""

    def __init__(self, project: Path, comfyui_url: str | None, **overrides: Any) -> None:
        """`comfyui_url=None` leaves the URL to project/config.json (to test live reloads of it)."""
        settings = {"workflow_path": "demo.json", **overrides}
        if comfyui_url is not None:
            settings["comfyui_url"] = comfyui_url
        self.app = create_app(project / "config.json", overrides=settings, use_env=False)
        self.services = self.app.extensions["linkpix"]
        threads = self.services.config.settings.threads
        self.server = make_server(self.app, host="127.0.0.1", port=0, threads=threads)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self._closing = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.server.run()
        except OSError:
            if not self._closing:  # closing the sockets under the loop ends it with EBADF; expected
                raise

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return requests.get(self.url + path, **kwargs)

    def close(self) -> None:
        self._closing = True
        self.server.close()
        self.server.task_dispatcher.shutdown()
        self.services.close()
        self.thread.join(timeout=5)


@contextmanager
def running_simulator(root: Path, **options: Any) -> Iterator[SimulatorServer]:
    """A ComfyUI simulator on a free loopback port with its files under `root`, stopped after the block
    (`options`: SimulatorServer's, such as step_delay, profile, loras, audio)."""
    server = SimulatorServer(host="127.0.0.1", port=0, root=root, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
