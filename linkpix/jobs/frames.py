"""The newest preview frame of each running job, for the URL that job events' `preview` events carry.

An event stream is no place for a 60 KB frame every step: the `preview` event carries a small thumbnail and a
URL (`/jobs/<id>/preview?frame=N`), and a client that wants the full frame fetches it. Only the newest frame of
a job is kept, and only for the most recent `capacity` jobs, in this process (with replicas, in Redis as well:
jobs/redis_frames.py).
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class LatestFrames:
    """job id -> (frame number, JPEG bytes), least recently updated job dropped first."""

    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._frames: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, job_id: str, data: bytes) -> int:
        """Keep `data` as the job's newest frame; returns its number (1, 2, ...)."""
        with self._lock:
            number = self._frames.pop(job_id, (0, b""))[0] + 1
            self._frames[job_id] = (number, data)
            while len(self._frames) > self._capacity:
                self._frames.popitem(last=False)
            return number

    def get(self, job_id: str) -> tuple[int, bytes] | None:
        with self._lock:
            return self._frames.get(job_id)
