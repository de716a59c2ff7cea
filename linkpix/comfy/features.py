"""What one ComfyUI server can do beyond 0.3.64, learnt by asking it, and the newer routes that use it.

ComfyUI's versions went from 0.3.x to 0.38 (versions are tuples: "0.38.1" is newer than "0.7.0", which a
float would get wrong), and today's servers answer `GET /api/jobs`, `GET /api/jobs/{id}` and
`POST /api/jobs/{id}/cancel` (see simulator/profiles.py for the sources). Which server has them is not
inferred from the version: it is asked (`GET /api/jobs?limit=1`: 200 or 404) the first time it matters,
and again when the server reports another version (an upgrade behind the same URL).

Where the jobs routes exist they replace heavier or racier legacy calls:
- the queue (who runs, who waits, in which order) comes from the job list, which carries no graphs,
  instead of `GET /queue`, which sends every queued graph whole;
- "is my prompt still there?" is one `GET /api/jobs/{id}`;
- stopping a prompt is one `POST /api/jobs/{id}/cancel`, which interrupts it only if it is the one running
  (`/interrupt` with an id, followed by a dequeue, can meet a prompt that moved between the two);
- the client id a prompt was submitted under (to follow another LinkPix's prompt) is in the job's
  `workflow.extra_data`, without fetching the queue.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from linkpix.comfy.transport import Transport

log = logging.getLogger(__name__)

_VERSION_RE = re.compile(r"^\s*v?(\d+(?:\.\d+)*)")
RUNNING, PENDING = "in_progress", "pending"
FINISHED = frozenset({"completed", "failed", "cancelled"})


def parse_version(text: Any) -> tuple[int, ...] | None:
    """`"0.38.1"` -> (0, 38, 1); `"0.3.64-linkpix-simulator"` -> (0, 3, 64); anything else -> None."""
    match = _VERSION_RE.match(text) if isinstance(text, str) else None
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


class ServerFeatures:
    """Feature detection for one backend, and the jobs routes where it has them. Thread-safe."""

    def __init__(self, transport: Transport) -> None:
        self._http = transport
        self._lock = threading.Lock()
        self._jobs: bool | None = None  # None: not asked yet (or the server changed)
        self.version: str | None = None

    def note_version(self, version: Any) -> None:
        """The version /system_stats reported; another one than before means asking again."""
        version = str(version) if version is not None else None
        with self._lock:
            if version != self.version:
                if self.version is not None:
                    log.info("ComfyUI at %s now reports version %s (was %s)", self._http.shown_url, version,
                             self.version)
                self.version, self._jobs = version, None

    @property
    def parsed_version(self) -> tuple[int, ...] | None:
        return parse_version(self.version)

    def known(self) -> dict[str, Any]:
        """What is known so far (for /health): the version, and the jobs routes (None: not asked yet)."""
        return {"version": self.version, "jobs_api": self._jobs}

    def jobs_api(self) -> bool:
        """Whether the server has the jobs routes; asks it once. BackendUnavailable if it cannot be asked."""
        with self._lock:
            known = self._jobs
        if known is not None:
            return known
        response = self._http.request("GET", "/api/jobs?limit=1", control=True)
        found = response.status_code == 200
        if not found and response.status_code not in (404, 405):
            raise self._http.unexpected(response)
        with self._lock:
            self._jobs = found
        log.info("ComfyUI at %s %s the jobs API (GET /api/jobs)", self._http.shown_url,
                 "has" if found else "does not have")
        return found

    # --- the jobs routes (call only when jobs_api() is True) -----------------------------------------
    def queue(self) -> dict[str, list[str]]:
        """`{"running": [ids], "pending": [ids]}` in run order (by priority, as ComfyUI's heap pops)."""
        answer = self._http.json("GET", "/api/jobs?status=in_progress,pending&sort_order=asc", control=True)
        jobs = [j for j in (answer.get("jobs") or []) if isinstance(j, dict) and j.get("id")] \
            if isinstance(answer, dict) else []
        pending = sorted((j for j in jobs if j.get("status") == PENDING),
                         key=lambda j: (order_number(j.get("priority")), order_number(j.get("create_time"))))
        return {"running": [str(j["id"]) for j in jobs if j.get("status") == RUNNING],
                "pending": [str(j["id"]) for j in pending]}

    def job(self, prompt_id: str) -> dict[str, Any] | None:
        """The job (with its workflow and outputs), or None when the server does not know the id."""
        response = self._http.request("GET", f"/api/jobs/{quote(prompt_id, safe='')}", control=True)
        if response.status_code == 404:
            return None
        answer = self._http.answer_json(response)
        return answer if isinstance(answer, dict) else None

    def cancel(self, prompt_id: str) -> bool:
        """Interrupt the prompt if it runs, dequeue it if it waits; False if there was nothing to stop."""
        response = self._http.request("POST", f"/api/jobs/{quote(prompt_id, safe='')}/cancel", control=True)
        answer = self._http.answer_json(response)
        return bool(answer.get("cancelled")) if isinstance(answer, dict) else False


def order_number(value: Any) -> float:
    """A queue position or time as a number for sorting; anything else sorts last."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("inf")
