"""`ComfyClient`: submit a workflow to one ComfyUI, follow it (`follow.py`), and collect its images.

A frozen ComfyUI must never hold a caller for long: control calls have a short timeout, a backend known
to be frozen refuses new work at once (`health.py`), and a prompt that must stop but could not be
stopped (a timeout, a cancel, a submit whose answer never came) goes to the durable stop list, which the
backend's keeper drains until ComfyUI confirms (`stops.py`, `keeper.py`).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from linkpix.comfy import objectinfo
from linkpix.comfy.events import Event, ImageRef, OutputImage, output_refs
from linkpix.comfy.failures import workflow_rejected
from linkpix.comfy.features import ServerFeatures
from linkpix.comfy.follow import ClientClosed, Follower, PromptLost
from linkpix.comfy.health import Health
from linkpix.comfy.infocache import ObjectInfoCache
from linkpix.comfy.keeper import Keeper
from linkpix.comfy.queue import QueueControl
from linkpix.comfy.stops import StopList
from linkpix.comfy.stream import EventStream
from linkpix.comfy.transport import CONTROL_TIMEOUT, Transport, display_url, never_sent
from linkpix.comfy.waiters import DISCONNECTED, Mailboxes
from linkpix.errors import BackendUnavailable, BadRequest, WorkflowRejected

log = logging.getLogger(__name__)

EventCallback = Callable[[Event], None]

__all__ = ["ClientClosed", "ComfyClient", "PromptLost"]


class ComfyClient:
    """One ComfyUI backend: HTTP through one session, events through one websocket. Thread-safe.

    `name` is how logs, errors and /health call the backend (default: its host and port, never its
    password); `stops` is the durable stop list shared by the pool (default: one in memory).
    """

    def __init__(self, base_url: str, *, connect_timeout: float = 2.0, read_timeout: float = 30.0,
                 control_timeout: float = CONTROL_TIMEOUT, object_info_ttl: float = 60.0,
                 name: str | None = None, stops: StopList | None = None) -> None:
        shown = display_url(str(base_url).strip())
        self.name = name or default_name(shown)
        self.health = Health(f"at {shown}" if name is None else f"{name} at {shown}")
        self._http = Transport(base_url, connect_timeout, read_timeout, control_timeout, self.health)
        self.base_url = self._http.base_url
        self.shown_url = self._http.shown_url
        self.control_timeout = control_timeout
        self.features = ServerFeatures(self._http)  # what this server has beyond 0.3.64 (jobs routes...)
        self.client_id = str(uuid.uuid4())
        self.connect_timeout = connect_timeout
        self._mailboxes = Mailboxes()
        # A frozen backend keeps its websocket open and silent: waiters look at /history at once instead of
        # at their next safety poll, so a run fails over (or times out) without waiting for it.
        self.health.on_down = lambda: self._mailboxes.broadcast(DISCONNECTED)
        self._stream = EventStream(self.base_url, self.client_id, self._mailboxes, connect_timeout,
                                   self.health, self.shown_url)
        self._info = ObjectInfoCache(self._http, self.health, object_info_ttl)
        self._own_stops = stops is None
        self.stops = stops if stops is not None else StopList(None)
        self._closed = False
        self.control = QueueControl(self._http, self.features)  # queue, position, dequeue, interrupt
        self.keeper = Keeper(self._http, self.health, self.features, self.stops, self.control, self._info)
        self._follower = Follower(self._http, self._stream, self._mailboxes, self.client_id, self.features,
                                  self.health, self.stops, self.control, self.keeper.wake, connect_timeout)
        self.keeper.start()
        self.preview_method = "auto"  # sent as extra_data.preview_method (docs/live.md); "default": not sent

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ComfyClient({self.base_url!r})"

    @staticmethod
    def shown(url: str) -> str:
        """A URL as logs and messages show it: without user and password."""
        return display_url(url)

    @property
    def queue_remaining(self) -> int | None:
        """ComfyUI's queue size (pending + running): the newer of its last `status` message and the
        keeper's last probe (None before either)."""
        stream, keeper = self._stream, self.keeper
        if stream.queue_remaining is None or (keeper.queue_remaining is not None and keeper.queue_at > stream.queue_at):
            return keeper.queue_remaining
        return stream.queue_remaining

    @property
    def server_features(self) -> dict[str, Any]:
        """The feature flags ComfyUI answered our negotiation with (empty if it did not)."""
        return self._stream.server_features

    # --- running workflows -------------------------------------------------------------------

    def submit(self, graph: dict[str, Any], *, prompt_id: str | None = None, front: bool = False,
               extra_data: dict[str, Any] | None = None) -> str:
        """Queue an API-format graph and return its prompt id.

        The id is chosen here, as a canonical lowercase UUID (newer ComfyUI requires one), and the
        prompt's mailbox opened, before the POST: a prompt that is fully cached can finish before the POST
        even returns, and a POST whose answer never came can still be found and removed by its id.
        """
        self._check_open()
        self._http.check_usable()
        if not isinstance(graph, dict):
            raise WorkflowRejected(f"a workflow must be a JSON object of nodes, not {type(graph).__name__}")
        prompt_id = canonical_prompt_id(prompt_id)
        body: dict[str, Any] = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id}
        if front:
            body["front"] = True
        extra = dict(extra_data or {})  # a run's partner-node key (pipeline/secrets.py): sent, never logged
        if self.preview_method != "default":  # per-prompt previews (ComfyUI PR 11261); older ones ignore it
            extra["preview_method"] = self.preview_method
        if extra:
            body["extra_data"] = extra
        try:
            payload = json.dumps(body)
        except (TypeError, ValueError) as exc:
            raise WorkflowRejected(f"the workflow cannot be sent as JSON: {exc}") from exc
        box = self._mailboxes.open(prompt_id)  # before start(): catches reconnect signals too
        if not self._stream.start():
            box.fresh = True  # posted while the socket is down: its events may never come
        try:
            try:
                response = self._http.request("POST", "/prompt", data=payload, control=True,
                                              headers={"Content-Type": "application/json"})
            except BackendUnavailable as exc:
                if not never_sent(exc):  # ComfyUI may queue it yet: have it removed when it answers
                    self.stop(prompt_id, "its submit got no answer", unconfirmed=True, now=False)
                raise
            if response.status_code == 400:
                try:
                    answer: Any = response.json()
                except ValueError:
                    answer = response.text
                raise workflow_rejected(answer, 400)
            answer = self._http.answer_json(response)
        except Exception:
            self._mailboxes.discard(prompt_id)
            raise
        if isinstance(answer, dict) and answer.get("node_errors"):
            log.warning("ComfyUI at %s queued prompt %s but dropped outputs that failed validation: %s",
                        self.shown_url, prompt_id, workflow_rejected(answer, 200).message)
        queued_id = answer.get("prompt_id") if isinstance(answer, dict) else None
        if queued_id is not None and str(queued_id) != prompt_id:  # a server that ignores our id
            log.warning("ComfyUI at %s renamed prompt %s to %s", self.shown_url, prompt_id, queued_id)
            self._mailboxes.discard(prompt_id)
            prompt_id = str(queued_id)
            self._mailboxes.open(prompt_id).fresh = True  # its first events went to the old id
        return prompt_id

    def wait(self, prompt_id: str, timeout: float, on_event: EventCallback | None = None, *,
             reattach: bool = False, budget: float | None = None) -> dict[str, Any]:
        """Wait for a prompt to finish and return its history entry.

        Raises ExecutionFailed / Interrupted as the history records, BackendUnavailable if ComfyUI
        lost the prompt (PromptLost) or stayed unreachable for a few seconds, GenerationTimeout after
        `timeout` seconds (the prompt is then stopped, or left in the stop list: `Follower.give_up`).
        `reattach`: the prompt was submitted by another client (a LinkPix before a restart); its events
        are followed under that client's id, so its progress is seen. `budget`: the run's whole timeout,
        for the message, when this wait has only what is left of it.
        """
        self._check_open()
        return self._follower.wait(prompt_id, time.monotonic() + timeout, budget or timeout, on_event, reattach)

    def run(self, graph: dict[str, Any], timeout: float,
            on_event: EventCallback | None = None) -> list[OutputImage]:
        """Submit, wait, and fetch the images: SaveImage ("output") ones, else PreviewImage ("temp")."""
        deadline = time.monotonic() + timeout
        prompt_id = self.submit(graph)
        self._check_open()
        return self.images(prompt_id, self._follower.wait(prompt_id, deadline, timeout, on_event))

    def images(self, prompt_id: str, entry: dict[str, Any]) -> list[OutputImage]:
        """Download the images a history entry lists, in node order then image order."""
        return [self.fetch_image(prompt_id, ref) for ref in output_refs(entry.get("outputs"))]

    def fetch_image(self, prompt_id: str, ref: ImageRef) -> OutputImage:
        """Download one image a prompt produced (GET /view), named as its history or `executed` event lists it."""
        node_id, image = ref
        params = {"filename": image["filename"], "subfolder": image.get("subfolder") or "",
                  "type": image["type"]}
        response = self._http.expect_ok(self._http.request("GET", "/view", params=params))
        return OutputImage(data=response.content, filename=params["filename"],
                           subfolder=params["subfolder"], type=params["type"], node_id=node_id,
                           prompt_id=prompt_id,
                           content_type=response.headers.get("Content-Type", "application/octet-stream"),
                           kind=str(image.get("kind") or "images"))

    def stop(self, prompt_id: str, reason: str, *, unconfirmed: bool = False, now: bool = True) -> None:
        """Make sure `prompt_id` leaves ComfyUI (dequeued if pending, interrupted if running).

        Recorded in the durable stop list first; with `now`, one quick try follows at once unless the
        backend is known to be frozen. The keeper retries until ComfyUI confirms, so this never waits
        long and never forgets. `unconfirmed`: the submit got no answer, ComfyUI may queue it later.
        """
        self.stops.add(self.base_url, prompt_id, reason, unconfirmed=unconfirmed)
        if now and not self.health.frozen and not self._closed:
            try:
                self.control.stop_now(prompt_id)
            except BackendUnavailable as exc:
                log.info("could not stop prompt %s yet (%s); it stays in the stop list", prompt_id, exc.message)
        self.keeper.wake()

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
        answer = self._http.answer_json(response)
        try:
            stored = str(answer["name"])
        except (KeyError, TypeError) as exc:
            raise self._http.unexpected(response) from exc
        folder = str(answer.get("subfolder") or "").strip("/")
        return f"{folder}/{stored}" if folder else stored

    # --- information --------------------------------------------------------------------------

    def system_stats(self) -> dict[str, Any]:
        """ComfyUI's versions and devices (GET /system_stats)."""
        return self._http.json("GET", "/system_stats", control=True)

    def ping(self) -> bool:
        """Whether ComfyUI answers at all; never raises."""
        try:
            response = self._http.request("GET", "/prompt", control=True)
        except BackendUnavailable:
            return False
        return response.status_code == 200

    def object_info(self, refresh: bool = False) -> dict[str, Any]:
        """GET /object_info, cached for `object_info_ttl` seconds (0.5 MB, computed live by ComfyUI).

        While the backend is known to be frozen, a cached answer is returned however old it is.
        """
        return self._info.get(refresh)

    def cached_object_info(self) -> dict[str, Any] | None:
        """The last object_info answer, without asking ComfyUI (None before the first)."""
        return self._info.cached()

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
            raise ClientClosed(f"the client for ComfyUI at {self.shown_url} is closed")

    def close(self) -> None:
        """Stop the keeper and the reader threads, close the sockets and the HTTP session. Idempotent."""
        self._closed = True
        self.keeper.close()
        self._stream.close()
        self._follower.close()
        self._http.close()
        if self._own_stops:
            self.stops.close()


def default_name(shown_url: str) -> str:
    """`host:port[/path]` of a URL already stripped of credentials: a readable, stable backend name."""
    return shown_url.split("://", 1)[-1]


def canonical_prompt_id(prompt_id: str | None) -> str:
    """A new prompt id, or the given one as a canonical lowercase UUID (BadRequest if it is none)."""
    if prompt_id is None:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(str(prompt_id)))
    except ValueError:
        raise BadRequest(f"prompt id {prompt_id!r} is not a UUID") from None

