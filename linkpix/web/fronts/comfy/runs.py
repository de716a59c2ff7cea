"""The ComfyUI front's prompts: queue, history and events, per user, over the shared generator.

`POST /prompt` becomes a `FrontPrompt` run on its own thread through `Generator.generate` (cache and
single-flight keyed on the graph). The POST waits until the backend accepted the graph (or refused it,
so ComfyUI's own validation errors reach the client) and answers with LinkPix's prompt id; the backend's
events are passed to the client's socket under that id. The image LinkPix stores is reported as the
output, and the history entry is written before `executing {node: null}` is sent, as ComfyUI does.
History is kept in memory, like ComfyUI's; `/history` is read by SillyTavern every 100 ms, so each user's
whole map is kept serialised and rebuilt only when an entry changes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from linkpix.comfy import Event
from linkpix.comfy.pool import ModelMissing
from linkpix.errors import ExecutionFailed, Interrupted, LinkPixError, WorkflowRejected
from linkpix.model import RenderedJob
from linkpix.pipeline.flight import SUBMITTED, Cancelled, Ticket
from linkpix.pipeline.generator import Generator
from linkpix.storage.cache import CachedImage
from linkpix.web.fronts.comfy.ws import SocketHub

log = logging.getLogger(__name__)

MAX_HISTORY = 2000  # entries kept per user (ComfyUI keeps 10000 in all)
ACCEPT_WAIT = 60.0  # s POST /prompt waits for the backend to accept before answering anyway
# Backend events passed to the client as they are (with LinkPix's prompt id); the terminal ones, `executed`
# and `executing null` are LinkPix's own, sent once the image is stored.
PASSED = frozenset({"execution_start", "execution_cached", "executing", "progress", "progress_state"})
OUTPUT_CLASSES = ("SaveImage", "PreviewImage")


@dataclass
class FrontPrompt:
    prompt_id: str
    number: int
    user: str
    client_id: str | None
    graph: dict[str, Any]  # as the client sent it (shown in /queue and /history)
    extra_data: dict[str, Any]
    outputs: list[str]
    ticket: Ticket = field(default_factory=Ticket)
    accepted: threading.Event = field(default_factory=threading.Event)
    running: bool = False
    rejection: LinkPixError | None = None
    messages: list[list[Any]] = field(default_factory=list)
    terminal: tuple[str, dict[str, Any]] | None = None  # the backend's own error/interrupt message

    def item(self) -> list[Any]:
        return [self.number, self.prompt_id, self.graph, self.extra_data, self.outputs]


class ComfyFront:
    """Prompts, queue and history of the ComfyUI front; one per app."""

    def __init__(self, generator: Generator, hub: SocketHub, object_info: Callable[[], dict[str, Any] | None]):
        self.generator = generator
        self.hub = hub
        self._object_info = object_info
        self._lock = threading.Lock()
        self._counter = 0
        self._queue: dict[str, FrontPrompt] = {}  # prompt id -> unfinished prompt
        self._history: dict[str, OrderedDict[str, dict[str, Any]]] = {}
        self._serialised: dict[str, bytes] = {}

    # ------------------------------------------------------------------------------------ submitting
    def submit(self, user: str, graph: dict[str, Any], job: RenderedJob, client_id: str | None,
               prompt_id: str | None, extra_data: dict[str, Any]) -> FrontPrompt:
        """Start the run and wait until the backend accepted it, refused it, or it finished."""
        with self._lock:
            number = self._counter
            self._counter += 1
        extra = {**extra_data, "client_id": client_id} if client_id else dict(extra_data)
        fp = FrontPrompt(str(prompt_id or uuid.uuid4()), number, user, client_id, graph, extra,
                         self.output_nodes(graph))
        with self._lock:
            self._queue[fp.prompt_id] = fp
        self._status(user)
        if self.generator.cache.get(user, self.generator.key_for(job)) is not None:
            self._run(fp, job)  # answered from the cache: no thread, no waiting
            return fp
        threading.Thread(target=self._run, args=(fp, job), name=f"comfy-front-{fp.prompt_id[:8]}",
                         daemon=True).start()
        fp.accepted.wait(ACCEPT_WAIT)
        return fp

    def output_nodes(self, graph: dict[str, Any]) -> list[str]:
        """Ids of the graph's output nodes (object_info's `output_node`; known savers when it is unknown)."""
        info = self._object_info() or {}
        out = []
        for node_id, node in graph.items():
            cls = node.get("class_type") if isinstance(node, dict) else None
            spec = info.get(cls) if isinstance(cls, str) else None
            if (isinstance(spec, dict) and spec.get("output_node")) or (not info and cls in OUTPUT_CLASSES):
                out.append(str(node_id))
        return out

    def _run(self, fp: FrontPrompt, job: RenderedJob) -> None:
        image: CachedImage | None = None
        error: LinkPixError | None = None
        cache_hit = False
        try:
            outcome = self.generator.generate(job, fp.user, lambda e: self._on_event(fp, e), ticket=fp.ticket)
            image, cache_hit = outcome.image, outcome.cache_hit
        except LinkPixError as exc:
            error = exc
        except Exception as exc:  # a bug must not leave the client polling forever
            log.exception("ComfyUI front run %s failed", fp.prompt_id)
            error = ExecutionFailed(f"internal error: {exc}")
        with self._lock:
            self._queue.pop(fp.prompt_id, None)
        if error is not None and not fp.accepted.is_set():
            fp.rejection = error  # refused before it ran: POST /prompt answers with the error
            fp.accepted.set()
            self._status(fp.user)
            return
        if isinstance(error, Cancelled) and not fp.running:  # removed from the queue: no history, as in ComfyUI
            fp.accepted.set()
            self._status(fp.user)
            return
        if image is not None and not fp.messages:  # from the cache: ComfyUI's "everything cached" run
            self._message(fp, "execution_start", {"prompt_id": fp.prompt_id, "timestamp": _ms()})
            self._message(fp, "execution_cached", {"nodes": list(fp.graph), "prompt_id": fp.prompt_id,
                                                   "timestamp": _ms()})
        entry = self._finish(fp, image, error)
        self._record(fp.user, fp.prompt_id, entry)
        fp.accepted.set()  # a graph answered from the cache: its history is there when POST /prompt returns
        self._status(fp.user)
        self.hub.send(fp.user, fp.client_id, "executing", {"node": None, "prompt_id": fp.prompt_id})
        log.debug("comfy front prompt %s done (cache %s)", fp.prompt_id, "hit" if cache_hit else "miss")

    def _finish(self, fp: FrontPrompt, image: CachedImage | None, error: LinkPixError | None) -> dict[str, Any]:
        """Send the terminal messages and build the history entry."""
        outputs: dict[str, Any] = {}
        if image is not None:
            picture = image.meta.get("media", "image") == "image"
            node = self._image_node(fp) if picture else str(image.meta.get("node_id") or self._image_node(fp))
            # listed as ComfyUI lists it: SaveAudio's under `audio`, SaveVideo's under `images` with `animated`
            kind = str(image.meta.get("comfy_kind") or "images")
            ui: dict[str, Any] = {kind: [{"filename": image.filename, "subfolder": "", "type": "output"}]}
            if image.meta.get("media") == "video" and kind == "images":
                ui["animated"] = [True]
            outputs[node] = ui
            self.hub.send(fp.user, fp.client_id, "executed",
                          {"node": node, "display_node": node, "output": ui, "prompt_id": fp.prompt_id})
            self._message(fp, "execution_success", {"prompt_id": fp.prompt_id, "timestamp": _ms()})
            status = "success"
        else:
            kind, data = fp.terminal or _terminal_of(error, fp.prompt_id)
            self._message(fp, kind, {**data, "prompt_id": fp.prompt_id, "timestamp": _ms()})
            status = "error"
        meta = {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n} for n in outputs}
        return {"prompt": fp.item(), "outputs": outputs,
                "status": {"status_str": status, "completed": status == "success", "messages": fp.messages},
                "meta": meta}

    def _image_node(self, fp: FrontPrompt) -> str:
        for cls in OUTPUT_CLASSES:
            for node_id, node in fp.graph.items():
                if isinstance(node, dict) and node.get("class_type") == cls:
                    return str(node_id)
        return fp.outputs[0] if fp.outputs else next(iter(fp.graph), "0")

    def _message(self, fp: FrontPrompt, kind: str, data: dict[str, Any]) -> None:
        """A message that also goes into the history entry's status.messages."""
        fp.messages.append([kind, data])
        self.hub.send(fp.user, fp.client_id, kind, data)

    def _on_event(self, fp: FrontPrompt, event: Event) -> None:
        """A backend event of this prompt's run, told to the client under LinkPix's prompt id."""
        if event.type == SUBMITTED:
            fp.accepted.set()
            return
        data = {**event.data, "prompt_id": fp.prompt_id}
        if event.type == "execution_start":
            fp.running = True
            self._message(fp, event.type, data)
        elif event.type == "execution_cached":
            self._message(fp, event.type, data)
        elif event.type in ("execution_error", "execution_interrupted"):
            fp.terminal = (event.type, data)
        elif event.type == "executing" and event.data.get("node") is None:
            return  # LinkPix sends its own once the image is stored
        elif event.type in PASSED:
            self.hub.send(fp.user, fp.client_id, event.type, data)
        elif event.type == "preview" and event.image:
            node = str(event.data.get("node_id") or "")
            meta = {"node_id": node, "prompt_id": fp.prompt_id, "display_node_id": node,
                    "parent_node_id": None, "real_node_id": node}
            self.hub.send_preview(fp.user, fp.client_id, event.image, event.image_mime, meta)

    # ------------------------------------------------------------------------------------- reading
    def _record(self, user: str, prompt_id: str, entry: dict[str, Any]) -> None:
        with self._lock:
            history = self._history.setdefault(user, OrderedDict())
            history.pop(prompt_id, None)
            history[prompt_id] = entry
            while len(history) > MAX_HISTORY:
                history.popitem(last=False)
            self._serialised.pop(user, None)

    def history_bytes(self, user: str) -> bytes:
        """The user's whole history as JSON, serialised once per change."""
        data = self._serialised.get(user)
        if data is None:
            with self._lock:
                data = json.dumps(self._history.get(user, {})).encode()
                self._serialised[user] = data
        return data

    def history(self, user: str, prompt_id: str | None = None, max_items: int | None = None,
                offset: int = 0) -> dict[str, Any]:
        with self._lock:
            history = self._history.get(user, OrderedDict())
            if prompt_id is not None:
                entry = history.get(prompt_id)
                return {prompt_id: entry} if entry is not None else {}
            items = list(history.items())
        if max_items is not None and not offset:
            items = items[-max_items:] if max_items > 0 else []
        else:
            items = items[offset:offset + max_items] if max_items is not None else items[offset:]
        return dict(items)

    def delete_history(self, user: str, ids: list[str] | None) -> None:
        with self._lock:
            history = self._history.get(user)
            if history is not None:
                for pid in list(history) if ids is None else ids:
                    history.pop(str(pid), None)
            self._serialised.pop(user, None)

    def queue(self, user: str) -> dict[str, list[list[Any]]]:
        with self._lock:
            mine = [fp for fp in self._queue.values() if fp.user == user]
        mine.sort(key=lambda fp: fp.number)
        return {"queue_running": [fp.item() for fp in mine if fp.running],
                "queue_pending": [fp.item() for fp in mine if not fp.running]}

    def remaining(self, user: str) -> int:
        with self._lock:
            return sum(1 for fp in self._queue.values() if fp.user == user)

    def cancel(self, user: str, ids: list[str] | None = None, *, running: bool) -> int:
        """Leave the runs of these (or all) of the user's prompts that are running (or pending)."""
        with self._lock:
            targets = [fp for fp in self._queue.values() if fp.user == user and fp.running == running
                       and (ids is None or fp.prompt_id in ids)]
        for fp in targets:
            fp.ticket.cancel()
        return len(targets)

    def _status(self, user: str) -> None:
        self.hub.broadcast(user, "status", {"status": {"exec_info": {"queue_remaining": self.remaining(user)}}})


