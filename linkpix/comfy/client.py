"""`ComfyClient`: submit a workflow to one ComfyUI, follow it, and collect its images.

Completion is `executing {node: null}` for the prompt, and outputs always come from /history (reference
§8.6): the socket says *when*, history says *what*. Whatever the socket misses (a drop, a restart, a
newer server that stops sending the terminator) is made good by reading /history and /queue, which is
the only truth that survives a reconnect.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from linkpix.comfy import objectinfo
from linkpix.comfy.events import TERMINAL_EVENTS, Event, OutputImage
from linkpix.comfy.failures import raise_for_history, workflow_rejected
from linkpix.comfy.stream import EventStream
from linkpix.comfy.transport import Transport
from linkpix.comfy.waiters import CLOSED, DISCONNECTED, RECONNECTED, Mailbox, Mailboxes
from linkpix.errors import BackendUnavailable, BadRequest, GenerationTimeout, WorkflowRejected

log = logging.getLogger(__name__)

TERMINAL_GRACE = 1.0  # s to wait for `executing null` after execution_success/error/interrupted
DISCONNECTED_POLL = 0.5  # s between /history polls while the socket is down
RECONNECT_RECHECK = 1.0  # s after a reconnect for a second look at a prompt that was still queued
SAFETY_POLL = 10.0  # s of silence after which /history is checked even with a healthy socket
UNREACHABLE_GRACE = 5.0  # s ComfyUI may stay unreachable during a wait before we give up
CANCEL_GRACE = 3.0  # s to let an interrupted prompt leave the queue after a timeout

EventCallback = Callable[[Event], None]


class PromptLost(BackendUnavailable):
    """ComfyUI no longer knows a prompt it accepted: not queued, not in history (it restarted)."""


class ComfyClient:
    """One ComfyUI backend: HTTP through one session, events through one websocket. Thread-safe."""

    def __init__(self, base_url: str, *, connect_timeout: float = 2.0, read_timeout: float = 30.0,
                 object_info_ttl: float = 60.0) -> None:
        self._http = Transport(base_url, connect_timeout, read_timeout)
        self.base_url = self._http.base_url
        self.client_id = str(uuid.uuid4())
        self._mailboxes = Mailboxes()
        self._stream = EventStream(self.base_url, self.client_id, self._mailboxes, connect_timeout)
        self._object_info_ttl = object_info_ttl
        self._object_info: tuple[float, dict[str, Any]] | None = None
        self._object_info_lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ComfyClient({self.base_url!r})"

    @property
    def queue_remaining(self) -> int | None:
        """ComfyUI's queue size (pending + running) from its last `status` message, if any yet."""
        return self._stream.queue_remaining

    @property
    def server_features(self) -> dict[str, Any]:
        """The feature flags ComfyUI answered our negotiation with (empty if it did not)."""
        return self._stream.server_features

    # --- running workflows -------------------------------------------------------------------

    def submit(self, graph: dict[str, Any], *, prompt_id: str | None = None, front: bool = False) -> str:
        """Queue an API-format graph and return its prompt id.

        The id is chosen here, and the prompt's mailbox opened, before the POST: a prompt that is
        fully cached can finish before the POST even returns.
        """
        self._check_open()
        if not isinstance(graph, dict):
            raise WorkflowRejected(f"a workflow must be a JSON object of nodes, not {type(graph).__name__}")
        prompt_id = str(prompt_id) if prompt_id is not None else str(uuid.uuid4())
        body: dict[str, Any] = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id}
        if front:
            body["front"] = True
        try:
            payload = json.dumps(body)
        except (TypeError, ValueError) as exc:
            raise WorkflowRejected(f"the workflow cannot be sent as JSON: {exc}") from exc
        box = self._mailboxes.open(prompt_id)  # before start(): catches reconnect signals too
        if not self._stream.start():
            box.fresh = True  # posted while the socket is down: its events may never come
        try:
            response = self._http.request("POST", "/prompt", data=payload,
                                          headers={"Content-Type": "application/json"})
            if response.status_code == 400:
                try:
                    answer: Any = response.json()
                except ValueError:
                    answer = response.text
                raise workflow_rejected(answer, 400)
            if response.status_code != 200:
                raise self._http.unexpected(response)
            try:
                answer = response.json()
            except ValueError as exc:
                raise self._http.unexpected(response) from exc
        except Exception:
            self._mailboxes.discard(prompt_id)
            raise
        if isinstance(answer, dict) and answer.get("node_errors"):
            log.warning("ComfyUI at %s queued prompt %s but dropped outputs that failed validation: %s",
                        self.base_url, prompt_id, workflow_rejected(answer, 200).message)
        queued_id = answer.get("prompt_id") if isinstance(answer, dict) else None
        if queued_id is not None and str(queued_id) != prompt_id:  # a server that ignores our id
            log.warning("ComfyUI at %s renamed prompt %s to %s", self.base_url, prompt_id, queued_id)
            self._mailboxes.discard(prompt_id)
            prompt_id = str(queued_id)
            self._mailboxes.open(prompt_id).fresh = True  # its first events went to the old id
        return prompt_id

    def wait(self, prompt_id: str, timeout: float, on_event: EventCallback | None = None) -> dict[str, Any]:
        """Wait for a prompt to finish and return its history entry.

        Raises ExecutionFailed / Interrupted as the history records, BackendUnavailable if ComfyUI
        lost the prompt or stayed unreachable, GenerationTimeout after `timeout` seconds (the prompt is
        then interrupted or removed from the queue).
        """
        return self._wait(prompt_id, time.monotonic() + timeout, timeout, on_event)

    def run(self, graph: dict[str, Any], timeout: float,
            on_event: EventCallback | None = None) -> list[OutputImage]:
        """Submit, wait, and fetch the images: SaveImage ("output") ones, else PreviewImage ("temp")."""
        deadline = time.monotonic() + timeout
        prompt_id = self.submit(graph)
        return self.images(prompt_id, self._wait(prompt_id, deadline, timeout, on_event))

    def _wait(self, prompt_id: str, deadline: float, timeout: float,
              on_event: EventCallback | None) -> dict[str, Any]:
        self._check_open()
        self._stream.start()
        box = self._mailboxes.claim(prompt_id)
        try:
            entry = self._follow(box, deadline, timeout, on_event)
        finally:
            self._mailboxes.release(box)
        raise_for_history(entry, prompt_id)
        return entry

    def images(self, prompt_id: str, entry: dict[str, Any]) -> list[OutputImage]:
        """Download the images a history entry lists, in node order then image order."""
        refs: dict[str, list[tuple[str, dict[str, Any]]]] = {"output": [], "temp": []}
        outputs = entry.get("outputs") if isinstance(entry.get("outputs"), dict) else {}
        for node_id, ui in outputs.items():
            for image in (ui.get("images") or []) if isinstance(ui, dict) else []:
                if isinstance(image, dict) and image.get("type") in refs and image.get("filename"):
                    refs[image["type"]].append((str(node_id), image))
        chosen = refs["output"] or refs["temp"]
        return [self._fetch(prompt_id, node_id, image) for node_id, image in chosen]

    def _fetch(self, prompt_id: str, node_id: str, image: dict[str, Any]) -> OutputImage:
        params = {"filename": image["filename"], "subfolder": image.get("subfolder") or "",
                  "type": image["type"]}
        response = self._http.request("GET", "/view", params=params)
        if response.status_code != 200:
            raise self._http.unexpected(response)
        return OutputImage(data=response.content, filename=params["filename"],
                           subfolder=params["subfolder"], type=params["type"], node_id=node_id,
                           prompt_id=prompt_id,
                           content_type=response.headers.get("Content-Type", "application/octet-stream"))

    def _follow(self, box: Mailbox, deadline: float, timeout: float,
                on_event: EventCallback | None) -> dict[str, Any]:
        """Read the prompt's events until its history entry exists; the heart of `wait`.

        /history is read when the socket says the prompt is over, after a reconnect, shortly after a
        terminal event not followed by `executing null`, often while the socket is down, and now and
        then anyway (SAFETY_POLL), so no completion depends on a single message arriving.
        """
        prompt_id = box.prompt_id
        now = time.monotonic()
        next_check = now if box.fresh or not self._stream.connected else now + SAFETY_POLL
        unreachable_since: float | None = None
        hurry = False  # the prompt is known to be over: poll briskly
        recheck = False  # just reconnected: look once more soon, in case a restart raced with us
        while True:
            now = time.monotonic()
            if now >= deadline:
                return self._give_up(prompt_id, timeout)
            event = box.get(min(deadline, next_check) - now)
            if event is not None and not event.type.startswith("_") and on_event is not None:
                _notify(on_event, event)
            if event is None or event.type == RECONNECTED or event.is_completion:
                hurry = hurry or (event is not None and event.is_completion)
                recheck = event is not None and event.type == RECONNECTED
                try:
                    entry = self._reconcile(prompt_id)
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
                brisk = hurry or unreachable_since is not None or not self._stream.connected
                pace = DISCONNECTED_POLL if brisk else RECONNECT_RECHECK if recheck else SAFETY_POLL
                next_check = time.monotonic() + pace
            elif event.type == CLOSED:
                raise BackendUnavailable(f"the client for ComfyUI at {self.base_url} was closed while "
                                         f"waiting for prompt {prompt_id}")
            elif event.type == DISCONNECTED:
                next_check = min(next_check, now + DISCONNECTED_POLL)
            elif event.type in TERMINAL_EVENTS:  # `executing null` should follow; poll if it does not
                hurry = True
                next_check = min(next_check, now + TERMINAL_GRACE)

    def _history_entry(self, prompt_id: str) -> dict[str, Any] | None:
        answer = self._http.json("GET", f"/history/{quote(prompt_id, safe='')}")
        entry = answer.get(prompt_id) if isinstance(answer, dict) else None
        return entry if isinstance(entry, dict) else None

    def _reconcile(self, prompt_id: str) -> dict[str, Any] | None:
        """The history entry if the prompt finished, None if it is still queued; raise if it vanished.

        History is read again after the queue so that a prompt finishing between the two reads is
        not mistaken for a lost one (ComfyUI moves it from queue to history atomically).
        """
        entry = self._history_entry(prompt_id)
        if entry is not None:
            return entry
        if self.queue_position(prompt_id) is not None:
            return None
        entry = self._history_entry(prompt_id)
        if entry is not None:
            return entry
        raise PromptLost(f"ComfyUI at {self.base_url} lost prompt {prompt_id} (did it restart?)",
                         {"url": self.base_url, "prompt_id": prompt_id})

    def _give_up(self, prompt_id: str, timeout: float) -> dict[str, Any]:
        """After a timeout: stop the prompt (interrupt if running, dequeue if pending), then raise.

        A prompt that finished by itself just as time ran out is not stopped: its entry is returned
        and judged like any other.
        """
        end = time.monotonic() + CANCEL_GRACE
        acted, outcome = False, "it could not be stopped"
        try:
            while time.monotonic() < end:
                queue = self.queue()
                if prompt_id in queue["running"]:
                    if outcome != "it was interrupted":
                        self.interrupt(prompt_id)
                    acted, outcome = True, "it was interrupted"
                elif prompt_id in queue["pending"]:
                    self.delete_from_queue([prompt_id])
                    acted, outcome = True, "it was removed from the queue"
                else:
                    break
                time.sleep(0.05)
            else:
                outcome = "it was asked to stop but is still in the queue"
            entry = None if acted else self._history_entry(prompt_id)
        except BackendUnavailable as exc:
            entry, outcome = None, f"stopping it failed: {exc.message}"
        if entry is not None:
            return entry
        raise GenerationTimeout(f"ComfyUI at {self.base_url} did not finish prompt {prompt_id} within "
                                f"{timeout:g} s; {outcome}", {"prompt_id": prompt_id})

    # --- queue control ------------------------------------------------------------------------

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt `prompt_id` if it is the running prompt; with no id, whatever is running."""
        body = {"prompt_id": prompt_id} if prompt_id is not None else {}
        response = self._http.post_json("/interrupt", body)
        if response.status_code != 200:
            raise self._http.unexpected(response)

    def delete_from_queue(self, ids: Iterable[str]) -> None:
        """Remove pending prompts (running ones need `interrupt`); unknown ids are ignored."""
        response = self._http.post_json("/queue", {"delete": [str(i) for i in ids]})
        if response.status_code != 200:
            raise self._http.unexpected(response)

    def queue(self) -> dict[str, list[str]]:
        """`{"running": [ids], "pending": [ids]}`, pending sorted in run order (the server's is a heap)."""
        answer = self._http.json("GET", "/queue")
        answer = answer if isinstance(answer, dict) else {}

        def items(key: str) -> list[list[Any]]:
            return [i for i in answer.get(key) or [] if isinstance(i, list) and len(i) >= 2]

        pending = sorted(items("queue_pending"), key=lambda i: (_number(i[0]), str(i[1])))
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

    # --- files --------------------------------------------------------------------------------

    def upload_image(self, data: bytes, name: str, *, overwrite: bool = False, subfolder: str = "") -> str:
        """Upload an input image; returns the name to give LoadImage (`subfolder/name` if any).

        ComfyUI may rename the file (`x (1).png`) when a different file has that name, so always use
        the returned value.
        """
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise BadRequest(f"image name {name!r} must be a plain file name")
        if ".." in subfolder.replace("\\", "/").split("/") or subfolder.startswith(("/", "\\")):
            raise BadRequest(f"subfolder {subfolder!r} must stay inside ComfyUI's input folder")
        fields = {"overwrite": "true" if overwrite else "false", "type": "input", "subfolder": subfolder}
        response = self._http.request("POST", "/upload/image", files={"image": (name, bytes(data))},
                                      data=fields)
        if response.status_code != 200:
            raise self._http.unexpected(response)
        try:
            answer = response.json()
            stored = str(answer["name"])
        except (ValueError, KeyError, TypeError) as exc:
            raise self._http.unexpected(response) from exc
        folder = str(answer.get("subfolder") or "").strip("/")
        return f"{folder}/{stored}" if folder else stored

    # --- information --------------------------------------------------------------------------

    def system_stats(self) -> dict[str, Any]:
        """ComfyUI's versions and devices (GET /system_stats)."""
        return self._http.json("GET", "/system_stats")

    def ping(self) -> bool:
        """Whether ComfyUI answers at all; never raises."""
        try:
            response = self._http.request("GET", "/prompt")
        except BackendUnavailable:
            return False
        return response.status_code == 200

    def object_info(self, refresh: bool = False) -> dict[str, Any]:
        """GET /object_info, cached for `object_info_ttl` seconds (0.5 MB, computed live by ComfyUI)."""
        with self._object_info_lock:
            cached = self._object_info
            if refresh or cached is None or time.monotonic() - cached[0] > self._object_info_ttl:
                info = self._http.json("GET", "/object_info")
                cached = self._object_info = (time.monotonic(), info if isinstance(info, dict) else {})
            return cached[1]

    def checkpoints(self) -> list[Any]:
        return objectinfo.named_choices(self.object_info(), "checkpoints")

    def unets(self) -> list[Any]:
        return objectinfo.named_choices(self.object_info(), "unets")

    def vaes(self) -> list[Any]:
        return objectinfo.named_choices(self.object_info(), "vaes")

    def loras(self) -> list[Any]:
        return objectinfo.named_choices(self.object_info(), "loras")

    def samplers(self) -> list[Any]:
        return objectinfo.named_choices(self.object_info(), "samplers")

    def schedulers(self) -> list[Any]:
        return objectinfo.named_choices(self.object_info(), "schedulers")

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailable(f"the client for ComfyUI at {self.base_url} is closed")

    def close(self) -> None:
        """Stop the reader thread, close the socket and the HTTP session. Idempotent."""
        self._closed = True
        self._stream.close()
        self._http.close()


def _notify(on_event: EventCallback, event: Event) -> None:
    """Call the caller's callback; its failure is logged, never allowed to lose the run."""
    try:
        on_event(event)
    except Exception:
        log.exception("on_event callback failed for %s event", event.type)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("inf")
