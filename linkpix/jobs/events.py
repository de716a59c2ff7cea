"""Live events of async jobs: fan-out to readers, and the Server-Sent Events stream of one job.

Under waitress an event stream holds a server thread for as long as it is open, so a stream is bounded:
it starts with the job's current state (a late reader misses nothing that matters), ends with the job,
sends a comment every `heartbeat` seconds (which also reveals a reader that went away, since the write
fails), and closes after `max_seconds` in any case; an EventSource client simply reconnects.

A reconnecting client sends the `id` of the last event it got (`Last-Event-ID`), and the stream resumes
after it. For that, a job's milestones (queued, started, image, and its end) are kept in the job store,
numbered 1, 2, ... per job, and carry that number as their `id`; they survive a restart of LinkPix and
are pruned with the job. Progress and previews are passing news: they carry no `id` (so the client's
last id stays the last milestone's) and are not replayed — the current progress comes with the next one.
"""

from __future__ import annotations

import base64
import io
import json
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from linkpix.jobs.store import QUEUED, RUNNING, TERMINAL, Job, JobStore

SUBSCRIBER_BACKLOG = 256  # events kept for a slow reader (progress is dropped first, never the end)
END_GRACE = 2.0  # s a resumed stream of an ended job waits for its last milestones (published after the write)
PREVIEW_SIZE = 256  # px, longest side of a preview sent on the event stream

MILESTONES = frozenset({"queued", "started", "image", *TERMINAL})  # kept, numbered, replayed on resume

Item = tuple[str, dict[str, Any], int | None]  # kind, data, number (None: not kept)


class JobEvents:
    """Live fan-out of one job's events to its event-stream readers; milestones are also kept in the
    store (when there is one), numbered, for readers that resume."""

    def __init__(self, store: JobStore | None = None) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, list[queue.Queue[Item]]] = {}
        self._store = store

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

    def latest(self, job_id: str) -> int:
        """The number of the job's newest kept milestone (0: none)."""
        return self._store.last_event(job_id) if self._store is not None else 0

    def after(self, job_id: str, seq: int) -> list[tuple[int, str, dict[str, Any]]]:
        """The job's kept milestones numbered above `seq`, in order."""
        return self._store.events_after(job_id, seq) if self._store is not None else []

    def last_progress(self, job_id: str) -> dict[str, Any] | None:
        """The newest progress of a job another replica runs (None here: every job runs in this process)."""
        return None

    def publish(self, job_id: str, kind: str, data: dict[str, Any]) -> None:
        seq = None
        if self._store is not None and kind in MILESTONES:
            try:
                seq = self._store.add_event(job_id, kind, data)
            except RuntimeError:  # the store closed under us (shutting down): live readers still hear it
                seq = None
        self.fan_out(job_id, kind, data, seq)

    def fan_out(self, job_id: str, kind: str, data: dict[str, Any], seq: int | None) -> None:
        """Hand one event to this process's readers of the job."""
        with self._lock:
            subs = list(self._subscribers.get(job_id, []))
        for q in subs:
            try:
                q.put_nowait((kind, data, seq))
            except queue.Full:  # a reader that stopped reading loses progress, never the final event
                if kind in TERMINAL:
                    try:
                        q.get_nowait()
                    except queue.Empty:
                        pass
                    q.put_nowait((kind, data, seq))


def sse_stream(events: JobEvents, job_id: str, load: Callable[[], Job], describe: Callable[[Job], dict[str, Any]],
               heartbeat: float, max_seconds: float, closed: Callable[[], bool],
               last_id: int | None = None) -> Iterator[str]:
    """The text of a job's event stream; subscribes before reading the state, so no end is missed.

    Without `last_id`: the job's current state first (with the number of the newest milestone as its
    id), then what happens. With it: the kept milestones after `last_id`, then what happens.
    """
    subscription = events.subscribe(job_id)
    try:
        sent = 0  # the newest milestone number the client has
        if last_id is None:
            sent = events.latest(job_id)
            job = load()  # after the number: a milestone in between is then sent again, never lost
            first = {QUEUED: "queued", RUNNING: "started"}.get(job.state, job.state)
            yield format_event(first, describe(job), sent)
            if job.state in TERMINAL:
                return
        else:
            sent = last_id
            for seq, kind, data in events.after(job_id, last_id):
                sent = seq
                yield format_event(kind, data, seq)
                if kind in TERMINAL:
                    return
            job = load()
            if job.state in TERMINAL:  # it ended meanwhile: send what was kept since, then stop
                for seq, kind, data in events.after(job_id, sent):
                    sent = seq
                    yield format_event(kind, data, seq)
                    if kind in TERMINAL:
                        return
                # Stored as ended, its last milestones not kept yet (they are published just after that
                # write): they come through the subscription; the job's own state if they never do.
                if not (yield from _until_end(subscription, sent, END_GRACE)):
                    yield format_event(job.state, describe(job), None)
                return
        deadline = time.monotonic() + max_seconds
        while not closed():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                yield ": time limit of this stream reached; reconnect for more\n\n"
                return
            try:
                kind, data, seq = subscription.get(timeout=min(heartbeat, remaining))
            except queue.Empty:
                yield ": keep-alive\n\n"
                continue
            if seq is not None:
                if seq <= sent:
                    continue  # already sent (replayed, or published while the stream started)
                sent = seq
            yield format_event(kind, data, seq)
            if kind in TERMINAL:
                return
    finally:
        events.unsubscribe(job_id, subscription)


def _until_end(subscription: queue.Queue[Item], sent: int, grace: float) -> Generator[str, None, bool]:
    """The milestones after `sent` that arrive within `grace` s, up to the terminal one; whether it came."""
    deadline = time.monotonic() + grace
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            kind, data, seq = subscription.get(timeout=remaining)
        except queue.Empty:
            return False
        if seq is not None and seq <= sent:
            continue
        yield format_event(kind, data, seq)
        if kind in TERMINAL:
            return True
    return False


def format_event(kind: str, data: dict[str, Any], event_id: int | None) -> str:
    """One SSE event; without an id the client's last id stays what it was (passing news)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def thumbnail(data: bytes) -> str | None:
    """A small JPEG of a preview frame, base64; None if the frame is not a readable image."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            # A JPEG (ComfyUI's previews, up to 512 px) decodes at the scale nearest above the thumbnail's:
            # half the CPU of a whole decode and resize, spent while ComfyUI computes the next step.
            img.draft("RGB", (PREVIEW_SIZE, PREVIEW_SIZE))
            img = img.convert("RGB")
            img.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
            out = io.BytesIO()
            img.save(out, "JPEG", quality=70)
    except Exception:
        return None
    return base64.b64encode(out.getvalue()).decode()
