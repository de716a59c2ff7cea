"""Is one ComfyUI answering? A small state machine per backend, fed by every call and by the keeper's probes.

Two ways of being down need different answers. A ComfyUI whose process is gone *refuses* connections:
trying costs nothing, so new work may still try it (it may just have restarted). A *frozen* ComfyUI (a
hung GPU driver, a stuck custom node, `kill -STOP`) accepts connections and answers nothing: every call
would wait for its whole timeout, so once one call has timed out, new work is refused at once until a
probe gets an answer again. Each change of state is logged once, instead of one line per failed call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("linkpix.comfy")

UNKNOWN, UP, REFUSED, FROZEN = "unknown", "up", "refused", "frozen"


class Health:
    """The current state of one backend; thread-safe, cheap to read on every request."""

    def __init__(self, label: str, on_down: Callable[[], None] | None = None) -> None:
        self.label = label  # how log lines name the backend (never a URL with credentials)
        self.on_down = on_down  # called (outside the lock) when the backend stops answering
        self._lock = threading.Lock()
        self.state = UNKNOWN
        self.since = time.monotonic()  # when the state last changed
        self.last_error: str | None = None
        self.last_answer: float | None = None  # wall time of the last answer
        self.changed = threading.Condition(self._lock)
        self.generation = 0  # bumped on every report, so a waiter can tell a probe has come back

    @property
    def up(self) -> bool:
        return self.state == UP

    @property
    def frozen(self) -> bool:
        return self.state == FROZEN

    def answered(self) -> None:
        """Something came back from ComfyUI (any HTTP status, a websocket handshake)."""
        with self._lock:
            self.last_answer = time.time()
            self._set(UP, None)

    def failed(self, state: str, message: str) -> None:
        """A call failed: REFUSED (connection refused or reset) or FROZEN (no answer in time)."""
        with self._lock:
            self.last_error = message
            went_down = self._set(state, message) and state == FROZEN
        if went_down and self.on_down is not None:
            self.on_down()

    def _set(self, state: str, message: str | None) -> bool:
        """Record a report; returns whether the state changed."""
        self.generation += 1
        previous, self.state = self.state, state
        if previous != state:
            now = time.monotonic()
            lasted, self.since = now - self.since, now
            if state == UP:
                if previous == UNKNOWN:
                    log.info("ComfyUI %s is up", self.label)
                else:
                    log.warning("ComfyUI %s answers again (it was %s for %.1f s)", self.label, previous, lasted)
            elif state == FROZEN:
                log.warning("ComfyUI %s is not answering (%s); new work is refused until it answers again",
                            self.label, message)
            else:
                log.warning("ComfyUI %s is unreachable (%s)", self.label, message)
        self.changed.notify_all()
        return previous != state

    def wait_report(self, after: int, timeout: float) -> bool:
        """Wait until a report newer than generation `after` arrives; False on timeout."""
        with self._lock:
            return self.changed.wait_for(lambda: self.generation > after, timeout)

    def describe(self) -> str:
        """A sentence for an error message: what is wrong and for how long."""
        seconds = time.monotonic() - self.since
        if self.state == FROZEN:
            return f"ComfyUI {self.label} is not answering (for {seconds:.0f} s: {self.last_error})"
        if self.state == REFUSED:
            return f"ComfyUI {self.label} is not reachable ({self.last_error})"
        return f"ComfyUI {self.label} is {self.state}"

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"state": self.state, "for_seconds": round(time.monotonic() - self.since, 1),
                    "last_error": self.last_error, "last_answer": self.last_answer}