def _terminal_of(error: LinkPixError | None, prompt_id: str) -> tuple[str, dict[str, Any]]:
    """The ComfyUI message for a run LinkPix ended (timeout, cancel, lost backend) or the backend failed."""
    details = error.details if error is not None and isinstance(error.details, dict) else {}
    if isinstance(error, Cancelled | Interrupted):
        return "execution_interrupted", {"node_id": details.get("node_id"), "node_type": details.get("node_type"),
                                         "executed": []}
    message = error.message if error is not None else "no image"
    return "execution_error", {"node_id": details.get("node_id"), "node_type": details.get("node_type"),
                               "executed": [], "exception_message": message,
                               "exception_type": f"linkpix.{type(error).__name__}" if error else "linkpix.Error",
                               "traceback": [], "current_inputs": {}, "current_outputs": []}


def _ms() -> int:
    return int(time.time() * 1000)


def rejection_body(error: LinkPixError) -> tuple[dict[str, Any], int]:
    """What ComfyUI answers a refused POST /prompt: its own body for a validation error."""
    if isinstance(error, WorkflowRejected):
        comfy_error = error.error if isinstance(error.error, dict) else {
            "type": "invalid_prompt", "message": error.message, "details": "", "extra_info": {}}
        return {"error": comfy_error, "node_errors": error.node_errors}, 400
    if isinstance(error, ModelMissing):  # no backend of the pool has a model: what ComfyUI would answer
        return error.comfyui_body, 400
    extra = {"rule": error.rule} if error.rule else {}  # a rule no schema states (errors.RULES), by name
    return {"error": {"type": error.code, "message": error.message, "details": "", "extra_info": extra},
            "node_errors": {}}, error.status

