"""Webhooks of ended jobs: the payload (with the images inline while the cache still holds them),
signed delivery with retries (`webhooks.py`), and the record of every attempt in the job.

The webhook's state is written in the same store write as the job's end (see `JobManager`), so a process
dying in between cannot lose it: whoever finds it `pending` delivers it.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from typing import Any

from linkpix.config import Settings
from linkpix.errors import LinkPixError
from linkpix.jobs.store import Job, JobStore
from linkpix.jobs.webhooks import Schedule, Targets, WebhookSender, job_payload
from linkpix.storage.cache import ImageCache


class Delivery:
    """Sends a job's webhook and records how it went; `lock` and `closed` are the job manager's, so nothing
    is written to the store once it has closed; `settled(job_id)` is told when delivery is over."""

    def __init__(self, store: JobStore, cache: ImageCache, settings: Callable[[], Settings],
                 targets: Callable[[], Targets], lock: threading.Lock, closed: Callable[[], bool],
                 settled: Callable[[str], None]) -> None:
        self._store = store
        self._cache = cache
        self._settings = settings
        self._targets = targets
        self._lock = lock
        self._closed = closed
        self._settled = settled
        self.sender = WebhookSender(self._schedule)

    def _schedule(self) -> Schedule:
        s = self._settings()
        return Schedule(s.webhook_attempts, s.webhook_backoff, s.webhook_timeout, self._targets(),
                        s.webhook_legacy_signature)

    def skip(self, job_id: str) -> None:
        """The job was cancelled: its webhook will not be sent."""
        job = self._store.get(job_id)
        if job.webhook:
            self._store.set_webhook(job_id, dict(job.webhook, state="skipped"))

    def payload(self, job: Job) -> dict[str, Any]:
        return job_payload(job, self._image_base64)

    def _image_base64(self, user: str, url: str) -> str | None:
        try:
            image = self._cache.lookup_file(user, url.rsplit("/", 1)[-1])
            return base64.b64encode(image.read()).decode()
        except (LinkPixError, OSError):
            return None  # evicted meanwhile; the URL is still reported

    def send(self, job: Job) -> None:
        assert job.webhook is not None
        job_id = job.id

        def on_attempt(record: dict[str, Any]) -> None:
            with self._lock:
                if self._closed():
                    return
                current = self._store.get(job_id).webhook or {}
                attempts = [*current.get("attempts", []), record]
                self._store.set_webhook(job_id, dict(current, attempts=attempts))

        def on_done(delivered: bool) -> None:
            with self._lock:
                if self._closed():
                    return
                current = self._store.get(job_id).webhook or {}
                self._store.set_webhook(job_id, dict(current, state="delivered" if delivered else "failed"))
            self._settled(job_id)

        self.sender.send(job.webhook["url"], self.payload(job), job.webhook_secret, on_attempt, on_done)

    def close(self) -> None:
        self.sender.close()
