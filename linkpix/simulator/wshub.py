"""The websocket hub: ComfyUI's routing table of sockets by client id and its single send loop.

Everything the server says on a websocket goes through one FIFO queue drained by one task (ComfyUI's
`publish_loop`), so messages produced by HTTP handlers, the queue worker and node threads keep their order
and a slow client never stalls execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import uuid
from typing import Any

from aiohttp import WSCloseCode, web

log = logging.getLogger("linkpix.simulator")

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4
SERVER_FEATURES = {"supports_preview_metadata": True, "max_upload_size": 104857600}


class WebSocketHub:
    """Sockets keyed by client id (sid), their negotiated feature flags, and the outgoing queue."""

    def __init__(self) -> None:
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.metadata: dict[str, dict[str, Any]] = {}
        self._queue: asyncio.Queue[tuple[str, Any, str | None]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._publish_loop())

    async def close(self) -> None:
        await self.close_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def close_all(self) -> None:
        """Close every open websocket from the server side (restart, pause, fault injection)."""
        for ws in list(self.sockets.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=WSCloseCode.GOING_AWAY), 2.0)
        self.sockets.clear()
        self.metadata.clear()

    def supports_preview_metadata(self, sid: str | None) -> bool:
        if sid is None or sid not in self.metadata:
            return False
        return bool(self.metadata[sid].get("feature_flags", {}).get("supports_preview_metadata", False))

    def send(self, event: str | int, data: Any, sid: str | None = None) -> None:
        """Queue a message: sid None = broadcast, else only that client's socket (dropped if absent)."""
        self._queue.put_nowait((event, data, sid))

    async def _publish_loop(self) -> None:
        while True:
            event, data, sid = await self._queue.get()
            try:
                await self.send_now(event, data, sid)
            except Exception as exc:  # a dead socket must never stop the loop
                log.debug("websocket send failed: %s", exc)

    async def send_now(self, event: str | int, data: Any, sid: str | None) -> None:
        if event == PREVIEW_IMAGE:
            fmt, image_bytes = data
            await self._send_bytes(struct.pack(">I", PREVIEW_IMAGE) + struct.pack(">I", fmt) + image_bytes, sid)
        elif event == PREVIEW_IMAGE_WITH_METADATA:
            image_bytes, metadata = data
            meta = json.dumps(metadata).encode("utf-8")
            payload = struct.pack(">I", PREVIEW_IMAGE_WITH_METADATA) + struct.pack(">I", len(meta)) + meta
            await self._send_bytes(payload + image_bytes, sid)
        elif isinstance(data, bytes | bytearray):
            await self._send_bytes(struct.pack(">I", int(event)) + bytes(data), sid)
        else:
            message = {"type": event, "data": data}
            targets = list(self.sockets.values()) if sid is None else [self.sockets.get(sid)]
            for ws in targets:
                if ws is not None and not ws.closed:
                    with contextlib.suppress(Exception):
                        await ws.send_json(message)

    async def _send_bytes(self, payload: bytes, sid: str | None) -> None:
        targets = list(self.sockets.values()) if sid is None else [self.sockets.get(sid)]
        for ws in targets:
            if ws is not None and not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.send_bytes(payload)

    async def handle(self, request: web.Request, queue_info: Any, running_node: Any) -> web.WebSocketResponse:
        """GET /ws: hello `status` with sid, `executing` re-send for the running prompt's owner,
        optional feature-flag negotiation, then ignore input until the client leaves."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.rel_url.query.get("clientId", "")
        if sid:
            self.sockets.pop(sid, None)
        else:
            sid = uuid.uuid4().hex
        self.sockets[sid] = ws
        self.metadata[sid] = {"feature_flags": {}}
        try:
            await ws.send_json({"type": "status", "data": {"status": queue_info(), "sid": sid}})
            owner, node = running_node()
            if owner == sid and node is not None:
                await ws.send_json({"type": "executing", "data": {"node": node}})
            first = True
            async for msg in ws:
                if msg.type.name != "TEXT":
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                try:
                    if first and data.get("type") == "feature_flags":
                        if sid in self.metadata:
                            self.metadata[sid]["feature_flags"] = data.get("data", {})
                        await ws.send_json({"type": "feature_flags", "data": dict(SERVER_FEATURES)})
                except Exception as exc:
                    log.debug("bad websocket message from %s: %s", sid, exc)
                first = False
        finally:
            # ComfyUI's quirk: this also removes a newer socket that reused the same clientId.
            self.sockets.pop(sid, None)
            self.metadata.pop(sid, None)
        return ws
