"""Where a prompt stands in a ComfyUI's queue, for `GET /jobs/{id}`'s `queue_position`, read at most once a
second per backend however often clients poll.

Asking ComfyUI's /queue on every poll made a job client that polls every 20 ms send ComfyUI 50 requests a
second, each answered with every queued graph, by the same process that is running the job's prompt: the
job got slower than a link by about a tenth of a second on a CPU-bound ComfyUI (issue 24). A position a
second old is as good to a person, and ComfyUI is left to run. A prompt the listing lacks (submitted since
it was read, or just ended: a moment in a job's life) is looked up afresh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

QUEUE_TTL = 1.0  # s one backend's queue listing is reused


class QueuePeek:
    """`position(prompt_id, backend)`: like `ComfyClient.queue_position`, from a listing at most TTL old."""

    def __init__(self, client_of: Callable[[str], Any], ttl: float = QUEUE_TTL) -> None:
        self._client_of = client_of
        self._ttl = ttl
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, dict[str, list[str]]]] = {}  # backend -> (when, listing)

    def position(self, prompt_id: str, backend: str | None) -> int | None:
        name = backend or ""
        now = time.monotonic()
        with self._lock:
            cached = self._seen.get(name)
        if cached is None or now - cached[0] > self._ttl or not self._lists(cached[1], prompt_id):
            cached = (now, self._client_of(name).control.queue())  # a LinkPixError goes to the caller, as before
            with self._lock:
                self._seen[name] = cached
        queue = cached[1]
        if prompt_id in queue["running"]:
            return 0
        if prompt_id in queue["pending"]:
            return len(queue["running"]) + queue["pending"].index(prompt_id)
        return None

    @staticmethod
    def _lists(queue: dict[str, list[str]], prompt_id: str) -> bool:
        return prompt_id in queue["running"] or prompt_id in queue["pending"]
