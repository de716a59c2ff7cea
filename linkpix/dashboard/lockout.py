"""Wrong dashboard passwords are limited per client address: after a few, that address waits.

Gradio's login (`POST /login`) has no limit on tries, and its auth hook sees only the user name and the
password, not who is asking. So the limit sits in front of it, as ASGI middleware on Gradio's FastAPI
app: it reads the client address from the connection, counts Gradio's answers (400: wrong credentials,
200: logged in), and answers 429 with `Retry-After` while an address is locked out. The address is the
connection's peer: a forwarded-for header is not trusted, since any client could write one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]

MAX_FAILURES = 5  # wrong tries in a row before an address is locked out
LOCK_SECONDS = 300.0
MAX_TRACKED = 10_000  # addresses remembered at once; the oldest are forgotten first


class LoginLockout:
    """ASGI middleware that locks an address out of `POST /login` after `max_failures` wrong tries."""

    def __init__(self, app: ASGIApp, max_failures: int = MAX_FAILURES, lock_seconds: float = LOCK_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.max_failures = max_failures
        self.lock_seconds = lock_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}  # address -> (wrong tries, locked until)

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" \
                or scope.get("path", "").rstrip("/") != "/login":
            await self.app(scope, receive, send)
            return
        address = str((scope.get("client") or ("unknown",))[0])
        wait = self.locked_for(address)
        if wait > 0:
            await _too_many(send, wait, self.max_failures)
            return
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message.get("type") == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        await self.app(scope, receive, watch)
        if status and status[0] == 400:
            self.failed(address)
        elif status and 200 <= status[0] < 300:
            self.succeeded(address)

    def locked_for(self, address: str) -> float:
        """Seconds `address` must still wait (0: it may try)."""
        with self._lock:
            count, until = self._failures.get(address, (0, 0.0))
            remaining = until - self._clock()
            if count >= self.max_failures and remaining <= 0:
                del self._failures[address]  # served its time: a fresh start
            return max(0.0, remaining) if count >= self.max_failures else 0.0

    def failed(self, address: str) -> None:
        with self._lock:
            count, _ = self._failures.pop(address, (0, 0.0))
            count += 1
            until = self._clock() + self.lock_seconds if count >= self.max_failures else 0.0
            self._failures[address] = (count, until)  # re-inserted: the dict stays oldest-first
            while len(self._failures) > MAX_TRACKED:
                del self._failures[next(iter(self._failures))]

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)


async def _too_many(send: Callable[[Message], Awaitable[None]], wait: float, tries: int) -> None:
    seconds = int(wait) + 1
    body = json.dumps({"detail": f"{tries} wrong logins from this address: try again in {seconds} s"}).encode()
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", str(seconds).encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
