"""The one place where errors become HTTP responses, in one JSON shape (or a PNG for image clients).

`{"error": code, "message": text a person can act on, "details": structured extras}`. Stack traces go to
the log, never to the client. On image routes, a client that can only show images (an `<img>` tag, a chat
preview) gets the same status carrying a PNG of the message, so the user sees what went wrong.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from linkpix.errors import BadRequest, LinkPixError, QueueFull
from linkpix.pipeline.request import PROMPT_HINTS
from linkpix.web.errorimage import render_error_png
from linkpix.web.requestinfo import accepts_only_images, query_params

log = logging.getLogger(__name__)

IMAGE_ROUTES = ("/prompt", "/images/")


def no_store(resp: Response) -> Response:
    """Mark a response as never to be cached: errors, health, live state."""
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _wants_error_image(app: Flask) -> bool:
    if not request.path.startswith(IMAGE_ROUTES):
        return False
    if query_params(request.environ).get("format") == "json":
        return False
    settings = app.extensions["linkpix"].config.settings
    return settings.error_images or accepts_only_images(request.environ)


def _size_hint() -> tuple[int, int]:
    """Draw the error at the size the page reserved for the image, when the request says it."""
    q = query_params(request.environ)
    try:
        return int(q.get("width", 512)), int(q.get("height", 512))
    except ValueError:
        return 512, 512


def error_response(app: Flask, status: int, body: dict[str, Any]) -> Response:
    info = request.environ.get("linkpix.log")
    if info is not None:
        info["error"] = body["error"]
    if _wants_error_image(app):
        width, height = _size_hint()
        png = render_error_png(body["error"].replace("_", " "), body["message"], width, height)
        resp = Response(png, status=status, mimetype="image/png")
    else:
        resp = jsonify(body)
        resp.status_code = status
    return no_store(resp)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(LinkPixError)
    def _linkpix(exc: LinkPixError) -> Response:
        if exc.status >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        resp = error_response(app, exc.status, exc.to_dict())
        if isinstance(exc, QueueFull):
            resp.headers["Retry-After"] = str(exc.retry_after)
        return resp

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        if exc.code == 404 and request.path == "/prompt/":  # no route (no prompt, no operation): say why
            return _linkpix(BadRequest(f"the prompt is empty: {PROMPT_HINTS['url']}"))
        code = (exc.name or "error").lower().replace(" ", "_")
        body = {"error": code, "message": exc.description or exc.name, "details": None}
        resp = error_response(app, exc.code or 500, body)
        if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            resp.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        if exc.code == 416 and getattr(exc, "length", None) is not None:  # RFC 9110: what the content's length is
            resp.headers["Content-Range"] = f"bytes */{exc.length}"  # type: ignore[attr-defined]
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        body = {"error": "internal_error", "message": "LinkPix hit an unexpected error; see its log.",
                "details": None}
        return error_response(app, 500, body)
