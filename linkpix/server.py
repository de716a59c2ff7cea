"""Run the API under waitress, a production WSGI server, with readable logs."""

from __future__ import annotations

import logging
import os

from flask import Flask


def setup_logging(level: str | None = None) -> None:
    """One readable line per event; the access log writes one line per request."""
    logging.basicConfig(level=level or os.environ.get("LINKPIX_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" noise


def serve(app: Flask, host: str, port: int, threads: int) -> None:
    from .web.fronts import upgrade
    from .web.serving import create

    server = create(app, host, port, threads, ident="LinkPix", channel_timeout=600, connection_limit=1000)
    logging.getLogger(__name__).info("LinkPix API on http://%s:%d", host, port)
    upgrade.enable(server)  # websockets for the ComfyUI front (/ws), on the same port
    try:
        server.run()
    except KeyboardInterrupt:
        pass
