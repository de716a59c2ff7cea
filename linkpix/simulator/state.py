"""What the simulator's parts share: who it plays, its folders, fault settings, counters, the catalogue.

The routes, the executor, the file handlers and the jobs API read this `SimState`, never the server: the
server builds it, starts and stops the event loop, and is the only part that knows about the others.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from linkpix.simulator.catalogue import Catalogue
from linkpix.simulator.profiles import Profile
from linkpix.simulator.validation import Validator


@dataclass
class Stats:
    prompts_received: int = 0
    prompts_executed: int = 0
    nodes_executed: int = 0
    # "METHOD /route/{template}" -> requests answered: which routes a client used (tests read it)
    requests: Counter[str] = field(default_factory=Counter)


class Faults:
    """Fault-injection settings, read at each use by the running simulator."""

    def __init__(self, step_delay: float, drop_websockets: Callable[[], None] | None = None) -> None:
        self._drop = drop_websockets
        self.step_delay: float = float(step_delay)
        self.run_delay: float = 0.0  # seconds of (interruptible) work added to every run that executes nodes
        self.fail_class: str | None = None
        self.hang: bool = False
        self.frozen = threading.Event()  # set by SimulatorServer.freeze(): node work stands still too
        # Extension: seconds of uninterruptible work added to every node that really runs (a slow
        # ImageBlur, say), so interrupts landing at node boundaries can be tested.
        self.node_delay: float = 0.0
        # Previews as heavy as a real sampler's (a noisy 512 px JPEG at quality 95 is 50-75 KB; the
        # simulator's smooth ones are ~13 KB), for benchmarks of what LinkPix does with each frame.
        self.noisy_previews: bool = False
        # Extension: seconds POST /prompt spends before it queues (a big graph validated on a busy ComfyUI).
        self.validate_delay: float = 0.0

    def drop_websockets(self) -> None:
        """Close every open websocket now, from the server side."""
        if self._drop is not None:
            self._drop()


@dataclass
class SimState:
    """The simulator as its parts see it (see the module docstring); `catalogue`, `validator` and
    `node_pool` are set when the server starts, `port` once it listens."""

    host: str
    port: int
    name: str
    profile: Profile
    dirs: dict[str, Path]
    preview_method: str
    faults: Faults
    stats: Stats = field(default_factory=Stats)
    catalogue: Catalogue = None  # type: ignore[assignment]
    validator: Validator = None  # type: ignore[assignment]
    node_pool: ThreadPoolExecutor | None = None  # where node code runs, off the event loop
