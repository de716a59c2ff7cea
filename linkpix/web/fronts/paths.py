"""Where the ComfyUI front answers besides the root: `/comfy/...`, `/comfy/k/<key>/...` and `/api/...`.

ComfyUI serves every route also under `/api` (Open WebUI uploads to `/api/upload/image`), and LinkPix
offers it under a base path for clients that keep one, with an optional API key in the path for clients
that cannot send headers. Rather than registering each route several times, this WSGI layer maps those
paths onto the root routes (the key goes into the environ), so each route exists once. LinkPix's own
`/api/models` stays LinkPix's; ComfyUI's `/models` list is at `/models` and `/comfy/models`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from linkpix.web.fronts.common import FRONT_KEY

# First path segments of ComfyUI's routes (`prompt` only as the exact path: /prompt/<text> is the link).
ROUTES = frozenset({"queue", "interrupt", "free", "history", "view", "upload", "object_info", "system_stats",
                    "features", "embeddings", "models", "ws", "extensions"})


class FrontPaths:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(("/comfy/", "/api/")):
            mapped = _map(path)
            if mapped is not None:
                new_path, key = mapped
                environ["PATH_INFO"] = new_path
                if key:
                    environ[FRONT_KEY] = key
        return self.app(environ, start_response)


def _map(path: str) -> tuple[str, str | None] | None:
    """(root path, key) for a ComfyUI route under a prefix; None for anything else."""
    key = None
    if path.startswith("/comfy/"):
        rest = path[len("/comfy"):]
        if rest.startswith("/k/"):
            key, _, tail = rest[3:].partition("/")
            rest = "/" + tail
        if rest.startswith("/api/"):
            rest = rest[4:]
    else:
        rest = path[4:]
        if rest == "/models":  # LinkPix's own /api/models
            return None
    first = rest.split("/", 2)[1] if rest.count("/") else ""
    if rest == "/prompt" or first in ROUTES:
        return rest, key or None
    return None
