"""Per-prompt mailboxes between the one websocket reader thread and the threads waiting on prompts.

The reader never blocks on a waiter (a slow `on_event` callback only delays its own prompt): it appends
to a bounded mailbox and moves on. A mailbox is registered *before* the prompt is posted, so events of a
prompt that finishes instantly (a fully cached run) are kept until someone waits for them.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from linkpix.comfy.events import Event

# Internal signals from the reader to waiters; their type starts with "_" and never reaches on_event.
RECONNECTED = "_reconnected"
DISCONNECTED = "_disconnected"
CLOSED = "_closed"

MAILBOX_SIZE = 1024  # events kept per prompt when nobody reads them (oldest dropped first)
UNCLAIMED_TTL = 600.0  # seconds a mailbox of a submitted-but-never-awaited prompt is kept


class Mailbox:
    """Events of one prompt, in arrival order."""

    def __init__(self, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        self.created = time.monotonic()
        self.claims = 0  # threads currently waiting on this prompt
        self.fresh = False  # created by a waiter, not by submit: events before it may be lost
        self._events: deque[Event] = deque(maxlen=MAILBOX_SIZE)
        self._cond = threading.Condition()

    def put(self, event: Event) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def get(self, timeout: float) -> Event | None:
        """The next event, or None when none arrived within `timeout` seconds."""
        with self._cond:
            if not self._events:
                self._cond.wait(max(0.0, timeout))
            return self._events.popleft() if self._events else None


class Mailboxes:
    """prompt_id -> Mailbox, safe to use from the reader and from every waiting thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._boxes: dict[str, Mailbox] = {}

    def open(self, prompt_id: str) -> Mailbox:
        """The mailbox of `prompt_id`, created if needed (and stale unclaimed ones dropped)."""
        with self._lock:
            self._prune()
            box = self._boxes.get(prompt_id)
            if box is None:
                box = self._boxes[prompt_id] = Mailbox(prompt_id)
            return box

    def claim(self, prompt_id: str) -> Mailbox:
        """Open the mailbox and mark one more thread as waiting on it."""
        with self._lock:
            box = self._boxes.get(prompt_id)
            if box is None:
                box = self._boxes[prompt_id] = Mailbox(prompt_id)
                box.fresh = True
            box.claims += 1
            return box

    def release(self, box: Mailbox) -> None:
        """One waiter is done; the mailbox goes when nobody waits on it any more."""
        with self._lock:
            box.claims -= 1
            if box.claims <= 0 and self._boxes.get(box.prompt_id) is box:
                del self._boxes[box.prompt_id]

    def discard(self, prompt_id: str) -> None:
        """Forget a mailbox nobody waits on (the prompt was never queued)."""
        with self._lock:
            box = self._boxes.get(prompt_id)
            if box is not None and box.claims <= 0:
                del self._boxes[prompt_id]

    def deliver(self, event: Event) -> bool:
        """Hand an event to its prompt's mailbox; False when no one expects that prompt."""
        with self._lock:
            box = self._boxes.get(event.prompt_id) if event.prompt_id is not None else None
        if box is None:
            return False
        box.put(event)
        return True

    def broadcast(self, event_type: str) -> None:
        """Send an internal signal (reconnected, closed, ...) to every mailbox."""
        with self._lock:
            boxes = list(self._boxes.values())
        for box in boxes:
            box.put(Event(event_type, box.prompt_id))

    def _prune(self) -> None:
        cutoff = time.monotonic() - UNCLAIMED_TTL
        for prompt_id in [p for p, b in self._boxes.items() if b.claims <= 0 and b.created < cutoff]:
            del self._boxes[prompt_id]
