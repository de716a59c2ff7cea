"""The ComfyUI front's websocket: `/ws?clientId=`, speaking ComfyUI's messages to that client's prompts.

`SocketHub` routes messages to the socket registered under a (user, clientId), as ComfyUI routes a
prompt's events to the socket of its `client_id`; a clientId connected again replaces the older socket,
and messages for a clientId with no socket are dropped, as in ComfyUI. `serve_socket` runs one connection
on the server thread that accepted it (see `upgrade.py`): wsproto does the framing, a selector waits on
the socket and on a wake-up pair that `send` pokes, so a message goes out as soon as it is queued.
"""

from __future__ import annotations

import json
import logging
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

from linkpix.ops.slots import FairSlots

log = logging.getLogger(__name__)

KEEPALIVE = 20.0  # s of silence after which a ping goes out
SEND_TIMEOUT = 30.0  # s a blocked send may take before the client is dropped
MAX_QUEUED = 2048  # messages queued for a slow client before the oldest are dropped
PREVIEW_LEGACY, PREVIEW_WITH_METADATA, TEXT_FRAME = 1, 4, 3


class Client:
    """One connected socket: an outgoing queue and the flags it negotiated."""

    def __init__(self, user: str, client_id: str) -> None:
        self.user = user
        self.client_id = client_id
        self.preview_metadata = False
        self.negotiated = False
        self._queue: deque[str | bytes] = deque(maxlen=MAX_QUEUED)
        self._lock = threading.Lock()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.closed = False

    def put(self, message: str | bytes) -> None:
        with self._lock:
            if self.closed:
                return
            self._queue.append(message)
        try:
            self.wake_w.send(b"\0")
        except OSError:  # the pair is full (the loop will drain it) or closed
            pass

    def drain(self) -> list[str | bytes]:
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
        try:
            while self.wake_r.recv(4096):
                pass
        except OSError:
            pass
        return items

    def close(self) -> None:
        with self._lock:
            self.closed = True
        self.wake_w.close()
        self.wake_r.close()


class SocketHub:
    """(user, clientId) -> the connected client; thread-safe."""

    def __init__(self, max_sockets: int, per_user: Callable[[], int] = lambda: 0) -> None:
        """At most `max_sockets` open, `per_user()` of them per user (ops/slots.py)."""
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Client] = {}
        self._slots = FairSlots(max_sockets, per_user)
        self.closed = threading.Event()

    def try_slot(self, user: str = "default") -> bool:
        return self._slots.try_take(user)

    def release_slot(self, user: str = "default") -> None:
        self._slots.release(user)

    def add(self, client: Client) -> None:
        with self._lock:
            self._clients[(client.user, client.client_id)] = client

    def remove(self, client: Client) -> None:
        with self._lock:
            if self._clients.get((client.user, client.client_id)) is client:
                del self._clients[(client.user, client.client_id)]

    def client(self, user: str, client_id: str | None) -> Client | None:
        if client_id is None:
            return None
        with self._lock:
            return self._clients.get((user, client_id))

    def of_user(self, user: str) -> list[Client]:
        with self._lock:
            return [c for (u, _), c in self._clients.items() if u == user]

    def send(self, user: str, client_id: str | None, kind: str, data: dict[str, Any]) -> None:
        client = self.client(user, client_id)
        if client is not None:
            client.put(json.dumps({"type": kind, "data": data}))

    def broadcast(self, user: str, kind: str, data: dict[str, Any]) -> None:
        text = json.dumps({"type": kind, "data": data})
        for client in self.of_user(user):
            client.put(text)

    def send_preview(self, user: str, client_id: str | None, image: bytes, mime: str | None,
                     meta: dict[str, Any]) -> None:
        """A preview frame: type 4 with metadata for clients that negotiated it, else legacy type 1."""
        client = self.client(user, client_id)
        if client is None:
            return
        mime = mime or "image/jpeg"
        if client.preview_metadata:
            raw = json.dumps({**meta, "image_type": mime}).encode()
            client.put(struct.pack(">II", PREVIEW_WITH_METADATA, len(raw)) + raw + image)
        else:
            client.put(struct.pack(">II", PREVIEW_LEGACY, 2 if mime == "image/png" else 1) + image)

    def close(self) -> None:
        self.closed.set()
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            client.put(b"")  # wakes the loop, which sees `closed`


