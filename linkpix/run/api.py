"""Run the API under waitress, a production WSGI server, with readable logs written off the request thread.

Every request writes one access-log line. Written directly, that line costs each request a lock shared by
all worker threads and a write to the terminal or file, which on a cached link is most of the work; so the
request thread only puts the record on a queue (`QueueHandler`) and one listener thread formats and
writes it (`QueueListener`), many lines per write when many requests come in. The listener is stopped
after the server, so every line of a request that was answered is written before the process exits.
"""

from __future__ import annotations

import io
import logging
import os
import queue
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from logging.handlers import QueueHandler, QueueListener
from typing import Any, TextIO

from flask import Flask
from waitress.server import BaseWSGIServer
from waitress.task import WSGITask

from linkpix.cpus import choose_cpu, pin_process
from linkpix.run.connections import address_counts, server_options
from linkpix.run.guard import GuardedChannel
from linkpix.web.services import services
from linkpix.web.serving import JsonErrorChannel, create

LOG_FORMAT = "%(asctime)s %(levelname)-5s %(name)s: %(message)s"
LOG_DATEFMT = "%H:%M:%S"  # no sub-second part: _Formatter makes the time text once per second
ACCESS_LOGGER = "linkpix.access"
# SIGTERM (the launcher, a service manager) and SIGHUP (the terminal closed) stop the API as Ctrl+C does.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP) if hasattr(signal, "SIGHUP") else (signal.SIGTERM,)

log = logging.getLogger(__name__)


class _DeferredQueueHandler(QueueHandler):
    """Hands the record itself to the listener, which formats it: the request thread does no formatting
    and takes no lock (the queue is thread-safe). Safe because the queue never leaves the process
    (nothing is pickled); the message is merged with its arguments first when they are not plain values
    that cannot change meanwhile."""

    _PLAIN = (str, int, float, bool, type(None))

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        if self.filter(record):
            self.emit(record)
            return True
        return False

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if record.name == ACCESS_LOGGER:  # ours, one per request: its arguments are plain by construction
            return record
        args = record.args
        if record.exc_info or (args and not (isinstance(args, tuple)
                                             and all(isinstance(a, self._PLAIN) for a in args))):
            return super().prepare(record)
        return record


class _Formatter(logging.Formatter):
    """LOG_FORMAT, made directly for the usual record (no traceback), with the time text made once per
    second: this runs once per request."""

    _second = -1
    _text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second = int(record.created)
        if second != self._second:
            self._text = super().formatTime(record, datefmt)
            self._second = second
        return self._text

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        return f"{self.formatTime(record, self.datefmt)} {record.levelname:<5} {record.name}: {record.getMessage()}"


class _PolledQueue:
    """The queue between request threads and the log writer: appending wakes nobody (no system call on
    the request thread); the writer looks every `interval` seconds and writes what piled up in one go."""

    def __init__(self, interval: float = 0.05) -> None:
        self._items: deque[Any] = deque()
        self._interval = interval

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)

    def get(self, block: bool = True) -> Any:
        while True:
            try:
                return self._items.popleft()
            except IndexError:
                if not block:
                    raise queue.Empty from None
                time.sleep(self._interval)

    def empty(self) -> bool:
        return not self._items


class _LineWriter(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes formatted lines to a block-buffered stream; the listener flushes it whenever the queue
    is empty, so lines appear at once when the server is idle and in batches (one write for many
    lines) under load."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)


class _FlushingListener(QueueListener):
    def handle(self, record: logging.LogRecord) -> None:
        super().handle(record)
        if self.queue.empty():  # type: ignore[attr-defined]
            for handler in self.handlers:
                handler.flush()


@contextmanager
def logging_off_thread(level: str | None = None, stream: TextIO | None = None) -> Iterator[QueueListener]:
    """Route every log record through a queue to one writer thread for the duration of the block.

    One readable line per event; the access log writes one line per request. On leaving the block the
    listener drains the queue and flushes, so no line is lost at shutdown. LogRecord attributes the
    format never shows (caller, thread, process) are not collected, as the logging HOWTO's
    "Optimization" section suggests: they are most of what a record costs to make.
    """
    if stream is None:
        stream = io.TextIOWrapper(open(sys.stderr.fileno(), "wb", buffering=1 << 16, closefd=False),  # noqa: SIM115
                                  encoding="utf-8", errors="backslashreplace", write_through=False)
    handler = _LineWriter(stream)
    handler.setFormatter(_Formatter(LOG_FORMAT, LOG_DATEFMT))
    records = _PolledQueue()
    listener = _FlushingListener(records, handler, respect_handler_level=True)
    saved = logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    feeder = _DeferredQueueHandler(records)
    # What the feeder merges into a record (arguments, a traceback) is the message alone: the writer adds
    # time, level and logger once. basicConfig would otherwise give it "LEVEL:name:" as a second prefix.
    feeder.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=level or os.environ.get("LINKPIX_LOG_LEVEL", "INFO"), handlers=[feeder], force=True)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" noise
    listener.start()
    try:
        yield listener
    finally:
        listener.stop()  # writes what is queued, then ends the thread
        logging.getLogger().handlers.clear()
        handler.flush()
        (logging._srcfile, logging.logThreads, logging.logProcesses,  # type: ignore[attr-defined]
         logging.logMultiprocessing) = saved


class _Task(WSGITask):
    """Waitress closes the connection after every 304 and 204 (it sees no Content-Length and plays safe),
    but such a response has no body, so its end is known (RFC 9112 6.3): keep the connection open, as a
    browser revalidating many images expects."""

    _keep_open = False

    def build_response_header(self) -> bytes:
        self._keep_open = (self.status[:3] in ("204", "304") and self.version == "1.1"
                           and not self.close_on_finish
                           and self.request.headers.get("CONNECTION", "").lower() != "close")
        try:
            return super().build_response_header()
        finally:
            self._keep_open = False

    def set_close_on_finish(self) -> None:
        if not self._keep_open:
            super().set_close_on_finish()


class _Channel(JsonErrorChannel):
    task_class = _Task


def make_server(app: Flask, host: str, port: int, threads: int, **kwargs: Any) -> BaseWSGIServer:
    """The waitress server LinkPix runs (and its tests use): the app's body limit and JSON errors
    (`web/serving.py`), and bodiless answers that keep the connection open."""
    settings = services(app).config.settings
    options = {**server_options(settings), **kwargs}  # connections: run/connections.py
    server = create(app, host, port, threads, ident="LinkPix", **options)
    # The head deadline and the per-address cap (run/guard.py), counted across all listening sockets.
    channel = type("_GuardedChannel", (GuardedChannel, _Channel), {"counts": address_counts(settings)})
    for listening in (server, *getattr(server, "map", {}).values()):  # one socket, or several (IPv4 + 6)
        if isinstance(listening, BaseWSGIServer):
            listening.channel_class = channel  # type: ignore[misc]
    return server


def serve(app: Flask, host: str, port: int, threads: int) -> None:
    """Serve until SIGINT, SIGTERM or SIGHUP; then stop taking requests and let the workers finish."""
    from linkpix.web.fronts import upgrade

    server = make_server(app, host, port, threads)
    upgrade.enable(server)  # websockets for the ComfyUI front (/ws), on the same port
    cpu = choose_cpu(services(app).config.settings.cpu_pin)
    if cpu is not None:
        pin_process(cpu)  # linkpix/cpus.py: why one CPU

    def _stop(signum: int, _frame: object) -> None:
        raise SystemExit(0)  # waitress's loop catches it and shuts its worker threads down

    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)
    log.info("LinkPix API on http://%s:%s", host, server.effective_port)
    server.run()
