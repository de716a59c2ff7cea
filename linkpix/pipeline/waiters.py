"""Server threads waiting at a link for a new picture, shared out so that cached pictures keep being served.

A plain link (`/prompt`, `/edit`, and the A1111 and OpenAI calls that answer with the picture)
holds one of waitress's `threads` until its run ends: seconds, or minutes behind a queue. `max_pending`
bounds the runs, but joining a run already going is free, so 100 requests for a few new links held all 48
threads and cached links got nothing (`bench/live.py`: 0 hits answered in 3 s). On a shared LinkPix
(`network_access`) that is one client locking everyone out, so there:

- at most `threads - HIT_THREADS` requests wait at once, whoever sends them: the rest of the threads
  always serve what needs no run (cached pictures, polls, the dashboard's calls);
- at most `threads / 4` of them per user (12 of 48), so one user's page of new links, or a script, cannot
  hold the others' share;
- a request beyond either gets 429 `queue_full` with `Retry-After` at once, before it joins anything.

On a LinkPix of one user (network_access off) nothing is refused: 50 people's browsers opening the same
new link at once all get the picture (`bench/single_flight.py`). The waiting requests are counted there
too, and once `threads - HIT_THREADS` of them hold threads, a further plain link is parked off the threads
instead (`web/parked.py`: its answer is written when its run ends), so cached pictures keep being served.

Only waitress's worker threads are counted (by their name, `waitress-N`: the resource itself): live links
(`?live=1`), jobs and the ComfyUI front's runs wait on threads of their own and hold no server thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from linkpix.config import Settings
from linkpix.errors import QueueFull
from linkpix.ops.slots import FairSlots

SERVER_THREAD = "waitress-"  # how waitress names its worker threads
HIT_THREADS = 8  # threads no waiting request may take (the margin `threads` must keep over `max_pending`)
RETRY_AFTER = 5


def per_user_share(settings: Settings) -> int:
    """Waiting requests one user may have on a shared LinkPix."""
    return max(1, settings.threads // 4)


class Waiters:
    """Counts the request threads waiting on runs, in all and per user."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._slots = FairSlots(max(1, settings().threads - HIT_THREADS), lambda: per_user_share(settings()))
        self._unshared = 0  # waiting on a LinkPix of one user: counted, never refused
        self._lock = threading.Lock()

    @contextmanager
    def waiting(self, user: str) -> Iterator[None]:
        """Hold a place while a server thread waits on a run; 429 when none is free (shared LinkPix only)."""
        if not threading.current_thread().name.startswith(SERVER_THREAD):
            yield
            return
        if not self._settings().network_access:
            with self._lock:
                self._unshared += 1
            try:
                yield
            finally:
                with self._lock:
                    self._unshared -= 1
            return
        if not self._slots.try_take(user):
            raise QueueFull(self._why(user), retry_after=RETRY_AFTER)
        try:
            yield
        finally:
            self._slots.release(user)

    def held_in_all(self) -> int:
        """Server threads waiting on runs now."""
        with self._lock:
            return self._slots.held_total() + self._unshared

    def short_of_threads(self) -> bool:
        """Every thread a waiting request may hold is held: the rest are kept for what needs no run."""
        return self.held_in_all() >= self._slots.total

    def _why(self, user: str) -> str:
        share = per_user_share(self._settings())
        if self._slots.held(user) >= share:
            return (f"{share} of your requests already wait for new pictures (at most threads / 4 per user on "
                    "a shared LinkPix); try again when one is done, or use ?live=1 or POST /generate, which "
                    "hold no server thread")
        return (f"{self._slots.total} requests already wait for new pictures (threads - {HIT_THREADS}, the "
                "rest serve cached pictures); try again shortly, or use ?live=1 or POST /generate")
