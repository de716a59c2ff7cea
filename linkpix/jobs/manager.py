"""The async jobs API's engine: accept jobs, run them on a bounded pool, report, recover after a restart.

Programs that cannot hold a connection open while ComfyUI works submit a job and are told when it is
done (webhook, polling, or a live event stream). A job is one or more images (`image_count`, one seed
each), each run through the same `Generator` as `/prompt`: identical requests still share one ComfyUI run
and land in the same cache. Everything needed to finish a job is in SQLite (`store.py`), so on start-up
jobs left queued are queued again and jobs that had reached ComfyUI are re-attached by prompt id (or fail
with a message saying ComfyUI lost them) - none stays "running" forever.

A job counts as `queued` until ComfyUI starts executing its prompt, so "queued" and ComfyUI's queue
position mean the same thing to a client. Cancelling leaves the shared run through a `Ticket`: ComfyUI is
told to dequeue or interrupt the prompt only when no other request waits on it.

This module runs jobs; `progress.py` turns a run's ComfyUI events into the job's progress and events,
`delivery.py` sends its webhook. With Redis (several replicas) `replicated_manager.SharedJobManager` keeps
all of this and changes where jobs wait and who runs them (the hooks `_dispatch`, `_after_run`,
`_webhook_settled`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from linkpix.comfy import PromptLost
from linkpix.comfy.pool import NoBackend
from linkpix.config import Settings
from linkpix.errors import ExecutionFailed, LinkPixError, QueueFull
from linkpix.jobs.delivery import Delivery
from linkpix.jobs.events import JobEvents, sse_stream
from linkpix.jobs.holds import POLL_HOLD, PollHolds
from linkpix.jobs.progress import Progress
from linkpix.jobs.retention import Pruner
from linkpix.jobs.store import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    TERMINAL,
    Job,
    JobStore,
    rendered_from_dict,
    rendered_to_dict,
)
from linkpix.jobs.webhooks import Targets
from linkpix.model import RenderedJob
from linkpix.ops.slots import FairSlots, per_user_cap
from linkpix.pipeline.flight import Cancelled, Ticket
from linkpix.pipeline.generator import Generator, Outcome
from linkpix.storage.cache import ImageCache
from linkpix.storage.uploads import Uploads

log = logging.getLogger(__name__)

NO_BACKEND_RETRY = 1.0  # s between tries while no ComfyUI backend can take a job
_UNREAD = object()  # `_end` without the job's webhook at hand: it reads it
FINISH_HOLD = 0.25  # s at most a poll waits for a job whose last prompt ComfyUI reported over (`settled`)
FinishEdit = Callable[[RenderedJob, Outcome, str], Outcome]  # an edit job's result at full resolution


class Conflict(LinkPixError):
    """The job is in a state that does not allow this (e.g. cancelling a finished job)."""

    status = 409
    code = "conflict"


class JobManager:
    """Owns the job pool and runs jobs; their live progress is `progress`'s, their webhooks `delivery`'s.

    `uploads` is the upload service (the same one the API's /uploads and the editor use); `finish_edit`
    turns an edit job's model output into its result (`edit.editor.Editor.finish_job`).
    """

    def __init__(self, store: JobStore, uploads: Uploads, generator: Generator, cache: ImageCache,
                 settings: Callable[[], Settings], queue_position: Callable[[str, str | None], int | None],
                 webhook_targets: Callable[[], Targets] | None = None, *, events: JobEvents | None = None,
                 replica: str | None = None, finish_edit: FinishEdit | None = None) -> None:
        self.store = store
        self.replica = replica  # shown in a job's `replica` field
        self.uploads = uploads
        self.generator = generator
        self.cache = cache
        self._settings = settings
        self._queue_position = queue_position
        self.events = events or JobEvents(store)
        self._finish_edit = finish_edit
        s = settings()
        self._pool = ThreadPoolExecutor(max_workers=s.job_workers, thread_name_prefix="job")
        self._lock = threading.Lock()
        self._tickets: dict[str, Ticket] = {}
        self.holds = PollHolds(max(1, s.threads // 6), max(1, s.threads // 24))  # polls held at once (holds.py)
        self._keys: dict[str, str] = {}  # job -> its current image's run key, for its place in the fair queue
        self._cancelling: set[str] = set()
        self._lost: set[str] = set()  # taken over by another replica: let go, never end them here
        self._stop = threading.Event()
        self.progress = Progress(store, self.events, self._lock, lambda: self.closed,
                                 lambda job: self.describe(job, with_queue=False))
        self.delivery = Delivery(store, cache, settings,
                                 webhook_targets or (lambda: Targets(tuple(settings().webhook_allow))),
                                 self._lock, lambda: self.closed, lambda job_id: self._webhook_settled(job_id))
        self.webhooks = self.delivery.sender
        self.pruner: Pruner | None = None  # started by open(): jobs_keep_days
        self._streams = FairSlots(s.stream_slots, lambda: per_user_cap(self._settings()))  # ops/slots.py

    @classmethod
    def open(cls, data_dir: Path, generator: Generator, cache: ImageCache, settings: Callable[[], Settings],
             queue_position: Callable[[str, str | None], int | None], uploads: Uploads,
             webhook_targets: Callable[[], Targets] | None = None, replica: str | None = None,
             finish_edit: FinishEdit | None = None) -> JobManager:
        """The manager of a data folder, with its unfinished jobs already re-queued or re-attached."""
        manager = cls(JobStore(Path(data_dir) / "jobs.sqlite3"), uploads, generator, cache, settings,
                      queue_position, webhook_targets, replica=replica, finish_edit=finish_edit)
        manager.recover()
        manager.start_pruner(Path(data_dir))
        return manager

    def start_pruner(self, data_dir: Path | None = None) -> None:
        """Prune old jobs and unused uploads every hour (jobs_keep_days) until the manager closes; the
        pictures character profiles in `data_dir` name as references are kept."""
        self.pruner = Pruner(self.store, self.uploads, self._settings, self._stop, data_dir=data_dir).start()

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Stop as a crash would, but tidily: running jobs stay `running` in the database (the next
        start re-attaches them); nothing is cancelled in ComfyUI. Closing twice is harmless."""
        if self._stop.is_set():
            return
        self._stop.set()
        with self._lock:
            tickets = list(self._tickets.values())
        for ticket in tickets:
            ticket.detach()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.delivery.close()
        self.store.close()

    # -- accepting ---------------------------------------------------------------------------------
    def submit(self, user: str, rendered: list[RenderedJob], webhook: dict[str, Any] | None,
               secret: str | None, base_url: str, *, here: bool = False) -> Job:
        """Persist a new job and queue it (`here`: run it in this thread: a cache hit need not wait behind
        runs); QueueFull (429) when the user's or the total queue is full."""
        s = self._settings()
        for upload in (upload for spec in rendered for upload in spec.uploads):
            self.uploads.keep(upload)
        job = Job(id=uuid.uuid4().hex, user=user, state=QUEUED, created=time.time(),
                  image_count=len(rendered), spec=[rendered_to_dict(r) for r in rendered],
                  webhook=dict(webhook, state="waiting", attempts=[]) if webhook else None,
                  webhook_secret=secret or None, base_url=base_url)
        with self._lock:  # a Redis store counts the caps over every replica, in the inserting transaction
            full = self.store.insert_within(job, s.jobs_max_queued_per_user, s.jobs_max_queued)
        if full == "user":
            raise QueueFull(f"user {user!r} already has {s.jobs_max_queued_per_user} unfinished jobs; "
                            "wait for one to finish", retry_after=10)
        if full == "total":
            raise QueueFull(f"{s.jobs_max_queued} jobs are already waiting; try again shortly", retry_after=10)
        self.events.publish(job.id, "queued", self.describe(job, with_queue=False))
        if here:
            self._run(job.id, False)
        else:
            self._dispatch(job.id)
        return job

    def _dispatch(self, job_id: str) -> None:
        """Hand an accepted job to this process's pool. When nothing else runs, its submitter waits until ComfyUI has
        the prompt (jobs/progress.py SUBMIT_HOLD): the job's thread is not behind the answer on the API's one CPU."""
        settle = self.generator.pending == 0
        if settle:
            self.progress.expect_submit(job_id)
        self._pool.submit(self._run, job_id, False)
        if settle:
            self.progress.await_submit(job_id)

    def recover(self) -> None:
        """Start-up: re-attach jobs that reached ComfyUI, re-queue the others, resume webhooks."""
        for job in self.store.active():
            log.info("resuming job %s (%s, prompt %s)", job.id, job.state, job.prompt_id)
            self._pool.submit(self._run, job.id, bool(job.prompt_id))
        for job in self.store.undelivered():
            self.delivery.send(job)

    # -- reading -----------------------------------------------------------------------------------
    def describe(self, job: Job, *, with_queue: bool = True) -> dict[str, Any]:
        """The job as GET /jobs/<id> shows it: stored facts plus live progress and queue position."""
        body = job.public()
        live = self.progress.live(job.id)
        if not live and job.state == RUNNING:  # perhaps running on another replica: its newest notice
            live = self.events.last_progress(job.id) or {}
        body["progress"] = live or None
        body["queue_position"] = None
        body["fair_queue_position"] = self._fair_place(job) if with_queue else None
        if with_queue and job.state in (QUEUED, RUNNING) and job.prompt_id and self.progress.executing(job.id):
            body["queue_position"] = 0  # ComfyUI said it runs it: no need to ask (comfy/queuepeek.py)
        elif with_queue and job.state in (QUEUED, RUNNING) and job.prompt_id:
            try:
                body["queue_position"] = self._queue_position(job.prompt_id, job.backend)
            except LinkPixError:
                pass  # ComfyUI unreachable: the position is unknown, the job is still there
        return body

    def _fair_place(self, job: Job) -> int | None:
        """While the job waits in LinkPix for a backend (no prompt in ComfyUI yet): its place in the fair
        queue's order (1 = next), so a client sees it move. Known on the replica running the job only."""
        if job.state != QUEUED or job.prompt_id:
            return None
        with self._lock:
            key = self._keys.get(job.id)
        return self.generator.queue.place(key) if key is not None else None

    def settled(self, job: Job) -> Job:
        """`job` as a poll should see it: while ComfyUI runs it here, held until its end for at most
        POLL_HOLD s when a hold place is free (jobs/holds.py), else, once ComfyUI reported its last prompt
        over, until it is stored as ended (FINISH_HOLD s at most): not a `running` stale milliseconds later."""
        if job.state in TERMINAL or not job.prompt_id:  # waiting in LinkPix: at once, its fair place fresh
            return job
        with self.holds.hold(job.user) as held:
            ended = self.progress.wait_end(job.id, POLL_HOLD if held else FINISH_HOLD, running=held)
        return self.store.get(job.id) if ended or held else job

    # -- cancelling --------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job.state in TERMINAL:
            raise Conflict(f"job {job_id} has already {job.state}; only queued or running jobs can be "
                           "cancelled", {"status": job.state})
        with self._lock:
            self._cancelling.add(job_id)
            ticket = self._tickets.get(job_id)
        if self.store.finish(job_id, CANCELLED, error={"error": "cancelled", "details": None,
                                                       "message": "cancelled by the client"}):
            self.delivery.skip(job_id)
            self.events.publish(job_id, CANCELLED, self.describe(self.store.get(job_id), with_queue=False))
        if ticket is not None:
            ticket.cancel()  # leaves the run; ComfyUI stops it if no other request shares it
        return self.store.get(job_id)

    def leave_run(self, job_id: str) -> None:
        """Another replica cancelled this job: if it runs here, leave its run."""
        with self._lock:
            ticket = self._tickets.get(job_id)
            if ticket is not None:
                self._cancelling.add(job_id)
        if ticket is not None:
            ticket.cancel()

    def let_go(self, job_id: str) -> None:
        """Another replica took this job over (its lease lapsed here): stop waiting on it, stop nothing."""
        with self._lock:
            self._lost.add(job_id)
            ticket = self._tickets.get(job_id)
        if ticket is not None:
            ticket.detach()

    # -- running -----------------------------------------------------------------------------------
    def _run(self, job_id: str, reattach: bool) -> None:
        try:
            if self.replica is not None:
                self.store.update(job_id, replica=self.replica)
            self._run_job(job_id, reattach)
        except Exception:
            if not self.closed and not self._is_lost(job_id):
                log.exception("job %s failed unexpectedly", job_id)
                self._end(job_id, FAILED, ExecutionFailed("internal error while running the job; see the log"))
        finally:
            with self._lock:
                self._tickets.pop(job_id, None)
                self._keys.pop(job_id, None)
                self._cancelling.discard(job_id)
                lost = job_id in self._lost
                self._lost.discard(job_id)
            self.progress.forget(job_id)
            if not self.closed and not lost:
                self._after_run(job_id)

    def _after_run(self, job_id: str) -> None:
        """A job's run is over here (ended, or cancelled): nothing to do for this process's pool."""

    def _webhook_settled(self, job_id: str) -> None:
        """A job's webhook was delivered or given up."""

    def _is_lost(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._lost

    def _run_job(self, job_id: str, reattach: bool) -> None:
        if self.closed:
            return
        job = self.store.get(job_id)
        images = list(job.images)
        for index in range(len(images), job.image_count):
            if job.state in TERMINAL or self.closed:
                return
            spec = rendered_from_dict(job.spec[index], self.uploads)
            prompt_id = job.prompt_id if reattach and index == len(job.images) else None
            try:
                outcome = self._generate(job, index, spec, prompt_id)
                if spec.edit and self._finish_edit is not None:  # an edit job: the result at full resolution
                    outcome = self._finish_edit(spec, outcome, job.user)
            except Cancelled:
                return  # cancel() has recorded it, or we are shutting down
            except LinkPixError as exc:
                if self.closed or self._is_lost(job_id):
                    return
                if prompt_id is not None and isinstance(exc, PromptLost):
                    exc.message = f"LinkPix restarted while this job ran, and {exc.message}"
                self._end(job_id, FAILED, exc)
                return
            if self.closed:
                return
            self.progress.mark_running(job_id)
            meta = outcome.image.meta
            image = {"url": outcome.image.url, "seed": spec.seed, "width": meta.get("width"),
                     "height": meta.get("height"), "format": outcome.image.fmt,
                     "cache": "hit" if outcome.cache_hit else "miss", "prompt_id": meta.get("prompt_id"),
                     "gpu_seconds": outcome.gpu_seconds}
            image.update({k: meta[k] for k in ("node_id", "outputs", "media") if meta.get(k)})  # pipeline/outputs.py
            images.append(image)
            if len(images) == job.image_count:  # the last one: stored in the same write as the end
                self._end(job_id, SUCCEEDED, None, job.webhook, images=images, image=dict(image, index=index))
                return
            self.store.update(job_id, images=images, prompt_id=None)
            self.events.publish(job_id, "image", dict(image, index=index))
            job = self.store.get(job_id)
        self._end(job_id, SUCCEEDED, None, job.webhook)

    def _generate(self, job: Job, index: int, spec: RenderedJob, prompt_id: str | None) -> Outcome:
        """One image through the generator; waits (cancellably) while the generator is at capacity, and
        while no ComfyUI backend can take it (for up to `timeout` seconds: a job outlives a short outage)."""
        waiting_since = time.monotonic()
        while True:
            ticket = Ticket()
            with self._lock:
                self._tickets[job.id] = ticket
                self._keys[job.id] = self.generator.key_for(spec)
                if job.id in self._cancelling:
                    ticket.cancel()
            self.progress.start_image(job.id, index, job.image_count)
            try:
                return self.generator.generate(spec, job.user, self.progress.listener(job.id, index), ticket=ticket,
                                               prompt_id=prompt_id, backend=job.backend if prompt_id else None,
                                               background=True)
            except QueueFull as exc:
                if exc.code == "rate_limited":  # a quota used up (gpu_seconds): waiting a moment will not help
                    raise
                pause = min(exc.retry_after, 2.0)
            except NoBackend:
                if time.monotonic() - waiting_since >= self._settings().timeout or ticket.cancelled:
                    raise
                pause = NO_BACKEND_RETRY
            self.progress.release_submitter(job.id)  # it waits here, not in ComfyUI: its POST is answered now
            if self._stop.wait(pause):
                raise Cancelled("shutting down") from None

    def _end(self, job_id: str, state: str, error: LinkPixError | None, hook: Any = _UNREAD, *,
             images: list[dict[str, Any]] | None = None, image: dict[str, Any] | None = None) -> None:
        """End a job: one write (the state, the error, the webhook to send, and with `images` the last
        image), then its events: the last `image` (published only now, so a reader woken by it finds the
        job ended and is not woken twice while the job is being finished), then the end. `hook`: the job's
        webhook when the caller has it (else it is read)."""
        changes: dict[str, Any] = {"error": error.to_dict() if error is not None else None}
        if images is not None:
            changes.update(images=images, prompt_id=None)
        hook = self.store.get(job_id).webhook if hook is _UNREAD else hook
        if hook:  # in the same write as the end: a replica dying in between cannot lose the webhook
            changes["webhook"] = dict(hook, state="pending")
        if not self.store.finish(job_id, state, **changes):
            return  # it had already ended (cancelled meanwhile)
        self.progress.ended(job_id)
        job = self.store.get(job_id)
        if image is not None:
            self.events.publish(job_id, "image", image)
        self.events.publish(job_id, state, self.describe(job, with_queue=False))
        if job.webhook:
            self.delivery.send(job)

    # -- event streams -----------------------------------------------------------------------------
    def stream(self, job_id: str, heartbeat: float, max_seconds: float,
               last_id: int | None = None) -> Iterator[str]:
        """Server-Sent Events for one job, resumed after `last_id` when given (see `events.sse_stream`)."""
        return sse_stream(self.events, job_id, lambda: self.store.get(job_id),
                          lambda job: self.describe(job, with_queue=False), heartbeat, max_seconds,
                          lambda: self.closed, last_id)

    def acquire_stream(self, user: str = "default") -> bool:
        """A stream slot for `user`, within the total and the user's fair share (ops/slots.py)."""
        return self._streams.try_take(user)

    def release_stream(self, user: str = "default") -> None:
        self._streams.release(user)

