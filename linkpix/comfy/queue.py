"""Queue control for one ComfyUI: list its queue, find a prompt's place, dequeue, interrupt, cancel.

Carved out of the client so that the waiting half (`follow.py`), the keeper (`keeper.py`) and the client
share one way to stop a prompt, each holding only this, not the whole client. Where the server has the
jobs routes (`features.py`) a prompt is cancelled by id; otherwise pending ones are dequeued via /queue and
running ones interrupted via /interrupt.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from linkpix.comfy.features import ServerFeatures, order_number
from linkpix.comfy.transport import Transport


class QueueControl:
    """ComfyUI's queue as one backend sees it; every call is a short control call (may raise
    BackendUnavailable)."""

    def __init__(self, transport: Transport, features: ServerFeatures) -> None:
        self._http = transport
        self._features = features

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt `prompt_id` if it is the running prompt; with no id, whatever is running."""
        body = {"prompt_id": prompt_id} if prompt_id is not None else {}
        self._http.expect_ok(self._http.post_json("/interrupt", body, control=True))

    def delete_from_queue(self, ids: Iterable[str]) -> None:
        """Remove pending prompts (running ones need `interrupt`); unknown ids are ignored."""
        self._http.expect_ok(self._http.post_json("/queue", {"delete": [str(i) for i in ids]}, control=True))

    def stop_now(self, prompt_id: str) -> None:
        """One try at stopping a prompt wherever it is (cancelled, or dequeued and interrupted)."""
        if self._features.jobs_api():
            self._features.cancel(prompt_id)
        else:
            self.delete_from_queue([prompt_id])
            self.interrupt(prompt_id)

    def stop_listed(self, running: Iterable[str], pending: Iterable[str]) -> None:
        """Stop prompts `queue()` listed: each cancelled where the server has the jobs routes, else the
        pending ones dequeued and the running ones interrupted (by id: only if still the one running)."""
        running, pending = list(running), list(pending)
        if self._features.jobs_api():
            for prompt_id in running + pending:
                self._features.cancel(prompt_id)
            return
        if pending:
            self.delete_from_queue(pending)
        for prompt_id in running:
            self.interrupt(prompt_id)

    def queue(self) -> dict[str, list[str]]:
        """`{"running": [ids], "pending": [ids]}`, pending sorted in run order (the server's is a heap).
        From the job list where the server has one (it carries no graphs), else from /queue."""
        if self._features.jobs_api():
            return self._features.queue()
        answer = self._http.json("GET", "/queue", control=True)
        answer = answer if isinstance(answer, dict) else {}

        def items(key: str) -> list[list[Any]]:
            return [i for i in answer.get(key) or [] if isinstance(i, list) and len(i) >= 2]

        pending = sorted(items("queue_pending"), key=lambda i: (order_number(i[0]), str(i[1])))
        return {"running": [str(i[1]) for i in items("queue_running")],
                "pending": [str(i[1]) for i in pending]}

    def queue_position(self, prompt_id: str) -> int | None:
        """How many prompts run before this one (0 = running or next), or None if it is not queued."""
        queue = self.queue()
        if prompt_id in queue["running"]:
            return 0
        if prompt_id in queue["pending"]:
            return len(queue["running"]) + queue["pending"].index(prompt_id)
        return None
