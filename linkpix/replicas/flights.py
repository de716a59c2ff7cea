"""Single-flight across replicas: the first replica to claim a cache key runs it, the others wait for its
completion notice and serve the image it stored in the shared cache.

The claim is a redis-py `Lock` with a lease (`replica_lease`) that the running replica renews every third
of it, so the claim of a replica that died lapses within one lease and a waiter claims the key itself.
The outcome is both published on the bus and kept for a minute under a result key, so a waiter that
subscribed late, or whose notice Redis lost, still finds it. Claimed runs are also listed in a sorted
set scored by their lease's end: its live members are the generations pending across every replica (the
`max_pending` cap), and a dead replica's members fall out by themselves.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import LockError
from redis.lock import Lock

from linkpix.errors import GenerationTimeout
from linkpix.replicas.bus import Bus
from linkpix.replicas.connection import REDIS_ERRORS, RedisLink

log = logging.getLogger("linkpix.replicas")

RESULT_SECONDS = 60  # how long an outcome is kept for waiters that missed the notice
POLL = 1.0  # s between looks at the claim and the result key while waiting (besides the notice)
TOPIC = "flights"


class Claim:
    """This replica runs the key: the lease is renewed until `release()`."""

    def __init__(self, flights: SharedFlights, key: str, lock: Lock) -> None:
        self._flights = flights
        self.key = key
        self._lock = lock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{key[:8]}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        shared = self._flights.shared
        while not self._stop.wait(shared.lease / 3):
            try:
                self._lock.extend(shared.lease, replace_ttl=True)
                shared.redis.zadd(self._flights.running_key, {self.key: time.time() + shared.lease})
            except LockError:
                log.warning("the claim on run %s lapsed before it ended (this replica was too slow to renew it); "
                            "another replica may run it too", self.key[:12])
                return
            except Exception as exc:  # Redis errors; a closed connection while shutting down
                if shared.closed:
                    return
                log.warning("could not renew the claim on run %s: %s", self.key[:12], exc)

    def done(self, outcome: dict[str, Any]) -> None:
        """Tell the waiting replicas how the run ended (`ok` with where the image is, or the error)."""
        shared = self._flights.shared
        body = json.dumps(dict(outcome, key=self.key), ensure_ascii=False)
        try:
            shared.redis.set(self._flights.result_key(self.key), body, ex=RESULT_SECONDS)
            self._flights.bus.publish(TOPIC, dict(outcome, key=self.key))
        except REDIS_ERRORS as exc:  # the waiters find the claim gone and run it themselves
            log.warning("could not announce the end of run %s: %s", self.key[:12], exc)

    def release(self) -> None:
        self._stop.set()
        shared = self._flights.shared
        try:
            shared.redis.zrem(self._flights.running_key, self.key)
            self._lock.release()
        except (LockError, *REDIS_ERRORS):
            pass  # lapsed already, or Redis is down: the lease ends by itself


class SharedFlights:
    """The cross-replica half of the generator's single-flight."""

    def __init__(self, shared: RedisLink, bus: Bus) -> None:
        self.shared = shared
        self.bus = bus
        self.running_key = shared.key("flights")
        self._lock = threading.Lock()
        self._waiting: dict[str, threading.Event] = {}
        bus.on(TOPIC, self._notice)

    def lock_key(self, key: str) -> str:
        return self.shared.key("flight", key)

    def result_key(self, key: str) -> str:
        return self.shared.key("flight", key, "result")

    def _notice(self, body: dict[str, Any]) -> None:
        with self._lock:
            event = self._waiting.get(str(body.get("key")))
        if event is not None:
            event.set()

    def pending(self) -> int:
        """Runs claimed by any replica whose lease is live."""
        def count() -> int:
            now = time.time()
            self.shared.redis.zremrangebyscore(self.running_key, "-inf", now)
            return int(self.shared.redis.zcard(self.running_key))
        return self.shared.call("starting a new picture", count)

    def claimed(self, key: str) -> bool:
        return bool(self.shared.call("starting a new picture", lambda: self.shared.redis.exists(self.lock_key(key))))

    def claim(self, key: str) -> Claim | None:
        """This replica's claim on `key`, or None when another replica holds it (then `wait`)."""
        shared = self.shared
        lock = Lock(shared.redis, self.lock_key(key), timeout=shared.lease, thread_local=False)

        def take() -> bool:
            if not lock.acquire(blocking=False):
                return False
            shared.redis.delete(self.result_key(key))  # an older outcome of the key is not this run's
            shared.redis.zadd(self.running_key, {key: time.time() + shared.lease})
            return True

        return Claim(self, key, lock) if shared.call("starting a new picture", take) else None

    def wait(self, key: str, deadline: float, abandoned: Callable[[], bool]) -> dict[str, Any] | None:
        """The outcome another replica announced for `key`; None when its claim ended without one (it
        died, or Redis lost the result): the caller then claims the key itself."""
        event = threading.Event()
        with self._lock:
            self._waiting[key] = event
        try:
            while True:
                outcome = self.shared.call("waiting for another replica's run", lambda: self._look(key))
                if outcome is not False:
                    return outcome  # type: ignore[return-value]
                if abandoned():
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise GenerationTimeout(f"another replica's run of this picture gave no result within the "
                                            f"timeout (key {key[:12]})")
                event.wait(min(POLL, remaining))
                event.clear()
        finally:
            with self._lock:
                if self._waiting.get(key) is event:
                    del self._waiting[key]

    def _look(self, key: str) -> dict[str, Any] | None | bool:
        """The kept outcome; None if nobody holds the claim any more; False while the run goes on."""
        pipe = self.shared.redis.pipeline()
        pipe.get(self.result_key(key))
        pipe.exists(self.lock_key(key))
        raw, held = pipe.execute()
        if raw is not None:
            return json.loads(raw)
        return False if held else None
