"""One background thread per backend: probe it, drain its stop list, keep its facts fresh.

Nothing a request waits on talks to a ComfyUI that may be frozen: requests read what the keeper last
learnt (state, queue length, system stats, object_info). The keeper probes `GET /prompt` (tiny, and it
carries the queue length) every second while the backend answers, and with exponential backoff (tenacity)
while it does not; a probe is the only call that goes through to a backend known to be frozen, so it is
how that backend rejoins. While prompts wait in the stop list it drains them every quarter second.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_when_event_set
from tenacity.wait import wait_exponential_jitter

from linkpix.comfy.features import ServerFeatures
from linkpix.comfy.health import Health
from linkpix.comfy.infocache import ObjectInfoCache
from linkpix.comfy.queue import QueueControl
from linkpix.comfy.stops import StopList
from linkpix.comfy.transport import Transport
from linkpix.errors import BackendUnavailable, LinkPixError

log = logging.getLogger("linkpix.comfy")

PROBE_INTERVAL = 1.0  # s between probes of a backend that answers
DRAIN_INTERVAL = 0.25  # s between drain rounds while prompts wait to be stopped
BACKOFF_MAX = 2.0  # s: the longest wait between probes of a backend that does not answer
STATS_EVERY = 60.0  # s between refreshes of /system_stats
SETTLE = 5.0  # s a prompt whose submit got no answer must stay unlisted before it counts as never queued


class Keeper:
    """The backend's background thread (see the module docstring); started by the client, from the
    parts it uses (not the client itself)."""

    def __init__(self, transport: Transport, health: Health, features: ServerFeatures, stops: StopList,
                 control: QueueControl, object_info: ObjectInfoCache) -> None:
        self._http = transport
        self._health = health
        self._features = features
        self._stops = stops
        self._control = control
        self._object_info = object_info
        self._closed = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stats_at = 0.0
        self._info_thread: threading.Thread | None = None
        self.system_stats: dict[str, Any] | None = None
        self.queue_remaining: int | None = None
        self.queue_at = 0.0  # monotonic time of `queue_remaining`

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"comfy-keeper {self._http.shown_url}",
                                            daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Probe (and drain) now rather than at the next interval: a stop was added, or news is wanted."""
        self._wake.set()

    def probe_now(self, timeout: float) -> bool:
        """Wake the keeper and wait up to `timeout` s for its probe to report; False if it did not."""
        health = self._health
        before = health.generation
        self.wake()
        return health.wait_report(before, timeout)

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._http.control_timeout[1] + 1.0)

    # --- the loop ------------------------------------------------------------------------------------
    def _run(self) -> None:
        retrying = Retrying(retry=retry_if_exception_type(BackendUnavailable),
                            wait=wait_exponential_jitter(multiplier=0.25, max=BACKOFF_MAX, jitter=0.1),
                            stop=stop_when_event_set(self._closed), sleep=self._sleep)
        while not self._closed.is_set():
            try:
                busy = retrying(self._step)
            except RetryError:
                return  # closed while backing off
            except Exception:  # a bug here must not end probing and draining for good
                log.exception("keeper of ComfyUI at %s failed; restarting it", self._http.shown_url)
                busy = False
            self._sleep(DRAIN_INTERVAL if busy else PROBE_INTERVAL)

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _step(self) -> bool:
        """Probe, then drain and refresh; returns whether stops are still pending. Raises while down."""
        answer = self._http.json("GET", "/prompt", control=True, probe=True)
        remaining = answer.get("exec_info", {}).get("queue_remaining") if isinstance(answer, dict) else None
        if isinstance(remaining, int):
            self.queue_remaining, self.queue_at = remaining, time.monotonic()
        busy = self.drain()
        self._refresh()
        return busy

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._stats_at > STATS_EVERY:
            self._stats_at = now
            try:
                self.system_stats = self._http.json("GET", "/system_stats", control=True)
                system = self.system_stats.get("system") if isinstance(self.system_stats, dict) else None
                self._features.note_version((system or {}).get("comfyui_version"))
            except LinkPixError as exc:
                log.debug("system_stats of %s: %s", self._http.shown_url, exc.message)
        if self._object_info.stale() and (self._info_thread is None or not self._info_thread.is_alive()):
            # A large answer: fetched beside the probes, so a backend freezing meanwhile is still noticed.
            self._info_thread = threading.Thread(target=self._fetch_object_info, daemon=True,
                                                 name=f"comfy-object-info {self._http.shown_url}")
            self._info_thread.start()

    def _fetch_object_info(self) -> None:
        try:
            self._object_info.get()  # fetches only if still stale (a caller may just have fetched it)
        except LinkPixError as exc:
            log.debug("object_info of %s: %s", self._http.shown_url, exc.message)

    # --- the stop list -------------------------------------------------------------------------------
    def drain(self) -> bool:
        """One round over this backend's stop list: dequeue or interrupt what ComfyUI still lists, and
        forget what it no longer does. Returns whether entries remain. Raises BackendUnavailable."""
        stops = self._stops
        entries = stops.entries(self._http.base_url)
        if not entries:
            return False
        queue = self._control.queue()
        running, pending = set(queue["running"]), set(queue["pending"])
        self._control.stop_listed([e.prompt_id for e in entries if e.prompt_id in running],
                           [e.prompt_id for e in entries if e.prompt_id in pending])
        now = time.time()
        left = False
        for entry in entries:
            if entry.prompt_id in running or entry.prompt_id in pending:
                stops.attempted(entry.backend, entry.prompt_id, None, None)
                left = True
            elif entry.unconfirmed and now - (entry.absent_since or now) < SETTLE:
                # Its submit may still be in ComfyUI's socket buffer: watch a little longer.
                stops.attempted(entry.backend, entry.prompt_id, None, entry.absent_since or now)
                left = True
            else:
                stops.done(entry.backend, entry.prompt_id)
                log.info("prompt %s is gone from ComfyUI at %s (%s)", entry.prompt_id, self._http.shown_url,
                         entry.reason)
        return left
