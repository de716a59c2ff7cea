"""One run that several waiters share (a "flight"), and one waiter's handle on it (a `Ticket`).

The generator (`generator.py`) owns the flights and decides when a run starts, fails over or stops; this
module only holds what a run and its waiters share: the future its result arrives on, the progress
listeners (with the events a late joiner must still see replayed), and the waiters still waiting — so
that the last waiter to leave, and only the last, stops the run in ComfyUI.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from linkpix.comfy import Event, OutputImage
from linkpix.errors import ExecutionFailed, LinkPixError
from linkpix.pipeline.backends import Backend, EventCallback
from linkpix.storage.cache import CachedImage, ImageCache

log = logging.getLogger(__name__)

# LinkPix's own event, sent to a run's listeners once ComfyUI accepted the prompt: data has prompt_id
# and backend. Late joiners get it (and execution_start) replayed, so every waiter learns the id.
SUBMITTED = "linkpix_submitted"
_REPLAYED = frozenset({SUBMITTED, "execution_start"})


class Cancelled(LinkPixError):
    """This waiter left the run (its job was cancelled); the run itself may go on for others."""

    status = 409
    code = "cancelled"


@dataclass
class Flight:
    key: str
    future: Future[tuple[OutputImage, dict[str, Any]]] = field(default_factory=Future)
    listeners: list[EventCallback] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    waiters: set[object] = field(default_factory=set)  # one token per generate() call still waiting
    replay: list[Event] = field(default_factory=list)
    prompt_id: str | None = None
    aborted: bool = False
    backend: Backend | None = None  # the ComfyUI this run uses, fixed when the run starts
    stored: CachedImage | None = None  # with replicas: the image as the run's replica stored it
    remote: bool = False  # another replica ran it; this flight only waited for its notice
    run_started: float | None = None  # when a backend took it (None while it waits in LinkPix's queue)
    gpu_seconds: float | None = None  # its time in ComfyUI, counted for the user who started it
    extras: list[OutputImage] = field(default_factory=list)  # the run's outputs after the first

    def listen(self, callback: EventCallback | None) -> None:
        if callback is None:
            return
        with self.lock:
            self.listeners.append(callback)
            replay = list(self.replay)
        for event in replay:
            _call(callback, event)

    def unlisten(self, callback: EventCallback | None) -> None:
        with self.lock:
            if callback in self.listeners:
                self.listeners.remove(callback)

    def emit(self, event: Event) -> None:
        with self.lock:
            listeners = list(self.listeners)
            if event.type in _REPLAYED:
                self.replay.append(event)
        for callback in listeners:
            _call(callback, event)


class RemoteFailure(LinkPixError):
    """The error another replica's run ended with, as it announced it (same status, code and message)."""

    def __init__(self, outcome: dict[str, Any]) -> None:
        super().__init__(str(outcome.get("message") or "another replica's run failed"), outcome.get("details"))
        self.status = int(outcome.get("status") or 502)
        self.code = str(outcome.get("error") or "execution_failed")


def remote_result(flight: Flight, outcome: dict[str, Any], cache: ImageCache) -> tuple[Any, dict[str, Any]]:
    """What another replica's run gave: its error, or the image it stored in the shared cache (kept as the
    flight's `stored`, which each waiter copies into its user's cache)."""
    if not outcome.get("ok"):
        raise RemoteFailure(outcome)
    try:
        flight.stored = cache.lookup_file(str(outcome.get("user")), str(outcome.get("file")))
    except LinkPixError:
        raise ExecutionFailed("another replica made this picture but it is not in the shared cache; is "
                              "output_dir (or the S3 bucket) really shared by every replica?") from None
    return None, own_meta(flight.stored.meta)


def own_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """A stored image's metadata without the fields `ImageCache.put` writes itself."""
    return {k: v for k, v in meta.items() if k not in ("created", "bytes", "format", "key", "user", "outputs")}


def _call(callback: EventCallback, event: Event) -> None:
    try:
        callback(event)
    except Exception:  # a listener's bug must not break the run others wait on
        log.exception("progress listener failed")


class Ticket:
    """One waiter's handle on its run, for the jobs API: `cancel()` leaves the run (stopping it in
    ComfyUI if nobody else waits on it), `detach()` leaves it without stopping it (shutdown).

    The generator binds the ticket to its run with `bind(leave)`: the ticket knows only how to leave,
    not who runs the flight, so the run's owner and the waiter's handle do not import each other.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._woken = threading.Event()
        self._left = False
        self._leave_run: Callable[[bool], None] | None = None

    @property
    def cancelled(self) -> bool:
        return self._left

    def cancel(self) -> None:
        self._leave(abort=True)

    def detach(self) -> None:
        self._leave(abort=False)

    def _leave(self, abort: bool) -> None:
        with self._lock:
            if self._left:
                return
            self._left = True
            leave = self._leave_run
        self._woken.set()
        if leave is not None:
            leave(abort)

    def bind(self, leave: Callable[[bool], None]) -> bool:
        """Bind to a run (`leave(abort)` leaves it); False if the ticket was already cancelled (the caller
        then leaves)."""
        with self._lock:
            self._woken.clear()
            self._leave_run = leave
            return not self._left

    def wake(self) -> None:
        """The run ended (or the waiter left): `wait` returns."""
        self._woken.set()

    def wait(self, timeout: float) -> bool:
        """Block until `wake()` or `timeout`; True if woken."""
        return self._woken.wait(timeout)
