"""The durable list of prompts LinkPix wants gone from a ComfyUI, kept until that ComfyUI confirms.

A stop (dequeue or interrupt) can fail: ComfyUI may be frozen, restarting or unreachable when a run times
out, a job is cancelled, or a submit's answer never came. A stop that is tried once and forgotten leaves
ComfyUI running prompts nobody waits for once it recovers. So every stop is written here first, and each
backend's keeper (`keeper.py`) retries it until ComfyUI's queue no longer holds the prompt: after a
reconnect, after a LinkPix restart, and from any process sharing the data folder.

One SQLite table beside the jobs (`data/comfy_stops.sqlite3`), in WAL mode: every change is one statement,
atomic, and safe between the processes and threads that share the file. Without a folder (a bare
`ComfyClient`) the list lives in memory.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("linkpix.comfy")
STALE_SECONDS = 3600.0  # prompts to stop on a backend no longer configured are forgotten after this

FILE_NAME = "comfy_stops.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stops (
    backend TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    added REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    unconfirmed INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    absent_since REAL,
    PRIMARY KEY (backend, prompt_id)
);
"""


@dataclass(frozen=True)
class StopEntry:
    """One prompt to stop. `unconfirmed`: its submit got no answer, so ComfyUI may queue it later."""

    backend: str
    prompt_id: str
    added: float
    reason: str
    unconfirmed: bool
    attempts: int
    last_error: str | None
    absent_since: float | None


class StopList:
    """Prompts to stop, per backend URL; see the module docstring."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path) if path is not None else ":memory:", timeout=10.0,
                                   isolation_level=None, check_same_thread=False)
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._closed = False

    def add(self, backend: str, prompt_id: str, reason: str, *, unconfirmed: bool = False) -> None:
        """Remember to stop `prompt_id` on `backend` (a second add keeps the first, unless it is surer)."""
        with self._lock:
            if self._closed:
                return
            self._db.execute(
                "INSERT INTO stops (backend, prompt_id, added, reason, unconfirmed) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (backend, prompt_id) DO UPDATE SET unconfirmed = MAX(unconfirmed, excluded.unconfirmed)",
                (backend, prompt_id, time.time(), reason, int(unconfirmed)))

    def entries(self, backend: str) -> list[StopEntry]:
        with self._lock:
            if self._closed:
                return []
            rows = self._db.execute(
                "SELECT backend, prompt_id, added, reason, unconfirmed, attempts, last_error, absent_since "
                "FROM stops WHERE backend = ? ORDER BY added", (backend,)).fetchall()
        return [StopEntry(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], r[7]) for r in rows]

    def contains(self, backend: str, prompt_id: str) -> bool:
        with self._lock:
            if self._closed:
                return False
            return self._db.execute("SELECT 1 FROM stops WHERE backend = ? AND prompt_id = ?",
                                    (backend, prompt_id)).fetchone() is not None

    def done(self, backend: str, prompt_id: str) -> None:
        """ComfyUI confirmed the prompt is gone: forget it."""
        with self._lock:
            if not self._closed:
                self._db.execute("DELETE FROM stops WHERE backend = ? AND prompt_id = ?", (backend, prompt_id))

    def attempted(self, backend: str, prompt_id: str, error: str | None, absent_since: float | None) -> None:
        """Record one more try (and since when ComfyUI has not listed the prompt, if it has not)."""
        with self._lock:
            if not self._closed:
                self._db.execute(
                    "UPDATE stops SET attempts = attempts + 1, last_error = ?, absent_since = ? "
                    "WHERE backend = ? AND prompt_id = ?", (error, absent_since, backend, prompt_id))

    def count(self, backend: str | None = None) -> int:
        with self._lock:
            if self._closed:
                return 0
            if backend is None:
                return int(self._db.execute("SELECT COUNT(*) FROM stops").fetchone()[0])
            return int(self._db.execute("SELECT COUNT(*) FROM stops WHERE backend = ?", (backend,)).fetchone()[0])

    def backends(self) -> list[str]:
        """Every backend URL with prompts still to stop (some may no longer be configured)."""
        with self._lock:
            if self._closed:
                return []
            return [r[0] for r in self._db.execute("SELECT DISTINCT backend FROM stops ORDER BY backend")]

    def forget_stale(self, configured: set[str], shown: Callable[[str], str]) -> None:
        """Forget what waits on backends no longer configured for over STALE_SECONDS: nothing will stop
        it, and ComfyUI has run or dropped it long since (before, every start warned of it for ever)."""
        for url in self.backends():
            if url not in configured:
                forgotten = self.forget(url, time.time() - STALE_SECONDS)
                if forgotten:
                    log.info("forgot %d prompt(s) to stop on %s, which is no longer configured: they are over an "
                             "hour old, so ComfyUI has run or dropped them", forgotten, shown(url))

    def forget(self, backend: str, added_before: float) -> int:
        """Drop the entries of `backend` added before `added_before` (a backend no longer configured:
        nothing will ever stop them, and ComfyUI has run or dropped them long since); returns how many."""
        with self._lock:
            if self._closed:
                return 0
            return self._db.execute("DELETE FROM stops WHERE backend = ? AND added < ?",
                                    (backend, added_before)).rowcount

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()
