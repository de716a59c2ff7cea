"""Shared files across machines: a change one replica sees is announced, and every replica re-reads.

Styles, workflows, settings and user preferences live in folders the replicas share (a network file
system). A replica learns of a change made on its own machine at once (inotify, in `storage/watch.py`),
but inotify does not see writes made on another machine. So each replica watches its own view every
second and, when it changes, says so on the bus; the others drop what they know (`JsonStore.invalidate`)
and stat the files again on the next request, which reads the new versions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from linkpix.replicas.bus import Bus
from linkpix.replicas.connection import REDIS_ERRORS, RedisLink

log = logging.getLogger("linkpix.replicas")

TOPIC = "files"
INTERVAL = 1.0


class FileSync:
    def __init__(self, shared: RedisLink, bus: Bus, fingerprint: Callable[[], Any],
                 invalidate: Callable[[], None]) -> None:
        self._shared = shared
        self._bus = bus
        self._fingerprint = fingerprint
        self._invalidate = invalidate
        self.heard = 0  # announcements from other replicas acted on
        self._thread = threading.Thread(target=self._watch, name="shared-files", daemon=True)
        bus.on(TOPIC, self._notice)

    def start(self) -> FileSync:
        self._thread.start()
        return self

    def _notice(self, body: dict[str, Any]) -> None:
        if body.get("replica") != self._shared.name:
            self.heard += 1
            self._invalidate()

    def _watch(self) -> None:
        last = None
        while not self._shared.closed:
            try:
                now = self._fingerprint()
            except Exception:  # a file being replaced right now: look again next time
                now = last
            if last is not None and now != last:
                try:
                    self._bus.publish(TOPIC, {"replica": self._shared.name})
                except REDIS_ERRORS as exc:
                    log.debug("could not announce a changed shared file: %s", exc)
            last = now
            threading.Event().wait(INTERVAL)
