"""Protocol edges the simulator does not produce, played by a scripted fake ComfyUI over real sockets:
malformed and unknown frames, legacy previews, events that arrive before POST /prompt returns, and a
newer server that no longer sends the `executing null` terminator.
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from conftest import CAPTURES

from linkpix.comfy import ComfyClient, Event

PNG = b"\x89PNG\r\n\x1a\n fake png"
GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {}},
         "9": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}


def text(kind: str, **data: Any) -> str:
    return json.dumps({"type": kind, "data": data})


class ScriptedComfy:
    """Answers POST /prompt by playing `script(prompt_id)` on the client's socket *before* replying,
    then serves a successful history entry with one output image."""

    def __init__(self, script) -> None:
        self.script = script
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.history: dict[str, dict] = {}
        self.client_flags: list[dict] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.url = ""

    def __enter__(self) -> ScriptedComfy:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        app.router.add_post("/prompt", self._prompt)
        app.router.add_get("/history/{prompt_id}", self._history)
        app.router.add_get("/queue", self._queue)
        app.router.add_get("/view", self._view)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        self._loop.run_forever()

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets[request.query["clientId"]] = ws
        await ws.send_str(text("status", status={"exec_info": {"queue_remaining": 0}}))
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.client_flags.append(json.loads(message.data))
        return ws

    async def _prompt(self, request: web.Request) -> web.Response:
        body = await request.json()
        prompt_id = body["prompt_id"]
        ws = self.sockets[body["client_id"]]
        self.history[prompt_id] = {
            "outputs": {"9": {"images": [{"filename": "x.png", "subfolder": "", "type": "output"}]}},
            "status": {"status_str": "success", "completed": True, "messages": []}}
        for frame in self.script(prompt_id):
            await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
        await asyncio.sleep(0.05)  # let the client read them before it learns the prompt id
        return web.json_response({"prompt_id": prompt_id, "number": 0, "node_errors": {}})

    async def _queue(self, request: web.Request) -> web.Response:
        return web.json_response({"queue_running": [], "queue_pending": []})

    async def _view(self, request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def _history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry else {})


def legacy_preview() -> bytes:
    return (CAPTURES / "sample_preview_frame_type1_legacy.bin").read_bytes()


def metadata_preview(prompt_id: str) -> bytes:
    meta = json.dumps({"node_id": "1", "prompt_id": prompt_id, "image_type": "image/png"}).encode()
    return struct.pack(">II", 4, len(meta)) + meta + PNG


@pytest.fixture
def collect() -> Iterator[list[Event]]:
    yield []


def test_malformed_frames_do_not_stop_the_reader(collect):
    def script(pid: str) -> list:
        return [
            text("execution_start", prompt_id=pid),
            b"\x00", struct.pack(">II", 4, 9999) + b"{}", struct.pack(">I", 77) + b"future",
            "not json at all", text("crystools.monitor", cpu=3), '{"type": "executing"}',
            text("executing", node="1", display_node="1", prompt_id=pid),
            text("progress", value=1, max=2, node="1", prompt_id=pid),
            legacy_preview(),
            metadata_preview(pid),
            struct.pack(">II", 3, 1) + b"1" + b"step one",
            text("progress", value=1, max=2, node="1", prompt_id="someone-else"),
            text("execution_success", prompt_id=pid),
            text("status", status={"exec_info": {"queue_remaining": 0}}),
            text("executing", node=None, prompt_id=pid),
        ]

    with ScriptedComfy(script) as fake, ComfyClient(fake.url) as comfy:
        images = comfy.run(GRAPH, timeout=5, on_event=collect.append)
        assert [i.data for i in images] == [PNG]
        prompt_id = images[0].prompt_id
        assert {e.prompt_id for e in collect} == {prompt_id}
        types = [e.type for e in collect]
        assert types == ["execution_start", "executing", "progress", "preview", "preview",
                         "progress_text", "execution_success", "executing"]
        legacy, modern = [e for e in collect if e.type == "preview"]
        assert legacy.image_mime == "image/jpeg" and legacy.image == legacy_preview()[8:]
        assert modern.image_mime == "image/png" and modern.image == PNG
        assert fake.client_flags[0] == {"type": "feature_flags",
                                        "data": {"supports_preview_metadata": True}}
        # The reader survived all of that: a second run still gets its events.
        again: list[Event] = []
        comfy.run(GRAPH, timeout=5, on_event=again.append)
        assert [e.type for e in again][-1] == "executing"


def test_newer_server_without_the_executing_null_terminator(collect):
    def script(pid: str) -> list:
        return [text("execution_start", prompt_id=pid), text("execution_success", prompt_id=pid)]

    with ScriptedComfy(script) as fake, ComfyClient(fake.url) as comfy:
        images = comfy.run(GRAPH, timeout=5, on_event=collect.append)
    assert [i.data for i in images] == [PNG]
    assert [e.type for e in collect] == ["execution_start", "execution_success"]
