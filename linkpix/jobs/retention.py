"""Retention: finished jobs, their kept events and the input images nobody uses any more are deleted
after `jobs_keep_days`, so `data/` does not grow for ever on a server that runs for months.

A job is pruned by the time it finished; an active job never is. An upload is pruned when no kept job
and no character profile (`data/characters.json`) names it and it has not been used for `jobs_keep_days`
(the upload store refreshes a file's time when it is stored again or read, so an image a link still names
stays). The pruner runs when LinkPix starts
and then every hour, on its own thread, and stops with the job manager.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from linkpix.config import Settings
from linkpix.jobs.store import JobStore
from linkpix.render.characters import referenced_uploads
from linkpix.storage.uploads import Uploads

log = logging.getLogger(__name__)

DAY = 86400.0
INTERVAL = 3600.0  # s between two prunings


class Pruner:
    """Prunes one job store and its uploads; `prune()` runs once, `start()` every hour."""

    def __init__(self, store: JobStore, uploads: Uploads, settings: Callable[[], Settings],
                 stop: threading.Event, interval: float = INTERVAL, data_dir: Path | None = None) -> None:
        """`data_dir`: the folder whose `characters.json` names reference pictures to keep too."""
        self._data_dir = data_dir
        self._store = store
        self._uploads = uploads
        self._settings = settings  # jobs_keep_days, read at each round
        self._stop = stop
        self._interval = interval
        self._thread = threading.Thread(target=self._run, name="jobs-retention", daemon=True)

    def start(self) -> Pruner:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.prune()
            except Exception:
                if not self._stop.is_set():  # a closed store while shutting down is expected
                    log.exception("pruning old jobs failed; trying again in an hour")
            if self._stop.wait(self._interval):
                return

    def prune(self, now: float | None = None) -> dict[str, int]:
        """Delete what is older than jobs_keep_days as of `now`; returns how many jobs and uploads went."""
        days = self._settings().jobs_keep_days
        if days <= 0:
            return {"jobs": 0, "uploads": 0}
        cutoff = (time.time() if now is None else now) - days * DAY
        jobs = self._store.prune(cutoff)
        needed = set(self._store.referenced_uploads())
        if self._data_dir is not None:
            needed |= referenced_uploads(self._data_dir)
        uploads = 0
        for name, used in list(self._uploads.entries()):
            if name not in needed and used < cutoff and self._uploads.delete(name):
                uploads += 1
        if jobs or uploads:
            log.info("pruned %d finished jobs and %d unused uploads older than %g days", jobs, uploads, days)
        return {"jobs": jobs, "uploads": uploads}
