"""The waitress server for the API, with the app's limits and the app's error shape.

Waitress answers some requests itself, before the app is called: a header block over
`max_request_header_size` (431), a body over `max_request_body_size` (413, refused as soon as the
Content-Length is read, or while a chunked body arrives), a request line it cannot parse (400). Out of
the box those answers are plain text; here they use the one JSON error shape. The hook is the
channel's `error_task_class`, which writes the response for a request the parser marked as failed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask

from linkpix.errors import BadRequest, HeadersTooLarge, LinkPixError, PayloadTooLarge
from linkpix.web.guards import body_limit
from linkpix.web.services import services

log = logging.getLogger("linkpix.access")

# Messages for the errors waitress raises itself, by status.
_ERRORS: dict[int, tuple[type[LinkPixError], str]] = {
    413: (PayloadTooLarge, "the request body is larger than {body} bytes (one image of max_upload_mb MiB, "
                           "base64 included); it was not read"),
    431: (HeadersTooLarge, "the request's header block (request line and headers) is larger than {header} "
                           "bytes"),
    400: (BadRequest, "the HTTP request could not be parsed: {detail}"),
}


class JsonErrorTask(ErrorTask):
    """Writes waitress's own error responses as `{"error", "message", "details"}` JSON."""

    def execute(self) -> None:
        err = self.request.error
        adj = self.channel.server.adj
        cls, text = _ERRORS.get(err.code, (LinkPixError, "{detail}"))
        message = text.format(body=adj.max_request_body_size - 1, header=adj.max_request_header_size,
                              detail=str(err.body).strip())
        body = json.dumps({"error": cls.code, "message": message, "details": None}).encode()
        self.status = f"{err.code} {err.reason}"
        self.response_headers.extend([("Content-Type", "application/json"), ("Cache-Control", "no-store")])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)
        log.info("%s %s %s (answered by the server: %s)", self.request.command or "-", self.request.path or "-",
                 err.code, cls.code)


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask


def create(app: Flask, host: str, port: int, threads: int, **options: Any) -> Any:
    """A waitress server for `app` whose body limit matches the app's (`max_upload_mb`).

    Waitress refuses a body whose length is >= its limit, the app one that is > its limit: + 1 makes
    them agree on the same number of bytes.
    """
    settings = services(app).config.settings
    # X-Forwarded-For reaches the app, which believes it only from `trusted_proxies` (web/ratelimits.py);
    # waitress would otherwise drop it, having only one trusted proxy address of its own to compare.
    server = create_server(app, host=host, port=port, threads=threads,
                           max_request_body_size=body_limit(settings) + 1,
                           clear_untrusted_proxy_headers=False, **options)
    # One listening socket: the server itself; several (host "0.0.0.0 ::"): a MultiSocketServer's map.
    listeners = [server] if hasattr(server, "channel_class") else list(server.map.values())
    for listener in listeners:
        listener.channel_class = JsonErrorChannel
    return server
