"""One run of 'ComfyUI': the state a restart forgets (queue, history, node cache, counter, websockets)."""

from __future__ import annotations

import asyncio
from typing import Any

from linkpix.simulator.executor import Executor
from linkpix.simulator.jobqueue import PromptQueue
from linkpix.simulator.state import SimState
from linkpix.simulator.wshub import WebSocketHub


class Life:
    """One run of 'ComfyUI'; `SimulatorServer.restart()` replaces it with a fresh one."""

    def __init__(self, state: SimState) -> None:
        self.hub = WebSocketHub()
        self.queue = PromptQueue(self.queue_updated)
        self.counter = 0
        self.executor = Executor(state, self.hub, self.queue)
        self.worker: asyncio.Task[None] | None = None

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.queue.remaining()}}

    def queue_updated(self) -> None:
        self.hub.send("status", {"status": self.queue_info()})

    def start(self) -> None:
        self.hub.start()
        self.worker = asyncio.get_running_loop().create_task(self.executor.worker_loop())

    async def close(self) -> None:
        self.executor.abandon()
        if self.worker is not None:
            self.worker.cancel()
            try:
                await self.worker
            except (asyncio.CancelledError, Exception):
                pass
        await self.hub.close()
