"""Plain links parked off the server's threads when those run short, on a LinkPix of one user.

A plain request for a new picture holds one of waitress's `threads` until its run ends. When every thread a
waiting request may hold is held (`threads - 8`: pipeline/waiters.py), a further one used to wait for a
thread itself, and so did every cached picture behind it (`bench/live.py`: 100 plain waiters, 0 hits
answered in 3 s). Such a request is parked instead: its run is started or joined as a live viewer's is
(`Live.runs.watch`), the connection is handed to the live writer's loop, and its thread goes back to the
pool at once. When the run ends the answer is made by Flask as usual (the image with the plain answer's
headers, or the error the same request would have got), in one piece, and the connection closed after it.
Its access-log line is written then, with the whole time.

Only a GET for a picture (not `format=json`) under LinkPix's waitress (which can hand a connection over),
within the live writer's slots (`live_max_streams`, `live_max_per_user`). On a shared LinkPix the per-user
shares of waiting requests apply instead (429), so one user cannot fill the writer with parked requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app
from werkzeug.http import http_date

from linkpix.errors import LinkPixError
from linkpix.model import RenderedJob
from linkpix.pipeline.previews import Feed
from linkpix.storage.cache import CachedImage
from linkpix.web.fronts.upgrade import taker
from linkpix.web.services import Services

Headers = Callable[[CachedImage], list[tuple[str, str]]]  # the plain answer's headers for a stored image
# What waitress answers itself, or what ends with the connection: not copied from Flask's response.
_HOP_BY_HOP = frozenset({"connection", "content-length", "server", "transfer-encoding", "keep-alive"})


def wanted(svc: Services, env: dict[str, Any], job: RenderedJob, user: str) -> bool:
    """Park this plain request: a GET for a new picture, while the threads for waiting requests are taken."""
    if svc.live is None or svc.config.settings.network_access or env.get("REQUEST_METHOD") != "GET":
        return False
    if taker(env) is None or not svc.generator.waiters.short_of_threads():
        return False
    generator = svc.generator
    return job.seed_is_random or generator.cache.get(user, generator.key_for(job)) is None


def park(svc: Services, job: RenderedJob, user: str, env: dict[str, Any], headers: Headers) -> Response | None:
    """Hand the request over; None when no live-writer slot is free (the request then waits on its thread)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]  # the app itself: used later
    settings = svc.config.settings
    live = svc.live
    assert live is not None
    if not live.writer.try_slot(user, settings.live_max_streams, settings.live_max_per_user):
        return None
    handed = False
    try:
        feed = live.runs.watch(job, user)
        take = taker(env)
        assert take is not None
        own = take().dup()  # waitress closes its descriptor when this view returns; this one stays open
        ending = _Ending()
        info = env.get("linkpix.log")
        if info is not None:
            info.update(user=user, cache="miss", parked=True)
            info["deferred"] = ending.attach  # web/middleware.py writes the line when the answer is sent
        environ = dict(env)  # its log entry too: an error's code joins the line written at the end
        live.writer.hand_over_answer(own, feed, lambda: _render(app, environ, feed, headers), user, ending.end)
        handed = True
        return Response(status=200)  # waitress writes nothing more on this connection
    finally:
        if not handed:
            live.writer.release_slot(user)


def _render(app: Flask, environ: dict[str, Any], feed: Feed, headers: Headers) -> tuple[str, bytes]:
    """The whole answer, made by the app in a context of the original request: the picture with the plain
    answer's headers, or the error handlers' answer (JSON, or the error picture an <img> asks for)."""
    with app.request_context(environ):
        if feed.error is None and feed.result is not None and feed.final is not None:
            resp = Response(feed.final, headers=headers(feed.result))
            resp.headers["Date"] = http_date(max(time.time(), feed.result.mtime))
        else:
            error = feed.error or LinkPixError("the run ended without an image")
            resp = app.make_response(app.handle_user_exception(error))
        resp = app.process_response(resp)
        body = resp.get_data()
    lines = [f"HTTP/1.1 {resp.status}", "Server: LinkPix", "Connection: close",
             f"Content-Length: {len(body)}"]
    if "Date" not in resp.headers:
        lines.append(f"Date: {http_date(time.time())}")
    lines += [f"{k}: {v}" for k, v in resp.headers.items() if k.lower() not in _HOP_BY_HOP]
    return str(resp.status_code), ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Ending:
    """Joins the two ends of a parked request: the middleware's access-log writer and the sent answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._write: Callable[[str], None] | None = None
        self._status: str | None = None

    def attach(self, write: Callable[[str], None]) -> None:
        with self._lock:
            self._write, status = write, self._status
        if status is not None:
            write(status)

    def end(self, status: str) -> None:
        with self._lock:
            self._status, write = status, self._write
        if write is not None:
            write(status)
