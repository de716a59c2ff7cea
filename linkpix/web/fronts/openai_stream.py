"""`stream: true` on the OpenAI front's /v1/images/generations: Server-Sent Events as the `openai` SDK reads
them (`client.images.generate(..., stream=True, partial_images=N)`): up to N
`image_generation.partial_image` events made of ComfyUI's preview frames, then one
`image_generation.completed` with the image, or an `error` event (the SDK raises it as an APIError).

The run is the live links' shared run (pipeline/previews.py): a stream, a live `<img>` and plain requests
for the same picture make one ComfyUI run. Partial images are spread over the run by its step count (with
N = 2, frames from about 1/3 and 2/3 of the steps), since a client asking for few wants them to differ.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Response

from linkpix.errors import BadRequest, UnsupportedOutput
from linkpix.model import RenderedJob
from linkpix.pipeline.media import require_picture
from linkpix.pipeline.previews import Frame
from linkpix.web.services import services

MAX_PARTIALS = 3  # OpenAI's bound for partial_images
HEARTBEAT = 15.0  # s between SSE comments while nothing happens, so proxies keep the stream open


def partial_count(body: dict[str, Any]) -> int:
    """`partial_images` (0..3, default 0), checked as OpenAI checks it."""
    value = body.get("partial_images", 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PARTIALS:
        raise BadRequest(f"partial_images must be a whole number from 0 to {MAX_PARTIALS} (got {value!r})",
                         {"parameter": "partial_images"})
    return value


def stream_response(job: RenderedJob, user: str, partials: int, quality: str, background: str,
                    error_body: Any) -> Response:
    """The SSE answer for one job; `error_body(exc)` is the front's OpenAI-shaped error object."""
    svc = services()
    live = svc.live
    if live is None:
        raise BadRequest("streaming is not available on this server")
    generator = svc.generator
    cached = None if job.seed_is_random else generator.cache.get(user, generator.key_for(job))
    if cached is not None:
        require_picture(cached)  # a video or a sound cannot be a `b64_json` picture: refused by name
    feed = None if cached is not None else live.runs.watch(job, user)
    fmt = job.output_format
    common = {"background": background, "quality": quality, "output_format": fmt}

    def events() -> Iterator[str]:
        if feed is None:
            assert cached is not None
            yield _completed(cached.read(), _size(cached.meta), common)
            return
        wake = threading.Event()
        feed.subscribe(wake.set)
        try:
            sent = 0
            while not feed.over:
                wake.clear()
                frame = feed.frame
                if frame is not None and sent < partials and _due(frame, sent, partials):
                    yield _sse("image_generation.partial_image", {
                        "type": "image_generation.partial_image", "b64_json": _b64(feed.frame_bytes(frame)),
                        "partial_image_index": sent, "created_at": int(time.time()),
                        "size": f"{feed.width}x{feed.height}", **common, "output_format": _fmt(frame.mime)})
                    sent += 1
                    continue
                if not wake.wait(HEARTBEAT) and not feed.over:
                    yield ": still drawing\n\n"
            if feed.error is not None:
                yield _sse("error", {"error": error_body(feed.error)})
                return
            assert feed.result is not None and feed.final is not None
            try:
                require_picture(feed.result)
            except UnsupportedOutput as exc:
                yield _sse("error", {"error": error_body(exc)})
                return
            yield _completed(feed.final, _size(feed.result.meta), common)
        finally:
            feed.unsubscribe(wake.set)

    resp = Response(events(), mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Accel-Buffering"] = "no"  # nginx: pass events on at once
    resp.headers["X-LinkPix-Workflow"] = job.workflow
    return resp


def _due(frame: Frame, sent: int, partials: int) -> bool:
    """Is this frame far enough into the run for partial image number `sent` (of `partials`)?"""
    if not frame.step or not frame.total:
        return True
    return frame.step / frame.total >= (sent + 1) / (partials + 1)


def _completed(data: bytes, size: str, common: dict[str, Any]) -> str:
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
             "input_tokens_details": {"image_tokens": 0, "text_tokens": 0}}
    return _sse("image_generation.completed", {"type": "image_generation.completed", "b64_json": _b64(data),
                                               "created_at": int(time.time()), "size": size, "usage": usage,
                                               **common})


def _size(meta: dict[str, Any]) -> str:
    return f"{meta.get('width') or 0}x{meta.get('height') or 0}"


def _fmt(mime: str) -> str:
    return {"image/png": "png", "image/webp": "webp"}.get(mime, "jpeg")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"

