"""Notices between replicas: one Redis pub/sub connection per replica, fanned out to local handlers.

Pub/sub delivers to whoever listens at that moment and keeps nothing, so nothing depends on a notice
alone: a waiter that may have missed one (it subscribed late, Redis blinked) also looks at the state the
notice announces (a result key, a job's row), and the listener resubscribes after a lost connection.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from linkpix.replicas.connection import REDIS_ERRORS, RedisLink

log = logging.getLogger("linkpix.replicas")

Handler = Callable[[dict[str, Any]], None]


class Bus:
    """`on(topic, handler)` before `start()`; `publish(topic, message)` from anywhere (JSON objects)."""

    def __init__(self, shared: RedisLink) -> None:
        self._shared = shared
        self._handlers: dict[str, list[Handler]] = {}
        self._thread = threading.Thread(target=self._listen, name="redis-bus", daemon=True)
        self._ready = threading.Event()

    def channel(self, topic: str) -> str:
        return self._shared.key("bus", topic)

    def on(self, topic: str, handler: Handler) -> None:
        self._handlers.setdefault(self.channel(topic), []).append(handler)

    def start(self, wait: float = 2.0) -> Bus:
        self._shared.closers.append(lambda: self._thread.join(2.5))  # before the connection closes
        self._thread.start()
        self._ready.wait(wait)  # subscribed (or Redis is down: the listener goes on trying)
        return self

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        """Raises the Redis error (callers decide whether a lost notice matters)."""
        self._shared.redis.publish(self.channel(topic), json.dumps(message, ensure_ascii=False))

    def _listen(self) -> None:
        stop = self._shared.closed
        while not stop:
            pubsub = self._shared.redis.pubsub(ignore_subscribe_messages=True)
            try:
                if self._handlers:
                    pubsub.subscribe(*self._handlers)
                self._ready.set()
                while not self._shared.closed:
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._dispatch(message)
            except Exception as exc:
                if self._shared.closed:
                    return  # the connection was closed under the listener: shutting down
                if not isinstance(exc, REDIS_ERRORS):
                    raise
                log.debug("the replica bus lost Redis (%s); resubscribing", exc)
                self._shared.failed(exc, "listening")
                if self._wait(1.0):
                    return
            finally:
                try:
                    pubsub.close()
                except REDIS_ERRORS:
                    pass
            stop = self._shared.closed

    def _wait(self, seconds: float) -> bool:
        event = threading.Event()
        for _ in range(int(seconds * 10)):
            if self._shared.closed:
                return True
            event.wait(0.1)
        return self._shared.closed

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message.get("channel")
        if isinstance(channel, bytes):
            channel = channel.decode()
        try:
            body = json.loads(message["data"])
        except (ValueError, TypeError):
            log.warning("ignoring an unreadable notice on %s", channel)
            return
        for handler in self._handlers.get(channel, []):
            try:
                handler(body)
            except Exception:  # one handler's bug must not stop the notices
                log.exception("handling a notice on %s failed", channel)
