"""Long-lived slots (event streams, websockets) shared fairly between users.

Each open stream holds a server thread, so their number is bounded (`events_max_streams`). A bound
alone lets one user take every slot and lock the others out (user A's 8 sockets gave user B 429), so on
a shared LinkPix (network_access on) each user may hold at most `events_max_streams_per_user` of them.
With network_access off every caller is this machine's one user, and only the total bound applies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol


class StreamSettings(Protocol):
    """The two settings the share depends on (linkpix.config.Settings has them)."""

    network_access: bool
    events_max_streams_per_user: int


def per_user_cap(settings: StreamSettings) -> int:
    """Slots one user may hold (0: no cap of its own)."""
    return settings.events_max_streams_per_user if settings.network_access else 0


class FairSlots:
    """At most `total` slots, and at most `per_user()` of them per user (0: no per-user cap)."""

    def __init__(self, total: int, per_user: Callable[[], int]) -> None:
        self.total = max(1, total)
        self._per_user = per_user
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}

    def try_take(self, user: str) -> bool:
        """Take a slot for `user` unless the total or the user's share is used up."""
        cap = self._per_user()
        with self._lock:
            if sum(self._held.values()) >= self.total:
                return False
            if cap and self._held.get(user, 0) >= cap:
                return False
            self._held[user] = self._held.get(user, 0) + 1
            return True

    def release(self, user: str) -> None:
        with self._lock:
            left = self._held.get(user, 0) - 1
            if left > 0:
                self._held[user] = left
            else:
                self._held.pop(user, None)

    def held(self, user: str) -> int:
        with self._lock:
            return self._held.get(user, 0)

    def held_total(self) -> int:
        with self._lock:
            return sum(self._held.values())
