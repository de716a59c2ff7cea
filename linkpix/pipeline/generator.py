"""Stages 4 and 5 together: run a rendered job in ComfyUI once, store the image, share the run.

Single-flight: concurrent requests for the same cache key join one run (a "flight"); each joiner gets the
same bytes and the run's progress events. The run happens on a worker thread owned by the flight, so a
client that disconnects never cancels a run others wait on; the number of flights is capped (429 beyond).

A `Ticket` lets a waiter (a job) learn the prompt id at once (`SUBMITTED`) and leave; the run is stopped in
ComfyUI only when no waiter is left. `generate(..., prompt_id=...)` re-attaches after a restart.

Each attempt waits its turn in LinkPix's fair queue (`fairqueue.py`), which takes the pool's choice of
backend (`pool.choose`) once one has room. Failover is a loop in the run: a backend unreachable at submit
-> the next one; one that dies, restarts or loses the prompt mid-run -> the run is submitted again
elsewhere (`failover_retries` times), its old prompt handed to the durable stop list. A run ComfyUI itself
refused (422) or that failed in a node (502) is not retried anywhere.

With Redis configured (several replicas), a flight first claims its key across replicas (`replicas/flights.py`):
the replica that gets the claim runs it and stores the image before announcing it; a flight on another
replica waits for that notice and hands its waiters the stored image, copied into their users' caches.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from linkpix.comfy import ClientClosed, Event, OutputImage, PromptLost
from linkpix.comfy.pool import NoBackend
from linkpix.comfy.timing import RunClock
from linkpix.comfy.transport import BackendNotAnswering
from linkpix.config import Settings
from linkpix.errors import BackendUnavailable, ExecutionFailed, LinkPixError, QueueFull
from linkpix.model import RenderedJob
from linkpix.pipeline.backends import Backend, BackendPool, EventCallback, none_answers
from linkpix.pipeline.early import EarlyImage
from linkpix.pipeline.fairqueue import FairQueue, Slot
from linkpix.pipeline.flight import SUBMITTED, Cancelled, Flight, Ticket, own_meta, remote_result
from linkpix.pipeline.hostedrun import fallback_route, run_hosted
from linkpix.pipeline.outputs import store_outputs
from linkpix.pipeline.runreport import GpuObserver, RunObserver, count_gpu, overdue, report_run, run_meta
from linkpix.pipeline.secrets import RunSecrets
from linkpix.pipeline.waiters import Waiters
from linkpix.providers.hosted import Providers
from linkpix.storage.cache import CachedImage, ImageCache, cache_key

if TYPE_CHECKING:  # only with redis_url: never imported on the embedded path
    from linkpix.replicas.flights import SharedFlights

log = logging.getLogger(__name__)


AWAIT_MARGIN = 5.0  # s after the run's own timeout a waiter gives up (the run enforces it; this only bounds)
QUEUED_LOOK = 1.0  # s between a waiter's looks while its run waits in LinkPix's queue (no timeout runs yet)


@dataclass
class Outcome:
    """What one request got: the stored image, and whether it came from the cache or a shared run."""

    image: CachedImage
    cache_hit: bool
    joined: bool = False
    gpu_seconds: float | None = None  # this request's run's time in ComfyUI (None: cached, or joined)


class Generator:
    """`generate(job, user)` returns the stored image for a rendered job, running ComfyUI at most once."""

    def __init__(self, pool: BackendPool, cache: ImageCache, settings: Callable[[], Settings],
                 shared: SharedFlights | None = None, providers: Providers | None = None,
                 queue: FairQueue | None = None) -> None:
        self.providers = providers  # hosted APIs beside the pool (providers/); None: ComfyUI only
        self.queue = queue if queue is not None else FairQueue(pool)  # who runs next (pipeline/fairqueue.py)
        self.on_gpu: GpuObserver | None = None  # usage and quotas: told each run's GPU-seconds, for its user
        self.admit_run: Callable[[str], None] | None = None  # quotas: raises before a user starts a run
        self._shared = shared  # None: embedded, single-flight within this process only
        self._pool = pool  # asked per attempt: an attempt keeps the ComfyUI it started on
        self.cache = cache
        self._settings = settings  # read at each use: timeout, max_pending, failover_retries, strip_metadata
        self._flights: dict[str, Flight] = {}
        self._lock = threading.Lock()
        self.runs_started, self.secrets = 0, RunSecrets()  # secrets: partner-node keys by run, in memory
        self.on_run: RunObserver | None = None  # the metrics: told how each run ended
        self.waiters = Waiters(settings)  # request threads waiting on runs, shared out

    def key_for(self, job: RenderedJob) -> str:
        # Stripped and unstripped images are different files (an image cached unstripped has the workflow)
        fmt = job.output_format + ("+stripped" if self._settings().strips_metadata else "")
        fmt += f"@{job.provider}" if job.provider else ""  # a hosted picture never stands in for ComfyUI's
        return cache_key(job.graph, fmt, (u.data for u in job.uploads))

    @property
    def pending(self) -> int:
        return len(self._flights)  # one read of a dict's size: atomic

    def generate(self, job: RenderedJob, user: str, on_event: EventCallback | None = None, *,
                 ticket: Ticket | None = None, prompt_id: str | None = None,
                 backend: str | None = None, background: bool = False) -> Outcome:
        """The stored image for `job`. With `prompt_id`, follow that already-submitted ComfyUI prompt on
        `backend` (a name) instead of submitting (re-attaching after a restart). With `ticket`, the caller
        may leave early; it then gets `Cancelled`. `background`: nobody waits at a link for it (a job),
        so the user's links go first in LinkPix's queue."""
        routed = fallback_route(job, self._pool.can_run)
        hit = self._cached(job, user, self.key_for(job)) if routed is not job else None
        if hit is not None:  # ComfyUI cannot run it now, but its own picture is cached already: serve that
            return hit
        job = routed
        try:
            return self._generate(job, user, on_event, ticket, prompt_id, backend, background)
        except BackendUnavailable as exc:
            if job.provider is not None or job.fallback is None or prompt_id is not None:
                raise
            log.info("ComfyUI could not run %s (%s); %s takes it", job.workflow, exc.message, job.fallback)
            return self._generate(replace(job, provider=job.fallback), user, on_event, ticket, None, None, background)

    def _generate(self, job: RenderedJob, user: str, on_event: EventCallback | None, ticket: Ticket | None,
                  prompt_id: str | None, backend: str | None, background: bool = False) -> Outcome:
        key = self.key_for(job)
        if ticket is not None and ticket.cancelled:
            raise Cancelled("cancelled before the run started")
        hit = self._cached(job, user, key)
        if hit is not None:
            return hit
        self.cache.record(hit=False)
        if self.admit_run is not None and prompt_id is None and key not in self._flights:
            self.admit_run(user)  # a quota counts runs started, never a cached picture or a shared run
        token = object()
        with self.waiters.waiting(user):  # a server thread waits: pipeline/waiters.py
            flight, owner = self._join(key, token)
            try:
                flight.listen(on_event)
                if owner:
                    threading.Thread(target=self._fly, args=(flight, job, prompt_id, backend, user, not background),
                                     name=f"flight-{key[:8]}", daemon=True).start()
                elif not background:
                    self.queue.promote(key)
                if ticket is not None and not ticket.bind(functools.partial(self._leave, flight, token)):
                    self._leave(flight, token, abort=True)
                    raise Cancelled("cancelled before the run started")
                output, meta = self._await(flight, ticket)
            finally:
                flight.unlisten(on_event)
                with self._lock:
                    flight.waiters.discard(token)
        mine = flight.stored is not None and flight.stored.user == user and flight.stored.key == key
        stored = flight.stored if mine else self.cache.get(user, key)
        if stored is None and flight.stored is not None:  # stored by the run's replica, maybe for another user
            stored = self.cache.put(user, key, flight.stored.fmt, flight.stored.read(), own_meta(meta))
        elif stored is None:  # the first output under `key`, every further one beside it (outputs.py)
            stored = store_outputs(self.cache, user, key, job, [output, *flight.extras], meta,
                                   self._settings().strips_metadata)
        joined = not owner or flight.remote
        return Outcome(stored, cache_hit=False, joined=joined, gpu_seconds=None if joined else flight.gpu_seconds)

    def _cached(self, job: RenderedJob, user: str, key: str) -> Outcome | None:
        """The stored picture of `key` for `user` (never for a random seed), counted as a hit."""
        cached = None if job.seed_is_random else self.cache.get(user, key)
        if cached is not None:
            self.cache.record(hit=True)
        return None if cached is None else Outcome(cached, cache_hit=True)

    def _await(self, flight: Flight, ticket: Ticket | None) -> tuple[OutputImage, dict[str, Any]]:
        """The run's result. Time spent waiting in LinkPix's queue does not count: the timeout starts
        when a backend takes the run (which enforces it; this only bounds waiting)."""
        timeout = self._settings().timeout + AWAIT_MARGIN
        if ticket is not None:
            flight.future.add_done_callback(lambda _f: ticket.wake())
        since = time.monotonic()
        while True:
            if flight.run_started is None and not flight.remote:
                left = QUEUED_LOOK  # still in LinkPix's queue: no timeout runs yet
            else:
                left = (flight.run_started or since) + timeout - time.monotonic()
            if left <= 0:
                raise overdue(flight, timeout)
            if ticket is None:
                try:
                    return flight.future.result(timeout=left)
                except TimeoutError:
                    continue
            ticket.wait(left)
            if ticket.cancelled:
                raise Cancelled("this waiter left the run")
            if flight.future.done():
                return flight.future.result()

    def _leave(self, flight: Flight, token: object, abort: bool) -> None:
        """A waiter leaves; the last one to leave with `abort` stops the run in ComfyUI."""
        with self._lock:
            flight.waiters.discard(token)
            if not abort or flight.waiters or flight.future.done():
                return
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]  # new identical requests must not join a doomed run
        self.queue.withdraw(flight.key)  # waiting in LinkPix's queue: it leaves it now
        with flight.lock:
            flight.aborted = True
            prompt_id = flight.prompt_id
        if prompt_id is not None:
            self._stop(flight, prompt_id)

    @staticmethod
    def _stop(flight: Flight, prompt_id: str) -> None:
        """Dequeue the prompt if pending, interrupt it if running (only this prompt); durable, so a
        ComfyUI that cannot be told now is told when it answers again."""
        assert flight.backend is not None
        flight.backend.stop(prompt_id, "every request waiting on it left")

    def _join(self, key: str, token: object) -> tuple[Flight, bool]:
        limit = self._settings().max_pending
        # Across replicas the cap counts every replica's runs; joining a run (here or elsewhere) is free.
        shared_full = (self._shared is not None and key not in self._flights
                       and self._shared.pending() >= limit and not self._shared.claimed(key))
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                flight.waiters.add(token)
                return flight, False
            if len(self._flights) >= limit or shared_full:
                raise QueueFull(f"{limit} generations are already pending; try again shortly",
                                retry_after=5)
            flight = self._flights[key] = Flight(key)
            flight.waiters.add(token)
            self.runs_started += 1
            return flight, True

    def _fly(self, flight: Flight, job: RenderedJob, prompt_id: str | None = None,
             backend_name: str | None = None, user: str = "default", interactive: bool = True) -> None:
        started = time.monotonic()
        deadline = started + self._settings().timeout
        try:
            if prompt_id is not None:
                backend = self._pool.client(backend_name or "")
                self._pool.reserve(backend)
                flight.run_started = time.monotonic()
                result = self._attempt(flight, job, backend, deadline, started, prompt_id)
            elif job.provider is not None and self.providers is not None:
                result = run_hosted(self.providers, job, user, started, flight.emit)
            elif self._shared is not None:
                result = self._fly_shared(flight, job, user, deadline, started, interactive)
            else:
                result = self._run(flight, job, deadline, started, user, interactive)
            flight.future.set_result(result)
        except LinkPixError as exc:
            flight.future.set_exception(exc)
        except Exception as exc:  # unexpected: keep the waiters from hanging, keep the trace in the log
            log.exception("generation failed unexpectedly")
            flight.future.set_exception(ExecutionFailed(f"internal error while generating: {exc}"))
        finally:
            self.secrets.drop(job.graph)  # a partner-node key lives as long as its run (pipeline/secrets.py)
            with self._lock:
                if self._flights.get(flight.key) is flight:
                    del self._flights[flight.key]
            if not flight.remote and flight.future.done():
                report_run(self.on_run, job.workflow, flight.backend, time.monotonic() - started,
                           flight.future.exception())

    def _fly_shared(self, flight: Flight, job: RenderedJob, user: str, deadline: float,
                    started: float, interactive: bool = True) -> tuple[Any, dict[str, Any]]:
        """Claim the key across replicas and run it, or wait for the replica that claimed it."""
        assert self._shared is not None
        while True:
            claim = self._shared.claim(flight.key)
            if claim is not None:
                break
            flight.remote = True
            outcome = self._shared.wait(flight.key, deadline, lambda: flight.aborted)
            if flight.aborted:
                raise Cancelled("every waiter left before the other replica's run ended")
            if outcome is not None:
                return remote_result(flight, outcome, self.cache)
            log.info("the replica running %s stopped without a result; claiming it here", flight.key[:12])
        flight.remote = False
        try:
            try:
                output, meta = self._run(flight, job, deadline, started, user, interactive)
                if flight.stored is None:  # not stored yet by the run itself (pipeline/early.py)
                    flight.stored = store_outputs(self.cache, user, flight.key, job,
                                                  [output, *flight.extras], meta, self._settings().strips_metadata)
            except LinkPixError as exc:  # the run, or storing its image (S3 down): the waiters hear it too
                claim.done({"ok": False, "status": exc.status, **exc.to_dict()})
                raise
            claim.done({"ok": True, "user": user, "file": flight.stored.filename})
            return output, meta
        finally:
            claim.release()

    def _run(self, flight: Flight, job: RenderedJob, deadline: float, started: float, user: str = "default",
             interactive: bool = True) -> tuple[OutputImage, dict[str, Any]]:
        """Attempts on the pool's backends until one gives the image (see the module docstring). Each
        attempt waits its turn in LinkPix's queue first; the timeout counts from the first backend's start."""
        tried: list[Backend] = []
        failovers, queued_somewhere = 0, False
        submitted: str | None = None
        failure: BackendUnavailable | None = None
        failed: dict[str, str] = {}  # backend name -> why its try failed
        resume: tuple[Backend, str] | None = None  # a frozen backend's prompt, to go on waiting for
        while True:
            slot: Slot | None = None
            if resume is not None:
                backend, prompt_id = resume
                self._pool.reserve(backend)
            else:
                prompt_id = None
                try:
                    queued = time.monotonic()
                    slot = self.queue.acquire(flight.key, user, job.graph, interactive=interactive,
                                              exclude=tried, cancelled=lambda: flight.aborted)
                    if slot is None:
                        raise Cancelled("every waiter left before the run started")
                    backend = slot.client
                    if flight.run_started is None:  # the timeout starts now, not when the request queued
                        waited = time.monotonic() - queued
                        deadline, started = deadline + waited, started + waited
                        flight.run_started = time.monotonic()
                except BackendUnavailable:
                    if failure is None:
                        raise
                    if isinstance(failure, NoBackend) or queued_somewhere:
                        raise failure from None  # the backend's own words say more than "no other one"
                    raise none_answers(failure, failed) from None  # nothing was queued anywhere: name each
            try:
                return self._attempt(flight, job, backend, deadline, started, prompt_id, resumed=resume is not None,
                                     slot=slot, user=user)
            except ClientClosed:
                raise  # LinkPix is shutting down (or dropped the backend): a run elsewhere would be orphaned
            except BackendUnavailable as exc:
                with flight.lock:
                    submitted, aborted = flight.prompt_id, flight.aborted
                queued_somewhere = queued_somewhere or submitted is not None
                if aborted or time.monotonic() >= deadline:
                    raise
                if submitted is not None and failovers >= self._settings().failover_retries:
                    raise
                failure, resume, failed[backend.name] = exc, None, exc.message
                frozen = isinstance(exc, BackendNotAnswering)
                if submitted is not None and frozen and not self._pool.can_run(job.graph, [*tried, backend]):
                    resume = (backend, submitted)  # nowhere else to go: wait for it, until the timeout
                    continue
                tried.append(backend)
                if submitted is not None:
                    failovers += 1
                    if not isinstance(exc, PromptLost):
                        backend.stop(submitted, "its run failed over to another backend")
                log.warning("ComfyUI %s failed this run (%s); trying another backend", backend.name, exc.message)

    def _attempt(self, flight: Flight, job: RenderedJob, backend: Backend, deadline: float, started: float,
                 prompt_id: str | None, resumed: bool = False, slot: Slot | None = None,
                 user: str = "default") -> tuple[OutputImage, dict[str, Any]]:
        """One try on one backend (reserved by the caller and released here, with its queue `slot`):
        upload, submit, wait; a success's time in ComfyUI is counted for `user`."""
        reattached = prompt_id is not None and not resumed
        with flight.lock:
            flight.backend, flight.prompt_id = backend, prompt_id
        began, error, gpu = time.monotonic(), None, None
        clock = RunClock()
        early = EarlyImage(backend, self.cache, job, user, flight.key, started, self._settings().strips_metadata)

        def _emit(event: Event) -> None:
            clock.see(event)
            early.see(event)  # the image is fetched and staged from its node's `executed` on
            flight.emit(event)

        try:
            if prompt_id is None:
                for upload in job.uploads:
                    backend.upload_image(upload.data, upload.name, overwrite=True)
                if flight.aborted:
                    raise Cancelled("every waiter left before the prompt was submitted")
                prompt_id = backend.submit(job.graph, extra_data=self.secrets.extra_data(job.graph))
                with flight.lock:
                    flight.prompt_id = prompt_id
                    aborted = flight.aborted
                if aborted:  # the last waiter left while we were submitting
                    self._stop(flight, prompt_id)
            if not resumed:
                flight.emit(Event(SUBMITTED, prompt_id, {"prompt_id": prompt_id, "backend": backend.name}))
            entry = backend.wait(prompt_id, max(0.0, deadline - time.monotonic()), _emit,
                                 reattach=reattached, budget=deadline - started)
            gpu = flight.gpu_seconds = round(clock.seconds(entry), 3)
            count_gpu(self.on_gpu, user, gpu)
            outputs, meta, staged = early.outputs(prompt_id, entry)
            if not outputs:
                raise ExecutionFailed("the workflow finished without saving a file; does it end in a "
                                      "SaveImage, PreviewImage, SaveVideo or SaveAudio node?")
            flight.extras = outputs[1:]  # two SaveImage nodes, a batch: stored beside the first
            if staged is not None:  # published only now, the run confirmed: the waiters find it stored
                flight.stored = staged.commit()
            return outputs[0], meta or run_meta(job, outputs[0], backend.name, time.monotonic() - started)
        except LinkPixError as exc:
            error = exc
            raise
        finally:
            early.discard()
            self._pool.finished(backend, time.monotonic() - began, error)
            if slot is not None:
                self.queue.finish(slot, gpu)
