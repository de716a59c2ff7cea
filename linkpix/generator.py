"""Stages 4 and 5 together: run a rendered job in ComfyUI once, store the image, share the run.

Single-flight: concurrent requests for the same cache key join one run (a "flight") instead of queueing
identical work in ComfyUI; each joiner receives the same bytes and the run's progress events. The run
happens on a worker thread owned by the flight, so a client that disconnects never cancels a run that
others wait on, and the number of flights is capped so a flood of distinct links answers 429 instead of
growing ComfyUI's queue without bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from .cache import CachedImage, ImageCache, cache_key
from .comfy import Event, OutputImage
from .encode import encode, image_size
from .errors import ExecutionFailed, GenerationTimeout, LinkPixError, QueueFull
from .resolver import RenderedJob

log = logging.getLogger(__name__)

EventCallback = Callable[[Event], None]


class Backend(Protocol):
    """What the generator needs of a ComfyUI client (the real one is `linkpix.comfy.ComfyClient`)."""

    base_url: str

    def run(self, graph: dict[str, Any], timeout: float,
            on_event: EventCallback | None = None) -> list[OutputImage]: ...

    def upload_image(self, data: bytes, name: str, *, overwrite: bool = False,
                     subfolder: str = "") -> str: ...


@dataclass
class Outcome:
    """What one request got: the stored image, and whether it came from the cache or a shared run."""

    image: CachedImage
    cache_hit: bool
    joined: bool = False


@dataclass
class _Flight:
    key: str
    future: Future[tuple[OutputImage, dict[str, Any]]] = field(default_factory=Future)
    listeners: list[EventCallback] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def listen(self, callback: EventCallback | None) -> None:
        if callback is not None:
            with self.lock:
                self.listeners.append(callback)

    def emit(self, event: Event) -> None:
        with self.lock:
            listeners = list(self.listeners)
        for callback in listeners:
            try:
                callback(event)
            except Exception:  # a listener's bug must not break the run others wait on
                log.exception("progress listener failed")


class Generator:
    """`generate(job, user)` returns the stored image for a rendered job, running ComfyUI at most once."""

    def __init__(self, backend: Backend, cache: ImageCache, timeout: Callable[[], float],
                 max_pending: Callable[[], int]) -> None:
        self.backend = backend
        self.cache = cache
        self._timeout = timeout
        self._max_pending = max_pending
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()
        self.runs_started = 0

    def key_for(self, job: RenderedJob) -> str:
        return cache_key(job.graph, job.output_format, (u.data for u in job.uploads))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._flights)

    def generate(self, job: RenderedJob, user: str, on_event: EventCallback | None = None) -> Outcome:
        key = self.key_for(job)
        if not job.seed_is_random:
            cached = self.cache.get(user, key)
            if cached is not None:
                self.cache.record(hit=True)
                return Outcome(cached, cache_hit=True)
        self.cache.record(hit=False)
        flight, owner = self._join(key)
        flight.listen(on_event)
        if owner:
            threading.Thread(target=self._fly, args=(flight, job), name=f"flight-{key[:8]}",
                             daemon=True).start()
        timeout = self._timeout() + 30.0  # the run enforces the real timeout; this only bounds waiting
        try:
            output, meta = flight.future.result(timeout=timeout)
        except TimeoutError:
            raise GenerationTimeout(f"no result after {timeout:.0f} s") from None
        stored = self.cache.get(user, key)
        if stored is None:
            data = encode(output.data, job.output_format)
            stored = self.cache.put(user, key, job.output_format, data, meta)
        return Outcome(stored, cache_hit=False, joined=not owner)

    def _join(self, key: str) -> tuple[_Flight, bool]:
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            limit = self._max_pending()
            if len(self._flights) >= limit:
                raise QueueFull(f"{limit} generations are already pending; try again shortly",
                                retry_after=5)
            flight = self._flights[key] = _Flight(key)
            self.runs_started += 1
            return flight, True

    def _fly(self, flight: _Flight, job: RenderedJob) -> None:
        started = time.monotonic()
        try:
            for upload in job.uploads:
                self.backend.upload_image(upload.data, upload.name, overwrite=True)
            outputs = self.backend.run(job.graph, self._timeout(), flight.emit)
            if not outputs:
                raise ExecutionFailed("the workflow finished without producing an image; "
                                      "does it end in a SaveImage or PreviewImage node?")
            output = outputs[0]
            meta = self._meta(job, output, time.monotonic() - started)
            flight.future.set_result((output, meta))
        except LinkPixError as exc:
            flight.future.set_exception(exc)
        except Exception as exc:  # unexpected: keep the waiters from hanging, keep the trace in the log
            log.exception("generation failed unexpectedly")
            flight.future.set_exception(ExecutionFailed(f"internal error while generating: {exc}"))
        finally:
            with self._lock:
                self._flights.pop(flight.key, None)

    def _meta(self, job: RenderedJob, output: OutputImage, seconds: float) -> dict[str, Any]:
        width, height = image_size(output.data)
        return {"prompt": job.prompt, "negative": job.negative, "seed": job.seed,
                "seed_is_random": job.seed_is_random, "workflow": job.workflow, "params": job.params,
                "width": width, "height": height, "backend": self.backend.base_url,
                "prompt_id": output.prompt_id, "comfy_filename": output.filename,
                "generation_ms": round(seconds * 1000)}
