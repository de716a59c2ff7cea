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

    `body` gives the job in the contract's shape (its outputs and progress are taken from it)."""
    subscription = manager.events.subscribe(job_id)
    sent: set[str] = set()

    def outputs(job: Job) -> Iterator[str]:
        for out in body(job)["outputs"]:
            if out["id"] not in sent:
                sent.add(out["id"])
                yield frame("output", out)

    try:
        job = manager.store.get(job_id)
        current = body(job)
        if job.state in TERMINAL:
            yield from _ending(job, body, time.monotonic() + max_seconds, lambda: manager.closed)
            yield from outputs(job)
            yield frame("status", {"status": STATUS_OF.get(job.state, job.state), "outputs": body(job)["outputs"]})
            return
        yield frame("status", _status(current))
        graph = job.spec[0].get("graph", {}) if job.spec else {}
        node = None  # the node executing, as the last progress said: a preview without one is its
        if current.get("progress"):
            node = current["progress"].get("current_node")
            yield frame("progress", current["progress"])
        yield from outputs(job)
        deadline = time.monotonic() + max_seconds
        while not manager.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                yield ": time limit of this stream reached; reconnect for more\n\n"
                return
            try:
                kind, data, _ = subscription.get(timeout=min(heartbeat, left))
            except queue.Empty:
                yield ": keep-alive\n\n"
                continue
            if kind == "progress":
                node = data.get("node") or node
                yield frame("progress", live_progress(dict(data, node=node), graph))
            elif kind == "preview" and data.get("jpeg_base64"):
                node = data.get("node") or node  # the node that sent it, else the one last executing
                yield frame("preview", {"node_id": str(node or ""), "content_type": "image/jpeg",
                                        "data_base64": data["jpeg_base64"]})
            elif kind == "image":
                yield from outputs(manager.store.get(job_id))
            elif kind in STATUS_OF:
                job = manager.store.get(job_id)
                if kind in TERMINAL or job.state in TERMINAL:
                    yield from _ending(job, body, deadline, lambda: manager.closed)
                    yield from outputs(job)
                    yield frame("status", {"status": STATUS_OF.get(job.state, job.state),
                                           "outputs": body(job)["outputs"]})
                    return
                yield frame("status", {"status": STATUS_OF[kind]})
    finally:
        manager.events.unsubscribe(job_id, subscription)


def _status(body: dict[str, Any]) -> dict[str, Any]:
    out = {"status": body["status"]}
    if body.get("queue_position") is not None:
        out["queue_position"] = body["queue_position"]
    return out


def _ending(job: Job, body: Callable[[Job], dict[str, Any]], deadline: float,
            closed: Callable[[], bool]) -> Iterator[str]:
    """What comes before a terminal status: `canceling` (and a `log` saying why) while ComfyUI has not yet
    stopped a cancelled job's prompt; a failure's message as an `error` `log` event."""
    if job.state == "failed" and job.error:
        yield frame("log", {"level": "error", "message": str(job.error.get("message") or "the job failed")})
    if body(job)["status"] != "canceling":
        return
    yield frame("status", {"status": "canceling"})
    yield frame("log", {"level": "info", "message": "cancel requested: ComfyUI was told to stop this job's "
                        "prompt; waiting for it to stop"})
    while not closed() and time.monotonic() < deadline and body(job)["status"] == "canceling":
        time.sleep(CANCELING_POLL)
