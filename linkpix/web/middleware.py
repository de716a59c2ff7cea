"""WSGI layers around the Flask app: the one-line request log, and the memoised hit path.

Both sit outside Flask on purpose. The log must see every response, including the ones the hit path
answers; the hit path must do as little as possible per request (a dict lookup, a few `stat` calls, and
a file handed to the server's sendfile wrapper), which is what lets a cached link answer at close to the
speed of a static file server.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any

from werkzeug.wsgi import ClosingIterator

from linkpix.web.conditional import not_modified, not_modified_headers
from linkpix.web.memo import HitMemo
from linkpix.web.requestinfo import raw_uri, user_from_environ, wants_json

log = logging.getLogger("linkpix.access")  # linkpix.run.api.ACCESS_LOGGER

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


# Requests listed by GET /api/requests (besides job changes): image links and the fronts' image routes.
RECENT_PREFIXES = ("/prompt", "/generate", "/images", "/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/v1/images")
# Control characters in a logged path (a prompt may hold a newline) are shown escaped: one request, one line.
_ESCAPE = {c: f"\\x{c:02x}" for c in (*range(32), 127)}


class _AccessRecord(logging.LogRecord):
    """The access log's record, made from a template taken once from a real LogRecord.

    `LogRecord.__init__` (caller, thread, process, timestamps, path splitting) is most of what a log line
    costs, and the access log writes one per request; everything it computes is the same for every access
    line except the message, its arguments and the time. Handlers and formatters see an ordinary record.
    """

    _template: dict[str, Any] = {**logging.LogRecord(log.name, logging.INFO, __file__, 0, "", (), None).__dict__,
                                 "thread": None, "threadName": None}  # as with logging.logThreads off

    def __init__(self, msg: str, args: tuple[Any, ...]) -> None:
        template = self._template
        self.__dict__.update(template)
        now = time.time_ns()
        self.created = now / 1e9
        self.msecs = (now % 1_000_000_000) // 1_000_000 + 0.0
        self.relativeCreated = template["relativeCreated"] + (self.created - template["created"]) * 1000
        self.msg, self.args = msg, args


class RequestLog:
    """Writes one line per request: method, path, status, user, cache outcome, key and milliseconds.

    The newest requests are also kept in `recent` (a bounded deque) for GET /api/requests. A response
    that is a file handed to the server's `wsgi.file_wrapper` is returned as it is, never wrapped, so
    waitress can send it from its own loop the way a static file server does; its line is written when
    the app returns it (the milliseconds then leave out the sending). Other responses are logged when
    the server closes them, after the last byte.
    """

    def __init__(self, app: WSGIApp, recent: deque[dict[str, Any]] | None = None,
                 hits: HitPath | None = None,
                 observe: Callable[[dict[str, Any], str], None] | None = None,
                 use_hits: Callable[[], bool] | None = None) -> None:
        """With `hits`, cached links are answered by it first (while `use_hits()` says so: a rate limit on
        hits sends them through Flask), without the wrapping the other responses need (their status is
        only known when the app calls start_response). `observe(environ, status)` is told of every
        request too (the metrics count them there)."""
        self.app = app
        self.recent = recent if recent is not None else deque(maxlen=200)
        self.hits = hits
        self.observe = observe
        self.use_hits = use_hits

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        if self.hits is not None and (self.use_hits is None or self.use_hits()):
            answered = self.hits.answer(environ, start_response)
            if answered is not None:
                status, info, body = answered
                self._write(environ, status, info, (time.perf_counter() - started) * 1000)
                return body
        info: dict[str, Any] = {}
        environ["linkpix.log"] = info
        status_holder: list[str] = []

        def _start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status_holder.append(status[:3])
            return start_response(status, headers, exc_info)

        def _done() -> None:
            later = info.pop("deferred", None)  # the answer is written by another thread (web/parked.py)
            if later is not None:
                later(lambda status: self._write(environ, status, info, (time.perf_counter() - started) * 1000))
                return
            self._write(environ, status_holder[0] if status_holder else "-", info,
                        (time.perf_counter() - started) * 1000)

        result = self.app(environ, _start)
        if result.__class__ is environ.get("wsgi.file_wrapper") or result.__class__ is list:
            _done()
            return result
        return ClosingIterator(result, [_done])

    def _write(self, environ: dict[str, Any], status: str, info: dict[str, Any], ms: float) -> None:
        if self.observe is not None:
            self.observe(environ, status)
        method = environ.get("REQUEST_METHOD")
        path = environ.get("PATH_INFO", "")
        path = path if len(path) <= 96 else path[:93] + "..."
        if not path.isprintable():
            path = path.translate(_ESCAPE)
        if log.isEnabledFor(logging.INFO):
            extra = " ".join([f"{k}={v}" for k, v in info.items() if v is not None])
            log.handle(_AccessRecord("%s %s %s %.1fms %s", (method, path, status, ms, extra)))
        if path.startswith(RECENT_PREFIXES) or (path.startswith("/jobs") and method != "GET"):
            self.recent.append({"time": time.time(), "method": method, "path": path,
                                "status": int(status) if status.isdigit() else None, "ms": round(ms, 1), **info})


class HitPath:
    """Answers repeat GET/HEAD /prompt requests straight from the memo; everything else goes to Flask."""

    def __init__(self, app: WSGIApp, memo: HitMemo, fingerprint: Callable[[], Any],
                 on_hit: Callable[[], None] = lambda: None, prefix: str = "/prompt/") -> None:
        """`on_hit` counts each answer given here (the cache's hit figure in /health)."""
        self.app = app
        self.memo = memo
        self.fingerprint = fingerprint
        self.on_hit = on_hit
        self.prefix = prefix

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        answered = self.answer(environ, start_response)
        if answered is None:
            return self.app(environ, start_response)
        info = environ.get("linkpix.log")
        if info is not None:
            info.update(answered[1])
        return answered[2]

    def answer(self, environ: dict[str, Any],
               start_response: Callable[..., Any]) -> tuple[str, dict[str, Any], Iterable[bytes]] | None:
        """(status, log fields, body) when the memo can answer this request, else None."""
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD") or not environ.get("PATH_INFO", "").startswith(self.prefix) \
                or wants_json(environ) or _carries_key(environ) or "HTTP_RANGE" in environ:
            return None  # a Range (a video player seeking) is answered by the route, which serves ranges
        uri, user = raw_uri(environ), user_from_environ(environ)
        entry = self.memo.get(uri, user, self.fingerprint())
        if entry is None:
            return None
        try:
            f = open(entry.path, "rb")
        except OSError:  # evicted or cleared since: let the full path regenerate it
            self.memo.forget(uri, user)
            return None
        self.on_hit()
        info = {"user": user, "cache": "hit", "key": entry.short_key}
        if ("HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MODIFIED_SINCE" in environ) \
                and not_modified(environ, entry.etag, entry.mtime):
            f.close()
            start_response("304 Not Modified", not_modified_headers(entry.headers))
            return "304", info, []
        start_response("200 OK", entry.response_headers)
        if method == "HEAD":
            f.close()
            return "200", info, []
        wrapper = environ.get("wsgi.file_wrapper")
        return "200", info, (wrapper(f, 65536) if wrapper else _read_all(f))


def _carries_key(environ: dict[str, Any]) -> bool:
    """A request with an API key goes to Flask, which checks the key (a wrong one is a 401)."""
    return "HTTP_X_API_KEY" in environ or "HTTP_AUTHORIZATION" in environ


def _read_all(f: Any) -> Iterable[bytes]:
    with f:
        yield f.read()


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)
