"""Each user's A1111 runs in progress, for `/sdapi/v1/progress`, `interrupt` and `skip`.

A1111 has one global job; LinkPix serves many users at once, so progress, interrupt and skip act on the
caller's own runs only. A run is a txt2img/img2img request (batch_size x n_iter images, generated one after
the other); each image waits through a `Ticket`, so interrupting leaves the shared run in the generator
(stopping it in ComfyUI only when nobody else waits on it) instead of killing work other users share.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from linkpix.comfy import Event
from linkpix.pipeline.flight import Cancelled, Ticket


@dataclass
class Run:
    user: str
    count: int
    started: float = field(default_factory=time.time)
    job_no: int = 0
    step: int = 0
    steps: int = 0
    preview: bytes | None = None
    ticket: Ticket | None = None
    interrupted: bool = False
    skipped: bool = False

    def on_event(self, event: Event) -> None:
        """Progress and previews from the image being made (called on the backend's reader thread)."""
        if event.type == "progress":
            value, maximum = event.data.get("value"), event.data.get("max")
            if isinstance(value, int) and isinstance(maximum, int) and maximum > 0:
                self.step, self.steps = value, maximum
        elif event.type == "preview" and event.image:
            self.preview = event.image

    def next_ticket(self, index: int) -> Ticket:
        if self.interrupted:
            raise Cancelled("interrupted")
        self.job_no, self.step, self.steps, self.skipped = index, 0, 0, False
        self.ticket = Ticket()
        return self.ticket


class A1111Runs:
    """user -> the runs they have going; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, list[Run]] = {}

    def start(self, user: str, count: int) -> Run:
        run = Run(user, count)
        with self._lock:
            self._runs.setdefault(user, []).append(run)
        return run

    def finish(self, run: Run) -> None:
        with self._lock:
            runs = self._runs.get(run.user, [])
            if run in runs:
                runs.remove(run)
            if not runs:
                self._runs.pop(run.user, None)

    def _mine(self, user: str) -> list[Run]:
        with self._lock:
            return list(self._runs.get(user, []))

    def interrupt(self, user: str) -> int:
        """Stop every run of `user` (the image being made, and the rest of each batch)."""
        runs = self._mine(user)
        for run in runs:
            run.interrupted = True
            if run.ticket is not None:
                run.ticket.cancel()
        return len(runs)

    def skip(self, user: str) -> int:
        """Stop the image being made in each run of `user`; the batch goes on with the next one."""
        runs = self._mine(user)
        for run in runs:
            run.skipped = True
            if run.ticket is not None:
                run.ticket.cancel()
        return len(runs)

    def progress(self, user: str, with_image: bool = True) -> dict[str, Any]:
        """A1111's ProgressResponse for this user's runs (idle: progress 0 and job_count 0)."""
        runs = self._mine(user)
        state = {"skipped": False, "interrupted": False, "stopping_generation": False, "job": "",
                 "job_count": 0, "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}
        if not runs:
            return {"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": None, "textinfo": None}
        run = runs[0]
        job_count = sum(r.count for r in runs)
        fraction = 0.01 + run.job_no / run.count + (run.step / run.steps / run.count if run.steps else 0.0)
        fraction = min(fraction, 1.0)
        elapsed = time.time() - run.started
        state.update(skipped=run.skipped, interrupted=run.interrupted, job=f"linkpix:{run.user}",
                     job_count=job_count, job_timestamp=time.strftime("%Y%m%d%H%M%S", time.localtime(run.started)),
                     job_no=run.job_no, sampling_step=run.step, sampling_steps=run.steps)
        image = base64.b64encode(run.preview).decode("ascii") if with_image and run.preview else None
        return {"progress": round(fraction, 4), "eta_relative": round(max(0.0, elapsed / fraction - elapsed), 3),
                "state": state, "current_image": image, "textinfo": None}
