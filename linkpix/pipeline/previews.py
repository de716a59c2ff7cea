"""One preview feed per run for live viewers: where the run is (queued, drawing, done) and its latest frame.

A live link (`?live=1`, see web/live.py) shows a run as it happens. Every viewer of the same (user, link)
reads one `Feed`, filled by one watcher thread that waits on the run like any other request does (so live
and plain viewers share the run through the generator's single-flight, and a viewer who leaves stops
nothing). The feed keeps only the newest state and the newest frame, never a queue: a slow viewer skips
frames instead of holding memory, and fanning a frame out costs one callback per viewer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from linkpix.comfy import Event
from linkpix.errors import ExecutionFailed, LinkPixError
from linkpix.imaging.cards import heavy_frame, lighter_frame, render_card
from linkpix.model import RenderedJob
from linkpix.pipeline.flight import SUBMITTED
from linkpix.pipeline.generator import Generator
from linkpix.storage.cache import CachedImage

log = logging.getLogger(__name__)

POSITION_POLL = 0.5  # s between looks at a backend's queue while live runs wait in it
Wake = Callable[[], None]
QueueOf = Callable[[str], dict[str, list[str]]]  # backend name -> {"running": [ids], "pending": [ids]}


@dataclass(frozen=True)
class Status:
    """Where a run is, as a card says it: `waiting` (not yet in ComfyUI), `queued`, `drawing`, `done`,
    `failed`. `version` grows with every change, so a viewer knows whether it has shown this one."""

    phase: str = "waiting"
    position: int | None = None  # prompts ahead of it in ComfyUI's queue (0: next)
    step: int | None = None
    total: int | None = None
    version: int = 0

    def headline(self) -> str:
        """The card's big line: "queued, 2nd", "drawing, step 3 of 20"."""
        if self.phase == "queued":
            return f"queued, {ordinal(self.position + 1)}" if self.position is not None else "queued"
        if self.phase == "drawing":
            return f"drawing, step {self.step} of {self.total}" if self.step and self.total else "drawing"
        if self.phase == "waiting":
            return "starting"
        return self.phase


@dataclass(frozen=True)
class Frame:
    """A preview frame as ComfyUI sent it, numbered in arrival order; `received` is wall-clock time. What
    viewers are sent of it is `Feed.frame_bytes(frame)`."""

    seq: int
    data: bytes
    mime: str
    received: float
    step: int | None = None
    total: int | None = None


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class Feed:
    """The shared state of one live run. Written by the run's threads, read by any number of viewers."""

    def __init__(self, key: str, user: str, width: int, height: int, prompt: str) -> None:
        self.key, self.user = key, user
        self.width, self.height, self.prompt = width, height, prompt
        self._lock = threading.Lock()
        self._wakes: set[Wake] = set()
        self.status = Status()
        self.frame: Frame | None = None
        self.result: CachedImage | None = None
        self.final: bytes | None = None  # the stored image's bytes, exactly as the plain link serves them
        self.error: LinkPixError | None = None
        self.prompt_id: str | None = None
        self.backend: str | None = None
        self.frames_seen = 0
        self._card: tuple[int, bytes] | None = None
        self._card_lock = threading.Lock()
        self._light: tuple[int, bytes] | None = None  # (frame number, its re-encoded bytes)
        self._light_lock = threading.Lock()

    @property
    def over(self) -> bool:
        return self.final is not None or self.error is not None

    def subscribe(self, wake: Wake) -> None:
        with self._lock:
            self._wakes.add(wake)

    def unsubscribe(self, wake: Wake) -> None:
        with self._lock:
            self._wakes.discard(wake)

    def _notify(self) -> None:
        with self._lock:
            wakes = list(self._wakes)
        for wake in wakes:
            try:
                wake()
            except Exception:  # one viewer's bug must not stop the others' frames
                log.exception("a live viewer's wake-up failed")

    def _set_status(self, **changes: Any) -> None:
        with self._lock:
            current = self.status
            updated = replace(current, **changes)
            if updated == current:
                return
            self.status = replace(updated, version=current.version + 1)
        self._notify()

    def on_event(self, event: Event) -> None:
        """The run's events (a flight listener; called on the run's and the ComfyUI reader's threads)."""
        if event.type == SUBMITTED:
            self.prompt_id, self.backend = event.data.get("prompt_id"), event.data.get("backend")
            if self.status.phase == "waiting":
                self._set_status(phase="queued")
        elif event.type in ("execution_start", "executing") and self.status.phase in ("waiting", "queued"):
            self._set_status(phase="drawing", position=None)
        elif event.type == "progress":
            self._step(event.data.get("value"), event.data.get("max"))
        elif event.type == "progress_state":  # comes before the step's preview frame; `progress` after it
            nodes = event.data.get("nodes")
            running = [n for n in nodes.values() if isinstance(n, dict) and n.get("state") == "running"] \
                if isinstance(nodes, dict) else []
            if running:
                self._step(running[-1].get("value"), running[-1].get("max"))
        elif event.type == "preview" and event.image and event.image_mime in ("image/jpeg", "image/png"):
            status, received = self.status, time.time()
            with self._lock:  # kept as sent: re-encoding waits until a viewer is due a frame (frame_bytes)
                self.frames_seen += 1
                self.frame = Frame(self.frames_seen, event.image, event.image_mime, received, status.step,
                                   status.total)
            self._notify()

    def frame_ready(self, frame: Frame) -> bool:
        """Can `frame` be sent without re-encoding it first (small, or re-encoded already)?"""
        light = self._light
        return not heavy_frame(frame.data) or (light is not None and light[0] == frame.seq)

    def frame_bytes(self, frame: Frame) -> bytes:
        """What viewers are sent of `frame`: a heavy JPEG re-encoded lighter (cards.lighter_frame), once for
        every viewer. Only frames some viewer is due are re-encoded: with 20 steps a second and viewers at
        `live_fps` 4, four in five frames are never sent and cost nothing (re-encoding each as it came, on
        the thread reading ComfyUI's websocket, cost ~2-3 ms of CPU per frame)."""
        if not heavy_frame(frame.data):
            return frame.data
        with self._light_lock:
            light = self._light
            if light is None or light[0] != frame.seq:
                light = self._light = (frame.seq, lighter_frame(frame.data))
            return light[1]

    def card_stale(self) -> bool:
        card = self._card
        return card is None or card[0] != self.status.version

    def card(self) -> tuple[int, bytes]:
        """The card of the current status as (status version, JPEG): drawn once per change, for every viewer."""
        with self._card_lock:
            status = self.status
            if self._card is None or self._card[0] != status.version:
                fraction = status.step / status.total if status.step and status.total else None
                self._card = (status.version, render_card(status.headline(), self.prompt, self.width, self.height,
                                                          fraction))
            return self._card

    def _step(self, step: Any, total: Any) -> None:
        if isinstance(step, int | float) and isinstance(total, int | float) and total > 1:  # not a 0-of-1 node
            self._set_status(phase="drawing", step=int(step), total=int(total), position=None)

    def set_position(self, position: int | None) -> None:
        if position is not None and self.status.phase == "queued":
            self._set_status(position=position)

    def finish(self, image: CachedImage, data: bytes) -> None:
        self.result, self.final = image, data
        self._set_status(phase="done")

    def fail(self, error: LinkPixError) -> None:
        self.error = error
        self._set_status(phase="failed")


