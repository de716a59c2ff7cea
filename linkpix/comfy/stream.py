"""The one websocket per client and the one thread that reads it.

ComfyUI sends execution events only to the socket registered under the prompt's `client_id`
(reference §8.3), so a client keeps one socket open with a stable id and fans events out by
`prompt_id`. When the socket drops, events sent meanwhile are lost for good (§8.1): the reader
reconnects with backoff (tenacity) and tells every waiter to reconcile through /history.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from typing import Any

import websocket
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_when_event_set
from tenacity.wait import wait_exponential_jitter

from linkpix.comfy.events import PROMPT_EVENTS, Event, decode_binary_frame, parse_text_frame
from linkpix.comfy.health import Health
from linkpix.comfy.waiters import CLOSED, DISCONNECTED, RECONNECTED, Mailboxes

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 20.0  # seconds without a frame before we ping; twice in a row means the peer is gone
FEATURE_FLAGS = {"type": "feature_flags", "data": {"supports_preview_metadata": True}}


class EventStream:
    """Reads ComfyUI's websocket on a daemon thread and delivers events to `mailboxes`."""

    def __init__(self, base_url: str, client_id: str, mailboxes: Mailboxes, connect_timeout: float,
                 health: Health | None = None, shown_url: str | None = None) -> None:
        scheme, rest = base_url.split("://", 1)
        self.ws_url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws?clientId={client_id}"
        self.base_url = shown_url or base_url  # for logs: never a password
        self._health = health
        self._mailboxes = mailboxes
        self._connect_timeout = connect_timeout
        self._closed = threading.Event()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._ws: websocket.WebSocket | None = None
        self._connected = False
        self._current_prompt: str | None = None  # reader thread only
        self._failures = 0  # consecutive failed connection attempts
        self._attempted = False  # a first connection attempt has finished (either way)
        self.queue_remaining: int | None = None
        self.queue_at = 0.0  # monotonic time of `queue_remaining`
        self.server_features: dict[str, Any] = {}

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> bool:
        """Start the reader once (lazily) and wait until its first connection attempt has finished.

        Returns whether the socket is connected. Not being connected is not an error: waiters then
        poll /history until the reader gets through.
        """
        with self._cond:
            if self._closed.is_set():
                return False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"comfy-ws {self.base_url}",
                                                daemon=True)
                self._thread.start()
            self._cond.wait_for(lambda: self._attempted or self._closed.is_set(),
                                timeout=2 * self._connect_timeout + 0.5)
            return self._connected

    def close(self, broadcast: bool = True) -> None:
        """Stop the reader thread and close the socket; waiters are told with a CLOSED signal (unless
        this is a second socket of the client, whose waiters go on with the first)."""
        self._closed.set()
        with self._cond:
            ws = self._ws
            thread = self._thread
            self._cond.notify_all()
        if ws is not None:
            _shutdown(ws)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._connect_timeout + 2.0)
        if broadcast:
            self._mailboxes.broadcast(CLOSED)

    # --- reader thread ---------------------------------------------------------------------

    def _run(self) -> None:
        first = True
        while not self._closed.is_set():
            try:
                first = self._session(first)
            except Exception:  # a bug here must not silently end every prompt's events
                log.exception("websocket reader for ComfyUI at %s failed; restarting it", self.base_url)
                self._closed.wait(1.0)

    def _session(self, first: bool) -> bool:
        """Connect (with backoff), read until the socket drops; returns whether it is still `first`."""
        ws = self._connect_with_backoff()
        if ws is None:
            return first
        with self._cond:
            self._ws, self._connected, self._failures, self._attempted = ws, True, 0, True
            self._cond.notify_all()
        if self._health is not None:
            self._health.answered()
        if self._closed.is_set():
            _shutdown(ws)
            return False
        if not first:
            log.info("reconnected to ComfyUI at %s", self.base_url)
            self._mailboxes.broadcast(RECONNECTED)
        try:
            self._read(ws)
        except (OSError, websocket.WebSocketException) as exc:
            if not self._closed.is_set():
                log.warning("lost the websocket to ComfyUI at %s: %s", self.base_url, exc)
        finally:
            with self._cond:
                self._ws, self._connected = None, False
            self._current_prompt = None
            _shutdown(ws)
        if not self._closed.is_set():
            self._mailboxes.broadcast(DISCONNECTED)
        return False

    def _connect_with_backoff(self) -> websocket.WebSocket | None:
        retrying = Retrying(
            retry=retry_if_exception_type((OSError, websocket.WebSocketException)),
            wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05),
            stop=stop_when_event_set(self._closed),
            sleep=self._closed.wait,
            before_sleep=self._attempt_failed,
        )
        try:
            return retrying(self._connect)
        except (RetryError, OSError, websocket.WebSocketException):
            return None

    def _attempt_failed(self, retry_state: Any) -> None:
        with self._cond:
            self._failures += 1
            self._attempted = True
            self._cond.notify_all()
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if self._failures == 1:
            log.warning("cannot open the websocket to ComfyUI at %s (%s); retrying", self.base_url, exc)

    def _connect(self) -> websocket.WebSocket:
        """Open the socket, negotiate preview metadata, and read the server's `status` hello.

        ComfyUI registers our clientId before it sends the hello, so only after it do events for our
        prompts reach this socket; until then a submitted prompt's events could go nowhere.
        """
        # No UTF-8 check of text frames: websocket-client does it in Python, byte by byte (3 % of the API's
        # CPU on a v2 job); every text frame is JSON, which json.loads decodes and checks anyway.
        ws = websocket.create_connection(self.ws_url, timeout=self._connect_timeout, suppress_origin=True,
                                         enable_multithread=True, skip_utf8_validation=True)
        try:
            ws.send(json.dumps(FEATURE_FLAGS))
            opcode, frame = ws.recv_data_frame(control_frame=True)
            self._dispatch(opcode, frame.data)
        except websocket.WebSocketTimeoutException:
            log.warning("ComfyUI at %s sent no status hello on its websocket", self.base_url)
        except BaseException:
            _shutdown(ws)
            raise
        ws.settimeout(IDLE_TIMEOUT)
        return ws

    def _read(self, ws: websocket.WebSocket) -> None:
        silent = 0
        while not self._closed.is_set():
            try:
                opcode, frame = ws.recv_data_frame(control_frame=True)
            except websocket.WebSocketTimeoutException:
                silent += 1
                if silent >= 2:
                    log.warning("ComfyUI at %s stopped answering on the websocket", self.base_url)
                    return
                ws.ping()
                continue
            silent = 0
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return
            self._dispatch(opcode, frame.data)

    def _dispatch(self, opcode: int, data: Any) -> None:
        try:
            if opcode == websocket.ABNF.OPCODE_TEXT:
                self._on_text(data)
            elif opcode == websocket.ABNF.OPCODE_BINARY:
                self._on_binary(data)
        except Exception:  # one bad frame must not stop events for every prompt
            log.exception("ignored a websocket frame from ComfyUI at %s", self.base_url)

    def _on_text(self, text: str | bytes) -> None:
        event = parse_text_frame(text)
        if event is None:
            return
        if event.type == "status":
            status = event.data.get("status")
            exec_info = status.get("exec_info") if isinstance(status, dict) else None
            if isinstance(exec_info, dict) and isinstance(exec_info.get("queue_remaining"), int):
                self.queue_remaining, self.queue_at = exec_info["queue_remaining"], time.monotonic()
        elif event.type == "feature_flags":
            self.server_features = dict(event.data)
        elif event.type in PROMPT_EVENTS:
            self._track_current(event)
            self._mailboxes.deliver(event)
        else:
            log.debug("ignoring ComfyUI message of type %r", event.type)

    def _track_current(self, event: Event) -> None:
        """Remember which prompt is executing, to attribute legacy previews (they carry no id)."""
        if event.prompt_id is None:
            return
        if event.is_completion:
            if self._current_prompt == event.prompt_id:
                self._current_prompt = None
        elif event.type in ("execution_start", "executing", "progress"):
            self._current_prompt = event.prompt_id

    def _on_binary(self, data: bytes) -> None:
        event = decode_binary_frame(data, self._current_prompt)
        if event is not None:
            self._mailboxes.deliver(event)


def _shutdown(ws: websocket.WebSocket) -> None:
    """Close a socket so that a recv blocked on it in another thread returns at once."""
    sock = getattr(ws, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    try:
        ws.shutdown()
    except (OSError, AttributeError):
        pass
