"""Live events of async jobs: fan-out to readers, and the Server-Sent Events stream of one job.

Under waitress an event stream holds a server thread for as long as it is open, so a stream is bounded:
it starts with the job's current state (a late reader misses nothing that matters), ends with the job,
sends a comment every `heartbeat` seconds (which also reveals a reader that went away, since the write
fails), and closes after `max_seconds` in any case; an EventSource client simply reconnects.
"""

from __future__ import annotations

import base64
import io
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .store import QUEUED, RUNNING, TERMINAL, Job

SUBSCRIBER_BACKLOG = 256  # events kept for a slow reader (progress is dropped first, never the end)
PREVIEW_SIZE = 256  # px, longest side of a preview sent on the event stream

Item = tuple[str, dict[str, Any]]


class JobEvents:
    """Live fan-out of one job's events to its event-stream readers; nothing is kept for absent readers
    (a late reader starts from the job's current state instead)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, list[queue.Queue[Item]]] = {}

    def subscribe(self, job_id: str) -> queue.Queue[Item]:
        q: queue.Queue[Item] = queue.Queue(SUBSCRIBER_BACKLOG)
        with self._lock:
            self._subscribers.setdefault(job_id, []).append(q)
        return q

    def unsubscribe(self, job_id: str, q: queue.Queue[Item]) -> None:
        with self._lock:
            subs = self._subscribers.get(job_id, [])
            if q in subs:
                subs.remove(q)
            if not subs:
                self._subscribers.pop(job_id, None)

    def publish(self, job_id: str, kind: str, data: dict[str, Any]) -> None:
        with self._lock:
            subs = list(self._subscribers.get(job_id, []))
        for q in subs:
            try:
                q.put_nowait((kind, data))
            except queue.Full:  # a reader that stopped reading loses progress, never the final event
                if kind in TERMINAL:
                    try:
                        q.get_nowait()
                    except queue.Empty:
                        pass
                    q.put_nowait((kind, data))


def sse_stream(events: JobEvents, job_id: str, load: Callable[[], Job], describe: Callable[[Job], dict[str, Any]],
               heartbeat: float, max_seconds: float, closed: Callable[[], bool]) -> Iterator[str]:
    """The text of a job's event stream; subscribes before reading the state, so no end is missed."""
    subscription = events.subscribe(job_id)
    try:
        job = load()
        counter = 1
        first = {QUEUED: "queued", RUNNING: "started"}.get(job.state, job.state)
        yield format_event(first, describe(job), counter)
        if job.state in TERMINAL:
            return
        deadline = time.monotonic() + max_seconds
        while not closed():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                yield ": time limit of this stream reached; reconnect for more\n\n"
                return
            try:
                kind, data = subscription.get(timeout=min(heartbeat, remaining))
            except queue.Empty:
                yield ": keep-alive\n\n"
                continue
            counter += 1
            yield format_event(kind, data, counter)
            if kind in TERMINAL:
                return
    finally:
        events.unsubscribe(job_id, subscription)


def format_event(kind: str, data: dict[str, Any], event_id: int) -> str:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def thumbnail(data: bytes) -> str | None:
    """A small JPEG of a preview frame, base64; None if the frame is not a readable image."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("RGB")
            img.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
            out = io.BytesIO()
            img.save(out, "JPEG", quality=70)
    except Exception:
        return None
    return base64.b64encode(out.getvalue()).decode()
