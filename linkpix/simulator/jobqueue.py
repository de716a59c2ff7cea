"""ComfyUI's PromptQueue: a min-heap of pending items, the running item, history and worker flags.

Behaviour mirrors `execution.PromptQueue` at 0.3.64, including its quirks: `queue_pending` is the raw heap
array, deleting the last pending item wipes the queue (two `status` broadcasts), history keeps insertion
order and a reused prompt_id overwrites its entry in place.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
from collections.abc import Callable
from typing import Any

MAXIMUM_HISTORY_SIZE = 10000


class PromptQueue:
    """All queue state of one simulator life (forgotten by restart)."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.queue: list[list[Any]] = []
        self.currently_running: dict[int, list[Any]] = {}
        self.history: dict[str, dict[str, Any]] = {}
        self.flags: dict[str, Any] = {}
        self._task_counter = 0
        self._on_change = on_change
        self._wakeup = asyncio.Event()

    def put(self, item: list[Any]) -> None:
        heapq.heappush(self.queue, item)
        self._on_change()
        self._wakeup.set()

    async def get(self) -> tuple[list[Any], int] | None:
        """Wait for work; pop the next item, mark it running and announce the dequeue (ComfyUI's
        second status). Returns None when woken only by worker flags (POST /free while idle)."""
        while not self.queue and not self.flags:
            self._wakeup.clear()
            await self._wakeup.wait()
        if not self.queue:
            return None
        item = heapq.heappop(self.queue)
        task_id = self._task_counter
        self.currently_running[task_id] = copy.deepcopy(item)
        self._task_counter += 1
        self._on_change()
        return item, task_id

    def task_done(self, task_id: int, history_result: dict[str, Any], status: dict[str, Any]) -> None:
        prompt = self.currently_running.pop(task_id)
        if len(self.history) > MAXIMUM_HISTORY_SIZE:
            self.history.pop(next(iter(self.history)))
        extra = dict(prompt[3]) if isinstance(prompt[3], dict) else prompt[3]
        if isinstance(extra, dict):
            for key in ("auth_token_comfy_org", "api_key_comfy_org"):
                extra.pop(key, None)
        entry_prompt = [prompt[0], prompt[1], prompt[2], extra, prompt[4]]
        self.history[prompt[1]] = {"prompt": entry_prompt, "outputs": {}, "status": copy.deepcopy(status)}
        self.history[prompt[1]].update(history_result)
        self._on_change()

    def remaining(self) -> int:
        return len(self.queue) + len(self.currently_running)

    def running_items(self) -> list[list[Any]]:
        return [copy.deepcopy(x) for x in self.currently_running.values()]

    def pending_items(self) -> list[list[Any]]:
        return copy.deepcopy(self.queue)

    def wipe_queue(self) -> None:
        self.queue = []
        self._on_change()

    def delete_queue_item(self, match: Callable[[list[Any]], bool]) -> bool:
        for x in range(len(self.queue)):
            if match(self.queue[x]):
                if len(self.queue) == 1:
                    self.wipe_queue()
                else:
                    self.queue.pop(x)
                    heapq.heapify(self.queue)
                self._on_change()
                return True
        return False

    def get_history(self, prompt_id: str | None = None, max_items: int | None = None,
                    offset: int = -1) -> dict[str, Any]:
        if prompt_id is None:
            out: dict[str, Any] = {}
            i = 0
            if offset < 0 and max_items is not None:
                offset = len(self.history) - max_items
            for k in self.history:
                if i >= offset:
                    out[k] = self.history[k]
                    if max_items is not None and len(out) >= max_items:
                        break
                i += 1
            return copy.deepcopy(out)
        if prompt_id in self.history:
            return {prompt_id: copy.deepcopy(self.history[prompt_id])}
        return {}

    def wipe_history(self) -> None:
        self.history = {}

    def delete_history_item(self, prompt_id: Any) -> None:
        self.history.pop(prompt_id, None)

    def set_flag(self, name: str, value: Any) -> None:
        self.flags[name] = value
        self._wakeup.set()

    def take_flags(self) -> dict[str, Any]:
        flags, self.flags = self.flags, {}
        return flags
