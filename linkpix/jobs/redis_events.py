"""Job events across replicas: every event goes through Redis, so `GET /jobs/<id>/events` on any replica
streams a job that runs on another.

Milestones are kept in the Redis job store (numbered, for readers that resume); every event, milestones,
progress and previews alike, is published on the replica bus, and each replica's listener hands it to the
readers it serves (its own events included, so a reader sees one order whichever replica it asked). The
newest progress of each job is remembered from the notices, so `GET /jobs/<id>` on any replica shows it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from linkpix.errors import SharedUnavailable
from linkpix.jobs.events import MILESTONES, JobEvents
from linkpix.jobs.redis_store import RedisJobStore
from linkpix.jobs.store import TERMINAL
from linkpix.replicas.bus import Bus
from linkpix.replicas.connection import REDIS_ERRORS

log = logging.getLogger(__name__)

TOPIC = "events"
KEEP_PROGRESS = 1000  # jobs whose newest progress is remembered (running jobs: far fewer)


class RedisJobEvents(JobEvents):
    def __init__(self, store: RedisJobStore, bus: Bus) -> None:
        super().__init__(None)  # milestones are kept here, in the Redis store, not by the base class
        self._redis_store = store
        self._bus = bus
        self._progress: dict[str, dict[str, Any]] = {}
        self._progress_lock = threading.Lock()
        bus.on(TOPIC, self._notice)

    def latest(self, job_id: str) -> int:
        return self._redis_store.last_event(job_id)

    def after(self, job_id: str, seq: int) -> list[tuple[int, str, dict[str, Any]]]:
        return self._redis_store.events_after(job_id, seq)

    def last_progress(self, job_id: str) -> dict[str, Any] | None:
        with self._progress_lock:
            return self._progress.get(job_id)

    def publish(self, job_id: str, kind: str, data: dict[str, Any]) -> None:
        seq = None
        if kind in MILESTONES:
            try:
                seq = self._redis_store.add_event(job_id, kind, data)
            except SharedUnavailable as exc:
                log.warning("event %s of job %s not kept: %s", kind, job_id, exc.message)
        try:
            self._bus.publish(TOPIC, {"job": job_id, "kind": kind, "data": data, "seq": seq})
        except REDIS_ERRORS:  # Redis is down: at least this replica's readers hear it
            self._notice({"job": job_id, "kind": kind, "data": data, "seq": seq})

    def _notice(self, body: dict[str, Any]) -> None:
        job_id, kind, data, seq = str(body.get("job")), str(body.get("kind")), body.get("data") or {}, body.get("seq")
        with self._progress_lock:
            if kind == "progress":
                self._progress[job_id] = data
                while len(self._progress) > KEEP_PROGRESS:
                    self._progress.pop(next(iter(self._progress)))
            elif kind in TERMINAL:
                self._progress.pop(job_id, None)
        self.fan_out(job_id, kind, data, seq if isinstance(seq, int) else None)
