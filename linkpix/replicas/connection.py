"""The Redis connection one replica uses, what /health says about it, and the one place Redis errors
become an answer a person can act on.

Every call that needs Redis goes through `RedisLink.call` (or catches `REDIS_ERRORS` and calls `failed`):
a Redis that does not answer is a 503 naming it, never a stack trace or a hang (every socket operation
has a short timeout). A keeper thread pings Redis every second, so `/health` reports its state without
ever waiting on it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis

from linkpix.errors import SharedUnavailable

log = logging.getLogger("linkpix.replicas")

REDIS_ERRORS = (redis.RedisError, OSError)
PREFIX = "linkpix:"
PING_INTERVAL = 1.0
T = TypeVar("T")


def display(url: str) -> str:
    """The Redis URL without its password (it goes into messages and /health)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username + ':' if parts.username else ''}***@{host}{f':{parts.port}' if parts.port else ''}"
    return parts._replace(netloc=netloc).geturl()


def default_name(port: int) -> str:
    return f"{socket.gethostname()}:{port}"


class RedisLink:
    """One replica's handle on the shared Redis: `redis` (the client), `name`, `lease`, `key(...)`."""

    def __init__(self, url: str, name: str, lease: float) -> None:
        self.url = url
        self.name = name
        self.lease = lease
        # Short timeouts: a Redis that stops answering must cost a request seconds at most.
        self.redis = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=2,
                                          health_check_interval=5, decode_responses=False)
        self._lock = threading.Lock()
        self.up: bool | None = None
        self.error: str | None = None
        self.since = time.time()
        self._stop = threading.Event()
        self._keeper = threading.Thread(target=self._keep, name="redis-keeper", daemon=True)
        self.closers: list[Callable[[], None]] = []

    def start(self) -> RedisLink:
        self._probe()
        self._keeper.start()
        return self

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        for closer in reversed(self.closers):
            try:
                closer()
            except Exception:
                log.exception("closing a shared component failed")
        self.redis.close()

    def key(self, *parts: str) -> str:
        return PREFIX + ":".join(parts)

    # -- health ------------------------------------------------------------------------------------
    def _keep(self) -> None:
        while not self._stop.wait(PING_INTERVAL):
            self._probe()

    def _probe(self) -> None:
        try:
            self.redis.ping()
        except REDIS_ERRORS as exc:
            self._set(False, _reason(exc))
        else:
            self._set(True, None)

    def _set(self, up: bool, error: str | None) -> None:
        with self._lock:
            first, changed = self.up is None, up != self.up
            self.up, self.error = up, error if not up else None
            if changed:
                self.since = time.time()
        if changed and up:
            log.info("Redis at %s %s", display(self.url), "connected" if first else "answers again")
        elif changed:
            log.warning("Redis at %s does not answer (%s): new pictures and jobs are refused, cached pictures "
                        "are still served", display(self.url), error)

    def health(self) -> dict[str, Any]:
        """What /health shows: never waits on Redis (the keeper's last answer)."""
        with self._lock:
            return {"url": display(self.url), "state": "up" if self.up else "down", "since": self.since,
                    "error": self.error}

    # -- calls -------------------------------------------------------------------------------------
    def failed(self, exc: BaseException, doing: str) -> SharedUnavailable:
        """The 503 for a Redis error met while `doing` something (and the state /health shows)."""
        reason = _reason(exc)
        self._set(False, reason)
        return SharedUnavailable(f"Redis at {display(self.url)}, which the replicas share their work through, "
                                 f"does not answer ({reason}), so {doing} is refused for now; cached pictures "
                                 "are still served. Try again shortly.", {"redis": display(self.url)})

    def call(self, doing: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except REDIS_ERRORS as exc:
            raise self.failed(exc, doing) from None


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
