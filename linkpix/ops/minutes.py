"""The last hour, minute by minute: what the dashboard's Monitor plots (`GET /api/stats/history`).

Prometheus keeps history for those who run it; a person who only opens the dashboard should still see
how the last hour went. So the service keeps a small ring of per-minute points, each the difference of
running totals between two minute boundaries (requests, cache hits and misses, runs and their seconds)
plus the queue length at the boundary. A sampler thread closes each minute; the minute under way is
shown as it stands. Nothing here runs per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MINUTE = 60.0


@dataclass(frozen=True)
class Totals:
    """Running totals (and the queue length now) read from the service at a minute boundary."""

    requests: int = 0
    hits: int = 0
    misses: int = 0
    runs: int = 0
    run_seconds: float = 0.0
    queue: int = 0


def _point(start: float, end: float, base: Totals, now: Totals, partial: bool) -> dict[str, Any]:
    lookups = (now.hits - base.hits) + (now.misses - base.misses)
    runs = now.runs - base.runs
    return {"time": start, "seconds": round(end - start, 1), "partial": partial,
            "requests": now.requests - base.requests,
            "hit_rate": round((now.hits - base.hits) / lookups, 4) if lookups > 0 else None,
            "runs": runs, "generation_seconds": round((now.run_seconds - base.run_seconds) / runs, 3) if runs else None,
            "queue": now.queue}


class History:
    """Per-minute points of the last `minutes` minutes."""

    def __init__(self, read: Callable[[], Totals], minutes: int = 60,
                 clock: Callable[[], float] = time.time) -> None:
        self._read = read
        self._clock = clock
        self.minutes = minutes
        self._points: deque[dict[str, Any]] = deque(maxlen=minutes)
        self._lock = threading.Lock()
        self._start = self._minute(clock())
        self._base = read()

    @staticmethod
    def _minute(ts: float) -> float:
        return ts - ts % MINUTE

    def next_boundary(self) -> float:
        return self._start + MINUTE

    def tick(self, now: float | None = None) -> bool:
        """Close the minute under way if it has ended; True if a point was added."""
        now = self._clock() if now is None else now
        with self._lock:
            if now < self._start + MINUTE:
                return False
            totals = self._read()
            end = self._minute(now)
            self._points.append(_point(self._start, end, self._base, totals, partial=False))
            self._start, self._base = end, totals
            return True

    def points(self, now: float | None = None) -> list[dict[str, Any]]:
        """The closed minutes, oldest first, then the minute under way."""
        now = self._clock() if now is None else now
        with self._lock:
            closed = list(self._points)
            start, base = self._start, self._base
        return [*closed, _point(start, now, base, self._read(), partial=True)]


class Sampler:
    """Closes each minute of a History on its own daemon thread; `close()` stops it at once."""

    def __init__(self, history: History) -> None:
        self._history = history
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stats-sampler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(max(0.2, self._history.next_boundary() - time.time() + 0.05)):
            try:
                self._history.tick()
            except Exception:  # keep sampling whatever one reading did
                log.exception("sampling the statistics failed")

    def close(self) -> None:
        self._stop.set()
