"""How long ComfyUI spent on a prompt: the GPU-seconds LinkPix counts for the user who asked.

ComfyUI stamps `execution_start` and `execution_success` (milliseconds since the epoch, its own clock) in
the prompt's history entry (`status.messages`) and on the websocket. Their difference is the time the
prompt held the backend: model loading and sampling, but not the time it waited in ComfyUI's queue or
the time LinkPix spent downloading the image. A backend that does not stamp them (an older one, or a
history without messages) is measured by when LinkPix saw the events, and failing that by the wait.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from linkpix.comfy.events import Event

START, SUCCESS = "execution_start", "execution_success"


class RunClock:
    """Watches one prompt's events (`see`) and tells its time in ComfyUI from its history (`seconds`)."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self._seen: dict[str, float] = {}  # event type -> our clock when it arrived
        self._stamped: dict[str, float] = {}  # event type -> ComfyUI's stamp (s)

    def see(self, event: Event) -> None:
        if event.type in (START, SUCCESS):
            self._seen.setdefault(event.type, time.monotonic())
            stamp = event.data.get("timestamp") if isinstance(event.data, Mapping) else None
            if isinstance(stamp, (int, float)):
                self._stamped.setdefault(event.type, stamp / 1000.0)

    def seconds(self, entry: Mapping[str, Any] | None) -> float:
        """The run's seconds in ComfyUI: the history's stamps, else the websocket's, else the wait."""
        stamps = dict(self._stamped)
        status = entry.get("status") if isinstance(entry, Mapping) else None
        messages = status.get("messages") if isinstance(status, Mapping) else None
        for message in messages if isinstance(messages, list) else []:
            if isinstance(message, list) and len(message) == 2 and message[0] in (START, SUCCESS) \
                    and isinstance(message[1], Mapping) and isinstance(message[1].get("timestamp"), (int, float)):
                stamps[message[0]] = message[1]["timestamp"] / 1000.0
        if START in stamps and SUCCESS in stamps and stamps[SUCCESS] >= stamps[START]:
            return stamps[SUCCESS] - stamps[START]
        if START in self._seen and SUCCESS in self._seen:
            return self._seen[SUCCESS] - self._seen[START]
        return time.monotonic() - self._seen.get(START, self.began)