class LiveRuns:
    """The feeds of the live links being drawn, one per (user, cache key), each with its watcher thread.

    The watcher asks the generator for the image as a plain request would, so the run it joins or starts
    is the one every other viewer of the link shares; it ends with the run, whoever is still watching.
    """

    def __init__(self, generator: Generator, queue_of: QueueOf | None = None) -> None:
        self._generator = generator
        self._queue_of = queue_of
        self._poller: threading.Thread | None = None
        self._feeds: dict[tuple[str, str], Feed] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()

    @property
    def generator(self) -> Generator:
        return self._generator

    def __len__(self) -> int:
        with self._lock:
            return len(self._feeds)

    def watch(self, job: RenderedJob, user: str) -> Feed:
        """The feed of this link's run for `user`, starting its watcher if nobody watches it yet."""
        key = self._generator.key_for(job)
        width, height = _size_of(job)
        with self._lock:
            feed = self._feeds.get((user, key))
            if feed is not None:
                return feed
            feed = self._feeds[(user, key)] = Feed(key, user, width, height, job.prompt)
        threading.Thread(target=self._follow, args=(feed, job), name=f"live-{key[:8]}", daemon=True).start()
        return feed

    def close(self) -> None:
        self._closed.set()

    def _follow(self, feed: Feed, job: RenderedJob) -> None:
        self._ensure_poller()
        try:
            outcome = self._generator.generate(job, feed.user, feed.on_event)
            feed.finish(outcome.image, outcome.image.read())
        except LinkPixError as exc:
            feed.fail(exc)
        except Exception as exc:  # keep the viewers from waiting forever; keep the trace in the log
            log.exception("a live run failed unexpectedly")
            feed.fail(ExecutionFailed(f"internal error while generating: {exc}"))
        finally:
            with self._lock:
                if self._feeds.get((feed.user, feed.key)) is feed:
                    del self._feeds[(feed.user, feed.key)]

    def _ensure_poller(self) -> None:
        with self._lock:
            if self._poller is None and self._queue_of is not None:
                self._poller = threading.Thread(target=self._poll_positions, name="live-queue", daemon=True)
                self._poller.start()

    def _poll_positions(self) -> None:
        """Every `POSITION_POLL` s, one look at each backend's queue for all its queued live runs (the cards
        say "queued, 2nd"): a hundred viewers of twenty queued links cost one request a second, not twenty."""
        assert self._queue_of is not None
        while not self._closed.wait(POSITION_POLL):
            with self._lock:
                queued = [f for f in self._feeds.values() if f.status.phase == "queued" and f.prompt_id and f.backend]
            by_backend: dict[str, list[Feed]] = {}
            for feed in queued:
                by_backend.setdefault(str(feed.backend), []).append(feed)
            for backend, feeds in by_backend.items():
                try:
                    queue = self._queue_of(backend)
                except Exception:  # the card just says "queued"; the run itself handles an unreachable ComfyUI
                    log.debug("looking up live runs' queue positions on %s failed", backend, exc_info=True)
                    continue
                running, pending = list(queue.get("running", [])), list(queue.get("pending", []))
                for feed in feeds:
                    if feed.prompt_id in running:
                        feed.set_position(0)
                    elif feed.prompt_id in pending:
                        feed.set_position(len(running) + pending.index(feed.prompt_id))


def _size_of(job: RenderedJob) -> tuple[int, int]:
    """The link's picture size, for cards of its aspect (512 x 512 when the workflow does not say)."""
    try:
        width, height = int(job.params.get("width") or 512), int(job.params.get("height") or 512)
    except (TypeError, ValueError):
        return 512, 512
    return (width, height) if width > 0 and height > 0 else (512, 512)