def handshake_request(environ: dict[str, Any]) -> bytes:
    """The upgrade request as bytes again (waitress has parsed it), for wsproto to answer."""
    target = environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
    lines = [f"GET {target} HTTP/1.1", f"Host: {environ.get('HTTP_HOST', 'localhost')}"]
    for key, value in environ.items():
        if key.startswith("HTTP_") and key != "HTTP_HOST":
            lines.append(f"{key[5:].replace('_', '-').title()}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def serve_socket(sock: socket.socket, environ: dict[str, Any], hub: SocketHub, client: Client,
                 hello: dict[str, Any], features: dict[str, Any]) -> None:
    """Run one websocket connection until the client or the server closes it."""
    conn = WSConnection(ConnectionType.SERVER)
    sock.settimeout(SEND_TIMEOUT)
    try:
        conn.receive_data(handshake_request(environ))
        request = next((e for e in conn.events() if isinstance(e, Request)), None)
        if request is None:
            sock.sendall(conn.send(RejectConnection(status_code=400)))
            return
        sock.sendall(conn.send(AcceptConnection()))
    except (OSError, RemoteProtocolError) as exc:
        log.info("websocket handshake from %s failed: %s", environ.get("REMOTE_ADDR"), exc)
        return
    hub.add(client)
    client.put(json.dumps({"type": "status", "data": hello}))
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ, "socket")
    selector.register(client.wake_r, selectors.EVENT_READ, "wake")
    last = time.monotonic()
    try:
        while not hub.closed.is_set():
            ready = selector.select(timeout=1.0)
            if any(key.data == "socket" for key, _ in ready):
                data = sock.recv(65536)
                if not data or not _incoming(conn, sock, client, data, features):
                    break
                last = time.monotonic()
            for message in client.drain():
                if message == b"":
                    continue
                event = TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
                sock.sendall(conn.send(event))
                last = time.monotonic()
            if time.monotonic() - last > KEEPALIVE:
                sock.sendall(conn.send(Ping()))
                last = time.monotonic()
        else:
            sock.sendall(conn.send(CloseConnection(code=1001)))
    except (OSError, RemoteProtocolError) as exc:
        log.debug("websocket of client %s ended: %s", client.client_id, exc)
    finally:
        selector.close()
        hub.remove(client)
        client.close()


def _incoming(conn: WSConnection, sock: socket.socket, client: Client, data: bytes,
              features: dict[str, Any]) -> bool:
    """Handle what the client sent; False when it closed the connection."""
    conn.receive_data(data)
    for event in conn.events():
        if isinstance(event, CloseConnection):
            try:
                sock.sendall(conn.send(event.response()))
            except OSError:
                pass
            return False
        if isinstance(event, Ping):
            sock.sendall(conn.send(event.response()))
        elif isinstance(event, TextMessage) and not client.negotiated:
            _negotiate(client, event.data, features)
    return True


def _negotiate(client: Client, text: str, features: dict[str, Any]) -> None:
    """ComfyUI's feature-flag exchange: only the first JSON message counts (non-JSON is ignored)."""
    try:
        message = json.loads(text)
    except ValueError:
        return
    client.negotiated = True
    if isinstance(message, dict) and message.get("type") == "feature_flags":
        flags = message.get("data") if isinstance(message.get("data"), dict) else {}
        client.preview_metadata = bool(flags.get("supports_preview_metadata"))
        client.put(json.dumps({"type": "feature_flags", "data": features}))
