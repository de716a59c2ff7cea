"""The ComfyUI client for the configured URL, replaced when the configuration points elsewhere.

The dashboard can change `comfyui_url` while the API runs. Callers ask `current()` for each new piece of
work; a run already under way keeps the client it started on (the generator pins it), and a replaced
client is closed only after the longest run it could still be serving has had time to end.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .client import ComfyClient

log = logging.getLogger(__name__)


class ClientHolder:
    """`current()` returns the client for `url()`; a changed URL gets a new client."""

    def __init__(self, url: Callable[[], str], retire_after: Callable[[], float],
                 client: ComfyClient | None = None) -> None:
        self._url = url
        self._retire_after = retire_after
        self._lock = threading.Lock()
        self._client = client or ComfyClient(url())
        self._retiring: list[threading.Timer] = []

    def current(self) -> ComfyClient:
        url = self._url()
        client = self._client
        if client.base_url == url.rstrip("/"):
            return client
        with self._lock:
            if self._client.base_url != url.rstrip("/"):
                old, self._client = self._client, ComfyClient(url)
                log.info("ComfyUI URL changed: %s -> %s", old.base_url, url)
                timer = threading.Timer(self._retire_after() + 60.0, old.close)
                timer.daemon = True
                timer.start()
                self._retiring.append(timer)
            return self._client

    def close(self) -> None:
        with self._lock:
            for timer in self._retiring:
                timer.cancel()
                timer.function()  # close the retired client now
            self._retiring.clear()
            self._client.close()
