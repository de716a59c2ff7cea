"""The hit path: from a request's exact URL and user straight to the stored file.

Resolving a request (parsing, styles, rendering the workflow, hashing the graph) costs far more than
sending a cached file. Once a URL has been answered with a deterministic image, its exact raw URI and
user are remembered with the ready-made response headers, and later requests are served from that entry
by a WSGI layer in front of Flask. The entries are dropped together whenever the configuration, a style,
a placeholder definition or a workflow changes, so a stale mapping is never served.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class MemoEntry:
    path: Path
    etag: str
    headers: tuple[tuple[str, str], ...]  # everything but Content-Length
    size: int
    mtime: float
    user: str
    key: str

    @cached_property
    def response_headers(self) -> list[tuple[str, str]]:
        """The headers of a 200 answer, made once (waitress only reads the list it is given)."""
        return [*self.headers, ("Content-Length", str(self.size))]

    @cached_property
    def short_key(self) -> str:
        return self.key[:12]


class HitMemo:
    """A bounded map (raw URI, user) -> MemoEntry, valid for one fingerprint of the inputs."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], MemoEntry] = OrderedDict()
        self._fingerprint: Any = None
        self._lock = threading.Lock()

    def get(self, uri: str, user: str, fingerprint: Any) -> MemoEntry | None:
        """The entry, if any, for this fingerprint. No lock while the fingerprint holds (a dict read is
        atomic): this runs on every request. Entries leave in the order they came (not LRU): a popular
        link that falls out costs one slow answer, which puts it back."""
        if fingerprint is not self._fingerprint and fingerprint != self._fingerprint:
            with self._lock:
                if fingerprint != self._fingerprint:
                    self._entries.clear()
                    self._fingerprint = fingerprint
            return None
        return self._entries.get((uri, user))

    def put(self, uri: str, user: str, fingerprint: Any, entry: MemoEntry) -> None:
        with self._lock:
            if fingerprint != self._fingerprint:
                self._entries.clear()
                self._fingerprint = fingerprint
            self._entries[(uri, user)] = entry
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget(self, uri: str, user: str) -> None:
        with self._lock:
            self._entries.pop((uri, user), None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
