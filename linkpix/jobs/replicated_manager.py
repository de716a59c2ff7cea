"""The job manager of several replicas: the same engine, with jobs, queue and events in Redis.

Any replica accepts a job (the caps counted over all of them), any replica runs it (the shared queue
hands it to one with a free worker), a dead replica's jobs are taken over after their lease (re-attached
to their ComfyUI prompt when they had one), and `GET /jobs/<id>/events` on any replica streams a job
running on another. A cancel is announced to the replica running the job, which leaves its run. A job is
acknowledged in the queue only when it has ended and its webhook is settled, so a webhook goes out once
even when the replica that ended the job dies before delivering it (the one that claims it delivers it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from linkpix.config import Settings
from linkpix.errors import LinkPixError, NotFound
from linkpix.jobs.manager import JobManager
from linkpix.jobs.redis_events import RedisJobEvents
from linkpix.jobs.redis_frames import RedisFrames
from linkpix.jobs.redis_queue import RedisJobQueue
from linkpix.jobs.redis_store import RedisJobStore
from linkpix.jobs.store import FAILED, TERMINAL, Job
from linkpix.jobs.webhooks import Targets
from linkpix.model import RenderedJob
from linkpix.pipeline.generator import Generator, Outcome
from linkpix.replicas.bus import Bus
from linkpix.replicas.connection import RedisLink
from linkpix.storage.cache import ImageCache
from linkpix.storage.uploads import Uploads


class SharedJobManager(JobManager):
    queue: RedisJobQueue

    @classmethod
    def open_shared(cls, shared: RedisLink, bus: Bus, generator: Generator, cache: ImageCache,
                    settings: Callable[[], Settings], queue_position: Callable[[str, str | None], int | None],
                    uploads: Uploads, webhook_targets: Callable[[], Targets] | None = None,
                    finish_edit: Callable[[RenderedJob, Outcome, str], Outcome] | None = None,
                    data_dir: Path | None = None) -> SharedJobManager:
        """Uploads are in the bucket with `storage: s3`, else in the data folder, which the replicas then
        share; `data_dir` (shared too) holds the character profiles whose reference pictures are kept. The
        queue starts reading at once (this replica's own unfinished jobs from before a restart first)."""
        store = RedisJobStore(shared)
        manager = cls(store, uploads, generator, cache, settings, queue_position,  # type: ignore[arg-type]
                      webhook_targets, events=RedisJobEvents(store, bus), replica=shared.name,
                      finish_edit=finish_edit)
        manager.progress.frames = RedisFrames(shared)  # a preview event's frame URL works on every replica
        manager.queue = RedisJobQueue(shared, bus, settings().job_workers, manager._run_entry,
                                      manager.leave_run, manager.let_go).start()
        manager.start_pruner(data_dir)
        return manager

    def close(self) -> None:
        if not self.closed:
            self.queue.close()
        super().close()

    def recover(self) -> None:
        """Nothing to do at start-up: the queue hands back this replica's unfinished jobs."""

    def _dispatch(self, job_id: str) -> None:
        try:
            self.queue.put(job_id)
        except LinkPixError:
            self.store.finish(job_id, FAILED, error={"error": "redis_unavailable", "details": None,
                                                     "message": "Redis failed while the job was being queued"})
            raise

    def cancel(self, job_id: str) -> Job:
        job = super().cancel(job_id)
        self.queue.announce_cancel(job_id)  # the replica running it leaves its run too
        return job

    def _run_entry(self, job_id: str, claimed: bool) -> None:
        """The queue handed this replica a job (`claimed`: from a replica that stopped renewing it, or
        from this one before a restart): run it, re-attach it, or settle what is left of it."""
        try:
            job = self.store.get(job_id)
        except NotFound:
            self.queue.done(job_id)  # pruned meanwhile
            return
        except LinkPixError:
            return  # Redis is down: the entry stays pending and comes back
        if job.state in TERMINAL:
            if job.webhook and job.webhook.get("state") == "pending":
                self.delivery.send(job)  # the replica that ended it died before delivering it
            else:
                self.queue.done(job_id)
            return
        self._run(job_id, claimed and bool(job.prompt_id))

    def _after_run(self, job_id: str) -> None:
        try:
            job = self.store.get(job_id)
        except LinkPixError:
            return  # the entry stays pending; whoever claims it settles it
        if job.state in TERMINAL and not (job.webhook and job.webhook.get("state") == "pending"):
            self.queue.done(job_id)

    def _webhook_settled(self, job_id: str) -> None:
        self.queue.done(job_id)
