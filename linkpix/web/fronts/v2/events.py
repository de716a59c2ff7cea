"""GET /api/v2/jobs/{id}/events: the jobs manager's live events in the contract's SSE vocabulary.

`status` (queued, running, then the terminal one), `progress` (a complete snapshot each time),
`preview` (a JPEG of the sampler's latest step, when the backend sends previews, with the node that
made it), `output` (each output as it is stored) and `log` (best-effort diagnostics: why a job failed,
that a cancelled job's prompt is being stopped). A cancel of a running job passes through `canceling`
until ComfyUI has stopped its prompt (`canceling.py`). Every output is sent before the terminal
`status` (which also carries the complete `outputs`, as the contract says), because the SDK stops
reading at the terminal status.
No `id:` lines: the contract's stream is live-only (no resume), and a client that reconnects gets the
current state first. Bounded like LinkPix's own event streams: a keep-alive comment every
`events_heartbeat` seconds, closed after `events_max_seconds`.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable, Iterator
from typing import Any

from linkpix.jobs.manager import JobManager
from linkpix.jobs.store import TERMINAL, Job
from linkpix.web.fronts.v2.shapes import live_progress

CANCELING_POLL = 0.1  # s between looks at a canceling job, until ComfyUI has stopped its prompt
STATUS_OF = {"queued": "queued", "started": "running", "succeeded": "succeeded", "failed": "failed",
             "cancelled": "canceled"}


def frame(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def stream(manager: JobManager, job_id: str, body: Callable[[Job], dict[str, Any]], heartbeat: float,
           max_seconds: float) -> Iterator[str]:
    """The frames of one job's stream; subscribes before reading the state, so no end is missed.

    `body` gives the job in the contract's shape (its outputs and progress are taken from it). Events that
    are ready together (a job's last output and its end are published together) go out in one write."""
    subscription = manager.events.subscribe(job_id)
    try:
        job = manager.store.get(job_id)
        translator = _Translator(manager, job_id, body, job)
        deadline = time.monotonic() + max_seconds
        if job.state in TERMINAL:
            yield "".join(translator.ending(job, deadline))
            return
        yield "".join(translator.opening(body(job)))
        while not manager.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                yield ": time limit of this stream reached; reconnect for more\n\n"
                return
            try:
                item = subscription.get(timeout=min(heartbeat, left))
            except queue.Empty:
                yield ": keep-alive\n\n"
                continue
            frames: list[str] = []
            while item is not None and not translator.finished:
                frames += translator.frames(item[0], item[1], deadline)
                item = _ready(subscription)
            yield "".join(frames)
            if translator.finished:
                return
    finally:
        manager.events.unsubscribe(job_id, subscription)


def _ready(subscription: queue.Queue[Any]) -> Any:
    try:
        return subscription.get_nowait()
    except queue.Empty:
        return None


class _Translator:
    """One stream's state: the outputs already sent and the node last executing."""

    def __init__(self, manager: JobManager, job_id: str, body: Callable[[Job], dict[str, Any]], job: Job) -> None:
        self.manager, self.job_id, self.body = manager, job_id, body
        self.graph = job.spec[0].get("graph", {}) if job.spec else {}
        self.sent: set[str] = set()
        self.node: Any = None  # the node executing, as the last progress said: a preview without one is its
        self.finished = False

    def opening(self, current: dict[str, Any]) -> Iterator[str]:
        yield frame("status", _status(current))
        if current.get("progress"):
            self.node = current["progress"].get("current_node")
            yield frame("progress", current["progress"])
        yield from self.outputs(current)

    def outputs(self, current: dict[str, Any]) -> Iterator[str]:
        for out in current["outputs"]:
            if out["id"] not in self.sent:
                self.sent.add(out["id"])
                yield frame("output", out)

    def ending(self, job: Job, deadline: float) -> Iterator[str]:
        self.finished = True
        final = self.body(job)
        yield from _ending(job, final, self.body, deadline, lambda: self.manager.closed)
        if final["status"] == "canceling":  # it has stopped since (or the stream's time is up)
            final = self.body(job)
        yield from self.outputs(final)
        yield frame("status", {"status": STATUS_OF.get(job.state, job.state), "outputs": final["outputs"]})

    def frames(self, kind: str, data: dict[str, Any], deadline: float) -> list[str]:
        """The contract's frames for one of the manager's events."""
        if kind == "progress":
            self.node = data.get("node") or self.node
            return [frame("progress", live_progress(dict(data, node=self.node), self.graph))]
        if kind == "preview" and data.get("jpeg_base64"):
            self.node = data.get("node") or self.node  # the node that sent it, else the one last executing
            return [frame("preview", {"node_id": str(self.node or ""), "content_type": "image/jpeg",
                                      "data_base64": data["jpeg_base64"]})]
        if kind == "image":
            return list(self.outputs(self.body(self.manager.store.get(self.job_id))))
        if kind in STATUS_OF:
            job = self.manager.store.get(self.job_id)
            if kind in TERMINAL or job.state in TERMINAL:
                return list(self.ending(job, deadline))
            return [frame("status", {"status": STATUS_OF[kind]})]
        return []


def _status(body: dict[str, Any]) -> dict[str, Any]:
    out = {"status": body["status"]}
    if body.get("queue_position") is not None:
        out["queue_position"] = body["queue_position"]
    return out


def _ending(job: Job, current: dict[str, Any], body: Callable[[Job], dict[str, Any]], deadline: float,
            closed: Callable[[], bool]) -> Iterator[str]:
    """What comes before a terminal status: `canceling` (and a `log` saying why) while ComfyUI has not yet
    stopped a cancelled job's prompt; a failure's message as an `error` `log` event."""
    if job.state == "failed" and job.error:
        yield frame("log", {"level": "error", "message": str(job.error.get("message") or "the job failed")})
    if current["status"] != "canceling":
        return
    yield frame("status", {"status": "canceling"})
    yield frame("log", {"level": "info", "message": "cancel requested: ComfyUI was told to stop this job's "
                        "prompt; waiting for it to stop"})
    while not closed() and time.monotonic() < deadline and body(job)["status"] == "canceling":
        time.sleep(CANCELING_POLL)
