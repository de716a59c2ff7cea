"""The contract's `canceling`: a cancel moves a running job `running -> canceling -> canceled`.

In LinkPix a cancel takes the job out of its run at once (the jobs store says `cancelled`), but the
ComfyUI prompt behind it stops only when ComfyUI acts on the interrupt (at the next node or sampler
step). A job reads `canceling` for exactly that time: from the cancel until the prompt has left the
ComfyUI that ran it, which is what the backend's durable stop list (`comfy/stops.py`) records - a stop
stays listed until ComfyUI's queue no longer holds the prompt. A run another caller still waits on is
not stopped (no stop is listed), so that job is `canceled` at once: nothing more comes to it.

Kept in memory per process (a cancel answered by another replica reads `canceled` here): bounded, and
an entry goes as soon as it is seen done or after MAX_SECONDS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

MAX_SECONDS = 120.0  # a stop ComfyUI never confirms (it went away) stops reading `canceling` after this
MAX_ENTRIES = 10_000


class Cancellations:
    """Jobs cancelled while their prompt ran: `(backend, prompt_id)` until the prompt is gone."""

    def __init__(self, client_of: Callable[[str], Any]) -> None:
        self._client_of = client_of  # BackendPool.client: a backend's name -> its ComfyClient
        self._lock = threading.Lock()
        self._stopping: dict[str, tuple[str, str, float]] = {}

    def note(self, job_id: str, backend: str | None, prompt_id: str | None) -> None:
        """A running job was cancelled; its prompt (if it reached ComfyUI) may still be stopping."""
        if not backend or not prompt_id:
            return
        with self._lock:
            if len(self._stopping) >= MAX_ENTRIES:
                self._stopping.pop(next(iter(self._stopping)))
            self._stopping[job_id] = (backend, prompt_id, time.monotonic())

    def stopping(self, job_id: str) -> bool:
        """True while ComfyUI has not yet confirmed that the cancelled job's prompt is gone."""
        with self._lock:
            entry = self._stopping.get(job_id)
        if entry is None:
            return False
        backend, prompt_id, since = entry
        try:
            client = self._client_of(backend)
            listed = time.monotonic() - since < MAX_SECONDS and client.stops.contains(client.base_url, prompt_id)
        except Exception:  # the backend is gone from the pool: nothing is stopping any more
            listed = False
        if not listed:
            with self._lock:
                self._stopping.pop(job_id, None)
        return listed
