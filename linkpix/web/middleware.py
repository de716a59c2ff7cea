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

from .memo import HitMemo
from .requestinfo import raw_uri, user_from_environ, wants_json

log = logging.getLogger("linkpix.access")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class RequestLog:
    """Writes one line per request: method, path, status, user, cache outcome, key and milliseconds.

    The newest requests are also kept in `recent` (a bounded deque) for GET /api/requests.
    """

    def __init__(self, app: WSGIApp, recent: deque[dict[str, Any]] | None = None,
                 observe: Callable[[dict[str, Any], str], None] | None = None) -> None:
        """`observe(environ, status)` is told of every request too (the metrics count them there)."""
        self.app = app
        self.recent = recent if recent is not None else deque(maxlen=200)
        self.observe = observe

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        info: dict[str, Any] = {}
        environ["linkpix.log"] = info
        status_holder: list[str] = []

        def _start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status_holder.append(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        def _done() -> None:
            ms = (time.perf_counter() - started) * 1000
            path = environ.get("PATH_INFO", "")
            path = path if len(path) <= 96 else path[:93] + "..."
            status = status_holder[0] if status_holder else "-"
            if self.observe is not None:
                self.observe(environ, status)
            extra = " ".join(f"{k}={v}" for k, v in info.items() if v is not None)
            log.info("%s %s %s %.1fms %s", environ.get("REQUEST_METHOD"), path, status, ms, extra)
            method = environ.get("REQUEST_METHOD")
            if path.startswith(("/prompt", "/generate", "/images", "/sdapi/v1/txt2img", "/sdapi/v1/img2img",
                                "/v1/images")) or (path.startswith("/jobs") and method != "GET"):
                self.recent.append({"time": time.time(), "method": method, "path": path,
                                    "status": int(status) if status.isdigit() else None, "ms": round(ms, 1),
                                    **info})

        return ClosingIterator(self.app(environ, _start), [_done])


class HitPath:
    """Answers repeat GET/HEAD /prompt requests straight from the memo; everything else goes to Flask."""

    def __init__(self, app: WSGIApp, memo: HitMemo, fingerprint: Callable[[], Any],
                 prefix: str = "/prompt/") -> None:
        self.app = app
        self.memo = memo
        self.fingerprint = fingerprint
        self.prefix = prefix

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method in ("GET", "HEAD") and environ.get("PATH_INFO", "").startswith(self.prefix) \
                and not wants_json(environ) and not _carries_key(environ):
            response = self._serve(environ, start_response, method)
            if response is not None:
                return response
        return self.app(environ, start_response)

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any],
               method: str) -> Iterable[bytes] | None:
        uri, user = raw_uri(environ), user_from_environ(environ)
        entry = self.memo.get(uri, user, self.fingerprint())
        if entry is None:
            return None
        try:
            f = open(entry.path, "rb")
        except OSError:  # evicted or cleared since: let the full path regenerate it
            self.memo.forget(uri, user)
            return None
        info = environ.get("linkpix.log")
        if info is not None:
            info.update(user=user, cache="hit", key=entry.key[:12])
        if environ.get("HTTP_IF_NONE_MATCH") == entry.etag:
            f.close()
            start_response("304 Not Modified", [h for h in entry.headers if h[0] != "Content-Type"])
            return []
        headers = [*entry.headers, ("Content-Length", str(entry.size))]
        start_response("200 OK", headers)
        if method == "HEAD":
            f.close()
            return []
        wrapper = environ.get("wsgi.file_wrapper")
        return wrapper(f, 65536) if wrapper else _read_all(f)


def _carries_key(environ: dict[str, Any]) -> bool:
    """A request with an API key goes to Flask, which checks the key (a wrong one is a 401)."""
    return "HTTP_X_API_KEY" in environ or "HTTP_AUTHORIZATION" in environ


def _read_all(f: Any) -> Iterable[bytes]:
    with f:
        yield f.read()


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)
