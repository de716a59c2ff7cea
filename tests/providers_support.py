"""A BFL-protocol server for the provider tests, written from BFL's public API reference: `POST /v1/<model>`
with `x-key` answers `{id, polling_url}`; `GET <polling_url>` answers `{id, status, result}` (`Pending`, then
`Ready` with `result.sample`, a URL of the picture); moderation answers `Request Moderated`. Real HTTP on a
loopback port; it draws a plain picture whose colour follows the prompt, at the size asked."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

KEY = "bfl-test-key"


class BflServer:
    """`requests` records every submitted body; `pending_polls` polls answer Pending before Ready;
    `rate_limited` answers 429 to submissions (with Retry-After); a prompt containing `forbidden` is
    moderated."""

    def __init__(self, pending_polls: int = 2) -> None:
        self.pending_polls = pending_polls
        self.rate_limited = False
        self.requests: list[dict[str, Any]] = []
        self.tasks: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 - the http.server convention
                if self.headers.get("x-key") != KEY:
                    return self._json(403, {"detail": "Not authenticated - Invalid Authentication"})
                if server.rate_limited:
                    return self._json(429, {"detail": "You have too many active tasks"}, {"Retry-After": "7"})
                model = self.path.removeprefix("/v1/")
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                task = uuid.uuid4().hex
                with server.lock:
                    server.requests.append({"model": model, **body})
                    server.tasks[task] = {"body": body, "polls": 0}
                self._json(200, {"id": task, "polling_url": f"{server.url}/v1/get_result?id={task}"})

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                if parts.path.startswith("/samples/"):
                    return self._sample(parts.path.removeprefix("/samples/"))
                task_id = parse_qs(parts.query).get("id", [""])[0]
                with server.lock:
                    task = server.tasks.get(task_id)
                    if task is not None:
                        task["polls"] += 1
                if task is None:
                    return self._json(200, {"id": task_id, "status": "Task not found"})
                if "forbidden" in task["body"].get("prompt", ""):
                    return self._json(200, {"id": task_id, "status": "Request Moderated", "result": None})
                if task["polls"] <= server.pending_polls:
                    return self._json(200, {"id": task_id, "status": "Pending", "progress": 0.5})
                self._json(200, {"id": task_id, "status": "Ready",
                                 "result": {"sample": f"{server.url}/samples/{task_id}", "prompt": "x"}})

            def _sample(self, task_id: str) -> None:
                task = server.tasks.get(task_id)
                if task is None:
                    return self._json(404, {"detail": "no such sample"})
                data = picture(task["body"])
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def picture(body: dict[str, Any]) -> bytes:
    """A plain PNG: the prompt's colour, at width x height (or 1024 square for ratio-only models)."""
    digest = hashlib.sha256(str(body.get("prompt")).encode()).digest()
    size = (int(body.get("width", 1024)), int(body.get("height", 1024)))
    out = io.BytesIO()
    Image.new("RGB", size, tuple(digest[:3])).save(out, "PNG")
    return out.getvalue()
