"""One backend's /object_info answer, cached: 0.5 MB computed live by ComfyUI, so asked for rarely.

The client answers callers from it and the keeper refreshes it in the background when it goes stale;
both hold this cache, not each other.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from linkpix.comfy.health import Health
from linkpix.comfy.transport import Transport


class ObjectInfoCache:
    """GET /object_info, kept for `ttl` seconds; while the backend is known to be frozen, a cached answer
    is returned however old it is."""

    def __init__(self, transport: Transport, health: Health, ttl: float) -> None:
        self._http = transport
        self._health = health
        self._ttl = ttl
        self._entry: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def get(self, refresh: bool = False) -> dict[str, Any]:
        with self._lock:
            cached = self._entry
            if cached is not None and self._health.frozen:
                return cached[1]
            if refresh or cached is None or time.monotonic() - cached[0] > self._ttl:
                info = self._http.json("GET", "/object_info")
                cached = self._entry = (time.monotonic(), info if isinstance(info, dict) else {})
            return cached[1]

    def cached(self) -> dict[str, Any] | None:
        """The last answer, without asking ComfyUI (None before the first)."""
        cached = self._entry
        return cached[1] if cached is not None else None

    def stale(self) -> bool:
        cached = self._entry
        return cached is None or time.monotonic() - cached[0] > self._ttl
