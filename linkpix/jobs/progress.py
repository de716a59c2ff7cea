"""The live progress of the jobs running here: a run's ComfyUI events translated into job events.

A job counts as `queued` until ComfyUI starts executing its prompt (then `running`, once); each node and
sampler step updates the job's live progress (read by GET /jobs/<id>) and is published to its event
stream, with a preview thumbnail at most every PREVIEW_INTERVAL seconds.

Two facts the events give for free spare work on every poll: while ComfyUI executes the job's prompt its
queue position is 0 (no /queue request to a ComfyUI that is busy running it), and once ComfyUI reported
the job's last prompt over, the job is only being stored: a poll then waits for that end (`wait_end`)
instead of answering `running` milliseconds before it changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from linkpix.comfy import Event
from linkpix.comfy.events import TERMINAL_EVENTS
from linkpix.jobs.events import JobEvents, thumbnail
from linkpix.jobs.frames import LatestFrames
from linkpix.jobs.store import QUEUED, RUNNING, Job, JobStore
from linkpix.pipeline.flight import SUBMITTED

PREVIEW_INTERVAL = 0.5  # s between preview events of one job
SUBMIT_HOLD = 0.05  # s at most a submitter waits for ComfyUI to have the prompt of a job that starts at once
_PRIVATE = frozenset({"running", "executing"})  # kept in a job's live entry, never shown


class Progress:
    """Live progress per running job; `lock` is the job manager's (one lock orders a job's state)."""

    def __init__(self, store: JobStore, events: JobEvents, lock: threading.Lock, closed: Callable[[], bool],
                 describe: Callable[[Job], dict[str, Any]]) -> None:
        self._store = store
        self._events = events
        self._lock = lock
        self._closed = closed
        self._describe = describe  # the job as a `started` event shows it
        self._live: dict[str, dict[str, Any]] = {}  # job id -> progress of the current image
        self.frames = LatestFrames()  # each job's newest preview, for its `preview` events' URL
        self._finishing: set[str] = set()  # jobs whose last prompt ComfyUI reported over, not yet ended
        self._ends: dict[str, threading.Event] = {}  # a job some poll waits for -> set at its end
        self._sends: dict[str, threading.Event] = {}  # a job whose submitter waits -> set once ComfyUI has it

    def live(self, job_id: str) -> dict[str, Any]:
        """The job's progress as clients see it (empty if it does not run here)."""
        with self._lock:
            return {k: v for k, v in self._live.get(job_id, {}).items() if k not in _PRIVATE}

    def executing(self, job_id: str) -> bool:
        """Whether ComfyUI said it executes the job's current prompt (its queue position is then 0)."""
        with self._lock:
            return bool(self._live.get(job_id, {}).get("executing"))

    def wait_end(self, job_id: str, timeout: float, *, running: bool = False) -> bool:
        """If ComfyUI reported the job's last prompt over (or with `running`, if the job runs here at all)
        and the job has not ended yet, wait (at most `timeout` s) for `ended`; True if an end came."""
        with self._lock:
            if job_id not in self._finishing and not (running and job_id in self._live):
                return False
            end = self._ends.setdefault(job_id, threading.Event())  # set by `ended`, or `forget` at the latest
        return end.wait(timeout)

    def ended(self, job_id: str) -> None:
        """The job ended (stored as such): polls waiting in `wait_end` go on."""
        with self._lock:
            self._finishing.discard(job_id)
            end = self._ends.pop(job_id, None)
        if end is not None:
            end.set()

    def expect_submit(self, job_id: str) -> None:
        """`await_submit(job_id)` will follow: from now on, the job's prompt reaching ComfyUI is noted."""
        with self._lock:
            self._sends[job_id] = threading.Event()

    def await_submit(self, job_id: str, timeout: float = SUBMIT_HOLD) -> None:
        """Wait (at most `timeout` s) until the job's first prompt is in ComfyUI's queue, or its run is over."""
        with self._lock:
            sent = self._sends.get(job_id)
        if sent is not None:
            sent.wait(timeout)
        with self._lock:
            self._sends.pop(job_id, None)

    def release_submitter(self, job_id: str) -> None:
        """The job's prompt is in ComfyUI's queue, or the job waits (no backend, a full generator) or ended:
        its submitter's `await_submit` returns."""
        with self._lock:
            sent = self._sends.get(job_id)
        if sent is not None:
            sent.set()

    def start_image(self, job_id: str, index: int, count: int) -> None:
        """Image `index` of `count` begins (it keeps the job's `running` mark)."""
        with self._lock:
            running = self._live.get(job_id, {}).get("running", False)
            self._live[job_id] = {"image": index + 1, "images": count, "step": 0,
                                  "total": None, "node": None, "running": running}

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._live.pop(job_id, None)
        self.release_submitter(job_id)  # over without a prompt (a cached picture, a failure): nothing to wait for
        self.ended(job_id)

    def _executing(self, job_id: str, value: bool) -> None:
        with self._lock:
            live = self._live.get(job_id)
            if live is not None:
                live["executing"] = value

    def _ending_now(self, job_id: str, index: int) -> None:
        with self._lock:
            live = self._live.get(job_id)
            if live is not None and live.get("images") == index + 1:
                self._finishing.add(job_id)

    def listener(self, job_id: str, index: int) -> Callable[[Event], None]:
        """The `on_event` of image `index`'s run."""
        last_preview = [0.0]

        def on_event(event: Event) -> None:
            if self._closed():
                return
            if event.type == SUBMITTED:
                self._executing(job_id, False)  # a new prompt (a failover's too) waits in ComfyUI's queue first
                self.release_submitter(job_id)
                self._submitted(job_id, event.data["prompt_id"], event.data.get("backend"))
            elif event.type == "execution_start":
                self.mark_running(job_id)
                self._executing(job_id, True)
            elif event.type in TERMINAL_EVENTS or event.is_completion:
                self._ending_now(job_id, index)
            elif event.type == "executing" and event.data.get("node") is not None:
                self.mark_running(job_id)
                self._progress(job_id, node=str(event.data["node"]), executing=True)
            elif event.type == "progress":
                self.mark_running(job_id)
                self._progress(job_id, step=event.data.get("value"), total=event.data.get("max"),
                               node=event.data.get("node"), executing=True)
            elif event.type == "preview" and event.image:
                now = time.monotonic()
                if now - last_preview[0] >= PREVIEW_INTERVAL:
                    last_preview[0] = now
                    thumb = thumbnail(event.image)
                    if thumb:
                        url = f"/jobs/{job_id}/preview?frame={self.frames.put(job_id, event.image)}"
                        node = event.data.get("node_id") or self.live(job_id).get("node")  # whose preview
                        self._events.publish(job_id, "preview", {"image": index + 1, "jpeg_base64": thumb,
                                                                 "url": url, "node": node})

        return on_event

    def mark_running(self, job_id: str) -> None:
        if self._set_running(job_id, time.time()):
            self._events.publish(job_id, "started", self._describe(self._store.get(job_id)))

    def _submitted(self, job_id: str, prompt_id: str, backend: str | None) -> None:
        job = self._store.get(job_id)
        ids = job.prompt_ids if prompt_id in job.prompt_ids else [*job.prompt_ids, prompt_id]
        self._store.update(job_id, prompt_id=prompt_id, prompt_ids=ids, backend=backend)

    def _progress(self, job_id: str, **values: Any) -> None:
        with self._lock:
            live = self._live.setdefault(job_id, {})
            live.update({k: v for k, v in values.items() if v is not None})
            snapshot = {k: v for k, v in live.items() if k not in _PRIVATE}
        self._events.publish(job_id, "progress", snapshot)

    def _set_running(self, job_id: str, now: float) -> bool:
        """queued -> running, once; True if this call made the change (cheap after the first call)."""
        with self._lock:
            live = self._live.setdefault(job_id, {})
            if live.get("running"):
                return False
            live["running"] = True
            job = self._store.get(job_id)
            if job.state != QUEUED:
                return False
            return self._store.update(job_id, state=RUNNING, started=now)
