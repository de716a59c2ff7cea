"""Held polls: a `GET /jobs/{id}` of a job running here is answered when the job ends, or after at most
`POLL_HOLD` seconds, instead of at once.

Why: a client polling every 20 ms asks 50 times a second, and each answer costs the client and the server
CPU. On a ComfyUI that computes on the same CPU (a small box, a CPU-only install) those polls slow the run
itself: measured on the real ComfyUI 0.3.64, a 0.27 s run took 23 ms longer under 50 polls/s than alone,
most of a job's cost over a direct websocket client (issue 24). Held, the same client asks about twice a
second, and hears of the end at once rather than up to one poll interval late. Progress in an answer is at
most `POLL_HOLD` old; the job's event stream (`/jobs/{id}/events`) stays the way to watch every step.

Each held poll takes a server thread, so few are held at once (`limit`, and `per_user` so one user's
pollers leave room for everyone's); a poll beyond them is answered at once, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

POLL_HOLD = 0.5  # s at most a poll of a running job waits for its end


class PollHolds:
    """How many polls are held now, in all and per user."""

    def __init__(self, limit: int, per_user: int) -> None:
        self._limit = max(0, limit)
        self._per_user = max(0, per_user)
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}
        self._total = 0

    @contextmanager
    def hold(self, user: str) -> Iterator[bool]:
        """Yields whether this poll may wait (a place was free); the place is given back on leaving."""
        with self._lock:
            free = self._total < self._limit and self._held.get(user, 0) < self._per_user
            if free:
                self._total += 1
                self._held[user] = self._held.get(user, 0) + 1
        try:
            yield free
        finally:
            if free:
                with self._lock:
                    self._total -= 1
                    self._held[user] -= 1
                    if not self._held[user]:
                        del self._held[user]
