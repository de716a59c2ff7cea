"""Waiting for one prompt: its events, /history as the truth, and what to do when time runs out.

Completion is `executing {node: null}` for the prompt, and outputs always come from /history (reference
§8.6): the socket says *when*, history says *what*. Whatever the socket misses (a drop, a restart, a
newer server that stops sending the terminator) is made good by reading /history and /queue (the prompt's
job, on servers with the jobs routes: features.py), which is the only truth that survives a reconnect.

A prompt re-attached after a LinkPix restart was submitted under the old process's client id, and
ComfyUI sends its events only to that id; the old socket died with the old process, so a socket under the
same id is opened for as long as someone waits on that prompt, and its progress is seen again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from linkpix.comfy.events import TERMINAL_EVENTS, Event
from linkpix.comfy.failures import raise_for_history
from linkpix.comfy.features import FINISHED, PENDING, RUNNING, ServerFeatures
from linkpix.comfy.health import Health
from linkpix.comfy.queue import QueueControl
from linkpix.comfy.stops import StopList
from linkpix.comfy.stream import EventStream
from linkpix.comfy.transport import Transport
from linkpix.comfy.waiters import CLOSED, DISCONNECTED, RECONNECTED, Mailbox, Mailboxes
from linkpix.errors import BackendUnavailable, GenerationTimeout

log = logging.getLogger("linkpix.comfy.client")

EventCallback = Callable[[Event], None]

TERMINAL_GRACE = 1.0  # s to wait for `executing null` after execution_success/error/interrupted
DISCONNECTED_POLL = 0.5  # s between /history polls while the socket is down
RECONNECT_RECHECK = 1.0  # s after a reconnect for a second look at a prompt that was still queued
SAFETY_POLL = 10.0  # s of silence after which /history is checked even with a healthy socket
UNREACHABLE_GRACE = 2.0  # s ComfyUI may stay unreachable during a wait before we give up (or fail over)
STOP_BUDGET = 1.5  # s a timed-out run spends stopping its prompt before answering (the keeper goes on)


class PromptLost(BackendUnavailable):
    """ComfyUI no longer knows a prompt it accepted: not queued, not in history (it restarted)."""


class ClientClosed(BackendUnavailable):
    """LinkPix closed the client (shutting down, or the backend left the pool): nothing to fail over."""


class Follower:
    """The waiting half of a `ComfyClient` (one per client), built from the parts it uses: the client's
    HTTP transport, its event stream (under `client_id`) and mailboxes, the server's features, its health,
    the stop list, queue control, and how to wake the keeper once a stop is recorded."""

    def __init__(self, transport: Transport, stream: EventStream, mailboxes: Mailboxes, client_id: str,
                 features: ServerFeatures, health: Health, stops: StopList, control: QueueControl,
                 wake_keeper: Callable[[], None], connect_timeout: float) -> None:
        self._http = transport
        self._stream = stream
        self._mailboxes = mailboxes
        self._client_id = client_id
        self._features = features
        self._health = health
        self._stops = stops
        self._control = control
        self._wake_keeper = wake_keeper
        self._connect_timeout = connect_timeout
        self._owners: dict[str, list[Any]] = {}  # other client ids whose prompts we follow -> [stream, n]
        self._lock = threading.Lock()

    def wait(self, prompt_id: str, deadline: float, timeout: float, on_event: EventCallback | None,
             reattach: bool = False) -> dict[str, Any]:
        self._stream.start()
        box = self._mailboxes.claim(prompt_id)
        owner = self._owner_of(prompt_id) if reattach else None
        stream = self._follow_owner(owner) if owner else self._stream
        try:
            entry = self._follow(box, deadline, timeout, on_event, stream)
        finally:
            self._mailboxes.release(box)
            if owner:
                self._unfollow_owner(owner)
        raise_for_history(entry, prompt_id)
        return entry

    def close(self) -> None:
        with self._lock:
            held, self._owners = list(self._owners.values()), {}
        for stream, _count in held:
            stream.close(broadcast=False)

    # --- following a prompt submitted under another client id -------------------------------------
    def _owner_of(self, prompt_id: str) -> str | None:
        """The client id another LinkPix submitted `prompt_id` under, if ComfyUI still queues it."""
        try:
            if self._features.jobs_api():  # one job, not every queued graph
                job = self._features.job(prompt_id) or {}
                workflow = job.get("workflow") if isinstance(job.get("workflow"), dict) else {}
                extra = workflow.get("extra_data") if isinstance(workflow.get("extra_data"), dict) else {}
                owner = extra.get("client_id") if job.get("status") in (RUNNING, PENDING) else None
                return str(owner) if owner and str(owner) != self._client_id else None
            answer = self._http.json("GET", "/queue", control=True)
        except BackendUnavailable:
            return None
        for key in ("queue_running", "queue_pending"):
            for item in (answer.get(key) or []) if isinstance(answer, dict) else []:
                if isinstance(item, list) and len(item) > 3 and str(item[1]) == prompt_id \
                        and isinstance(item[3], dict) and item[3].get("client_id"):
                    owner = str(item[3]["client_id"])
                    return owner if owner != self._client_id else None
        return None

    def _follow_owner(self, owner: str) -> EventStream:
        """A socket under `owner`'s id, shared by every prompt of `owner` (a second socket under one id
        would silently take the first one's events, reference §8.1)."""
        with self._lock:
            held = self._owners.get(owner)
            if held is None:
                stream = EventStream(self._http.base_url, owner, self._mailboxes, self._connect_timeout,
                                     self._health, self._http.shown_url)
                held = self._owners[owner] = [stream, 0]
            held[1] += 1
        held[0].start()
        return held[0]

    def _unfollow_owner(self, owner: str) -> None:
        with self._lock:
            held = self._owners.get(owner)
            if held is None:
                return
            held[1] -= 1
            if held[1] > 0:
                return
            del self._owners[owner]
        held[0].close(broadcast=False)

    # --- the wait loop ----------------------------------------------------------------------------
    def _follow(self, box: Mailbox, deadline: float, timeout: float, on_event: EventCallback | None,
                stream: EventStream) -> dict[str, Any]:
        """Read the prompt's events until its history entry exists; the heart of `wait`.

        /history is read when the socket says the prompt is over, after a reconnect, shortly after a
        terminal event not followed by `executing null`, often while the socket is down, and now and
        then anyway (SAFETY_POLL), so no completion depends on a single message arriving.
        """
        prompt_id = box.prompt_id
        now = time.monotonic()
        next_check = now if box.fresh or not stream.connected else now + SAFETY_POLL
        unreachable_since: float | None = None
        hurry = False  # the prompt is known to be over: poll briskly
        recheck = False  # just reconnected: look once more soon, in case a restart raced with us
        while True:
            now = time.monotonic()
            if now >= deadline:
                return self.give_up(prompt_id, timeout)
            event = box.get(min(deadline, next_check) - now)
            if event is not None and not event.type.startswith("_") and on_event is not None:
                _notify(on_event, event)
            if event is None or event.type == RECONNECTED or event.is_completion:
                hurry = hurry or (event is not None and event.is_completion)
                recheck = event is not None and event.type == RECONNECTED
                try:
                    entry = self.reconcile(prompt_id)
                    unreachable_since = None
                except PromptLost:
                    raise
                except BackendUnavailable:
                    unreachable_since = unreachable_since or time.monotonic()
                    if time.monotonic() - unreachable_since > UNREACHABLE_GRACE:
                        raise
                    entry = None
                if entry is not None:
                    return entry
                brisk = hurry or unreachable_since is not None or not stream.connected
                pace = DISCONNECTED_POLL if brisk else RECONNECT_RECHECK if recheck else SAFETY_POLL
                next_check = time.monotonic() + pace
            elif event.type == CLOSED:
                raise ClientClosed(f"the client for ComfyUI at {self._http.shown_url} was closed "
                                   f"while waiting for prompt {prompt_id}")
            elif event.type == DISCONNECTED:
                next_check = min(next_check, now + DISCONNECTED_POLL)
            elif event.type in TERMINAL_EVENTS:  # `executing null` should follow; poll if it does not
                hurry = True
                next_check = min(next_check, now + TERMINAL_GRACE)

    def history_entry(self, prompt_id: str) -> dict[str, Any] | None:
        answer = self._http.json("GET", f"/history/{quote(prompt_id, safe='')}", control=True)
        entry = answer.get(prompt_id) if isinstance(answer, dict) else None
        return entry if isinstance(entry, dict) else None

    def reconcile(self, prompt_id: str) -> dict[str, Any] | None:
        """The history entry if the prompt finished, None if it is still queued; raise if it vanished.

        History is read again after the queue so that a prompt finishing between the two reads is
        not mistaken for a lost one (ComfyUI moves it from queue to history atomically).
        """
        entry = self.history_entry(prompt_id)
        if entry is not None:
            return entry
        if self._still_there(prompt_id):
            return None
        entry = self.history_entry(prompt_id)
        if entry is not None:
            return entry
        url = self._http.shown_url
        raise PromptLost(f"ComfyUI at {url} lost prompt {prompt_id} (did it restart?)",
                         {"url": url, "prompt_id": prompt_id})

    def _still_there(self, prompt_id: str) -> bool:
        """Whether ComfyUI still queues or runs the prompt: its job where the server has the jobs routes
        (a finished job whose history we just missed counts: history is read again), else /queue."""
        if self._features.jobs_api():
            job = self._features.job(prompt_id)
            return job is not None and job.get("status") not in FINISHED
        return self._control.queue_position(prompt_id) is not None

    def give_up(self, prompt_id: str, timeout: float) -> dict[str, Any]:
        """After a timeout: stop the prompt (interrupt if running, dequeue if pending), then raise.

        The stop is recorded in the durable stop list first, then tried for at most STOP_BUDGET seconds
        (not at all while ComfyUI is known to be frozen), so the 504 comes within about the timeout;
        whatever is not confirmed by then, the keeper finishes. A prompt that finished by itself just as
        time ran out is not stopped: its entry is returned and judged like any other.
        """
        self._stops.add(self._http.base_url, prompt_id, f"it did not finish within {round(timeout, 1):g} s")
        end = time.monotonic() + STOP_BUDGET
        acted, outcome, entry = False, "it could not be stopped", None
        try:
            while True:
                queue = self._control.queue()
                if prompt_id in queue["running"]:
                    if not acted:
                        self._control.stop_listed([prompt_id], [])
                    acted, outcome = True, "it was interrupted"
                elif prompt_id in queue["pending"]:
                    self._control.stop_listed([], [prompt_id])
                    acted, outcome = True, "it was removed from the queue"
                else:
                    self._stops.done(self._http.base_url, prompt_id)
                    entry = None if acted else self.history_entry(prompt_id)
                    break
                if time.monotonic() >= end:
                    outcome += " (ComfyUI has not confirmed it yet; LinkPix keeps asking until it does)"
                    break
                time.sleep(0.05)
        except BackendUnavailable as exc:
            outcome = (f"ComfyUI did not answer the stop ({exc.message}); LinkPix removes it as soon as "
                       "ComfyUI answers again")
        finally:
            self._wake_keeper()
        if entry is not None:
            return entry
        raise GenerationTimeout(f"ComfyUI at {self._http.shown_url} did not finish prompt {prompt_id} within "
                                f"{round(timeout, 1):g} s; {outcome}", {"prompt_id": prompt_id, "stopped": acted})


def _notify(on_event: EventCallback, event: Event) -> None:
    """Call the caller's callback; its failure is logged, never allowed to lose the run."""
    try:
        on_event(event)
    except Exception:
        log.exception("on_event callback failed for %s event", event.type)
