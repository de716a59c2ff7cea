"""One replica's shared parts, built together by the app factory when `redis_url` is set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from linkpix.replicas.bus import Bus
from linkpix.replicas.connection import RedisLink, default_name
from linkpix.replicas.files import FileSync
from linkpix.replicas.flights import SharedFlights


@dataclass
class Replica:
    shared: RedisLink
    bus: Bus
    flights: SharedFlights
    files: FileSync | None = None

    @property
    def name(self) -> str:
        return self.shared.name

    def start(self, fingerprint: Callable[[], Any], invalidate: Callable[[], None]) -> None:
        """After every component registered its notices (the bus subscribes once, to all of them)."""
        self.files = FileSync(self.shared, self.bus, fingerprint, invalidate)
        self.bus.start()
        self.files.start()

    def health(self) -> dict[str, Any]:
        return self.shared.health()

    def close(self) -> None:
        self.shared.close()


def open_replica(url: str, name: str, lease: float, port: int) -> Replica:
    shared = RedisLink(url, name or default_name(port), lease).start()
    bus = Bus(shared)
    return Replica(shared, bus, SharedFlights(shared, bus))
