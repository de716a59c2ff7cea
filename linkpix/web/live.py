"""Live links: `/prompt/...?live=1` answers `multipart/x-mixed-replace`, which a plain `<img>` shows part by
part (the way MJPEG cameras stream): a status card at once, ComfyUI's preview frames while it draws, and
last the finished image, byte for byte what the plain link serves.

Only a link that is not cached yet streams: a cached one answers the plain image (there is nothing to
watch). The run is the generator's shared run (pipeline/previews.py), so live and plain viewers of one
new link make one ComfyUI run, and a live viewer who leaves stops nothing. Under waitress the stream is
served off the request thread (web/livewire.py); under another WSGI server it is a streamed body.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Response

from linkpix.config import Settings
from linkpix.errors import BadRequest
from linkpix.model import RenderedJob
from linkpix.pipeline.previews import Feed, LiveRuns
from linkpix.web.errorimage import render_error_png
from linkpix.web.livewire import CONTENT_TYPE, Cursor, LiveWriter
from linkpix.web.middleware import http_date
from linkpix.web.requestinfo import accepts_only_images, query_params

YES, NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
# The socket taker web/fronts/upgrade.py puts into the environ under waitress (read by its key: importing the
# fronts package from here would tie the image routes to every front).
UPGRADE = "linkpix.upgrade"
HEAD_TIMEOUT = 5.0  # s to write the head and first card before the viewer counts as gone


class Live:
    """The process's live feeds and the writer that serves their viewers."""

    def __init__(self, runs: LiveRuns) -> None:
        self.runs = runs
        self.writer = LiveWriter()

    def close(self) -> None:
        self.runs.close()
        self.writer.close()


def wanted(environ: dict[str, Any], settings: Settings) -> bool:
    """Does this request ask for a live answer? `?live=` decides; else an Accept header naming
    multipart/x-mixed-replace; else, with `live_links: images`, any image-only client (an <img>)."""
    value = query_params(environ).get("live")
    if value is not None:
        value = value.strip().lower()
        if value in YES:
            return environ.get("REQUEST_METHOD") == "GET"
        if value in NO:
            return False
        raise BadRequest(f"live must be 1 or 0 (true/false), not {value[:40]!r}")
    if environ.get("REQUEST_METHOD") != "GET":
        return False
    if "multipart/x-mixed-replace" in environ.get("HTTP_ACCEPT", ""):
        return True
    return settings.live_links == "images" and accepts_only_images(environ)


def respond(live: Live, settings: Settings, job: RenderedJob, user: str,
            environ: dict[str, Any]) -> Response | None:
    """The live answer for a new link, or None when the plain answer is the right one: the image is
    cached already, or every live slot (`live_max_streams`, `live_max_per_user`) is taken."""
    generator = live.runs.generator
    if not job.seed_is_random and generator.cache.get(user, generator.key_for(job)) is not None:
        return None
    if not live.writer.try_slot(user, settings.live_max_streams, settings.live_max_per_user):
        return None
    handed = False
    try:
        feed = live.runs.watch(job, user)
        cursor = Cursor(feed, settings.live_fps, error_picture)
        first = cursor.first()
        info = environ.get("linkpix.log")
        if info is not None:
            info.update(user=user, cache="miss", live=True)
        take = environ.get(UPGRADE)
        if take is None:  # not waitress (or upgrades off): the stream holds this thread
            resp = Response(_streamed(cursor, first), headers=_headers(job))
            resp.call_on_close(lambda: live.writer.release_slot(user))  # when the server closes the body
            handed = True
            return resp
        own = take().dup()  # waitress closes its descriptor when this view returns; this one stays open
        try:
            own.settimeout(HEAD_TIMEOUT)
            own.sendall(_status_line(job) + first)
        except OSError:
            own.close()
            return Response(status=200)  # the viewer is gone already
        if cursor.done:
            own.close()
        else:
            live.writer.hand_over(own, cursor, user)
            handed = True
        return Response(status=200)  # waitress writes nothing more: the head went out above
    finally:
        if not handed:
            live.writer.release_slot(user)


def error_picture(feed: Feed) -> bytes:
    """The error picture a failed live run ends with, as a plain request's error answer draws it."""
    error = feed.error
    code = getattr(error, "code", "error").replace("_", " ")
    return render_error_png(code, getattr(error, "message", str(error)), feed.width, feed.height)


def _headers(job: RenderedJob) -> list[tuple[str, str]]:
    headers = [("Content-Type", CONTENT_TYPE), ("Cache-Control", "no-store"), ("X-LinkPix-Cache", "miss"),
               ("X-LinkPix-Live", "1"), ("X-LinkPix-Seed", str(job.seed)), ("X-LinkPix-Workflow", job.workflow),
               ("X-Content-Type-Options", "nosniff")]
    if job.ignored:  # as the plain answer says them (web/images.py), kept short
        headers.append(("X-LinkPix-Ignored", ",".join(job.ignored[:20]) + (",..." if len(job.ignored) > 20 else "")))
    if job.notes:
        headers.append(("X-LinkPix-Notes", "; ".join(job.notes)))
    return headers


def _status_line(job: RenderedJob) -> bytes:
    """The response head, written by hand: the connection no longer belongs to waitress. No length and
    no chunking: the stream ends when the connection closes (the last part's boundary says so too)."""
    lines = ["HTTP/1.1 200 OK", f"Date: {http_date(time.time())}", "Server: LinkPix", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in _headers(job)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _streamed(cursor: Cursor, first: bytes) -> Iterator[bytes]:
    """The stream as a WSGI body, for servers that cannot hand the connection over."""
    wake = threading.Event()
    cursor.feed.subscribe(wake.set)
    try:
        yield first
        while not cursor.done:
            wake.clear()
            data, wait = cursor.next_part(time.monotonic())
            if data is not None:
                yield data
            else:
                wake.wait(wait if wait is not None else 15.0)
    finally:
        cursor.feed.unsubscribe(wake.set)
