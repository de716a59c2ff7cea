"""The fair queue's ledger in Redis (`redis_url`): the replicas feed the same ComfyUI backends, so the
order must be one order, whichever replica a request reached.

What is shared (keys under `linkpix:fair:`):

- `used`: each user's recent GPU-seconds, decayed with the half-life (value and when, per user), charged
  atomically by a script as runs end on any replica;
- `slots`: every run handed to a backend by any replica (user, estimate, backend URL, expiry), so that a
  backend gets `fair_depth` runs in all and not per replica; a slot is taken by a script that counts and
  adds in one step, and expires `timeout` + a minute after it was taken (a replica that died leaks none);
- `waiting`: every replica's waiting requests (user, link or job, since when; never the prompt), each
  renewed while it waits, so that each replica knows whether another's request should go first.

A `fair` notice on the bus tells the other replicas a backend has room. If Redis stops answering, the
ledger falls back to this replica's own figures (fairness within the replica, no refusals): the queue
must never stop the runs because the bookkeeping blinked.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from linkpix.replicas.bus import Bus
from linkpix.replicas.connection import REDIS_ERRORS, RedisLink

log = logging.getLogger("linkpix.replicas")

WAITING_LEASE = 5.0  # s a waiting request stays listed without being renewed (renewed every 0.5 s)
SLOT_SPARE = 60.0  # s a slot outlives the run timeout before another replica may count it as gone
TOPIC = "fair"
ESTIMATE_WEIGHT = 0.2  # as the in-process estimate: each ended run moves it this much

_TAKE = """
local now, url, depth = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local n = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local slot = cjson.decode(all[i + 1])
  if slot.expires < now then redis.call('HDEL', KEYS[1], all[i]) elseif slot.url == url then n = n + 1 end
end
if n >= depth then return 0 end
redis.call('HSET', KEYS[1], ARGV[4], ARGV[5])
return 1
"""
_CHARGE = """
local now, half, add = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local value, at = 0, now
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then local d = cjson.decode(cur); value = d[1]; at = d[2] end
if half > 0 and now > at then value = value * math.pow(0.5, (now - at) / half) end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({value + add, now}))
local est = tonumber(redis.call('GET', KEYS[2]) or ARGV[4])
redis.call('SET', KEYS[2], tostring(est + tonumber(ARGV[5]) * (add - est)))
return 1
"""


class Rival(NamedTuple):
    """Another replica's waiting request, as the queue reads one (`pipeline/fairqueue.Rival`'s fields)."""

    user: str
    interactive: bool
    since: float


class RedisLedger:
    """The `Ledger` of `pipeline/fairqueue.py` in Redis; see the module docstring. `local` is the
    in-memory ledger used while Redis does not answer (the app factory passes a `LocalLedger`)."""

    def __init__(self, shared: RedisLink, bus: Bus, half_life: Callable[[], float],
                 timeout: Callable[[], float], local: Any) -> None:
        self._shared = shared
        self._redis = shared.redis
        self._bus = bus
        self._half_life = half_life
        self._timeout = timeout
        self._local = local
        self._keys = {name: shared.key("fair", name) for name in ("used", "slots", "waiting", "estimate")}
        self._take = self._redis.register_script(_TAKE)
        self._charge = self._redis.register_script(_CHARGE)
        self._down = False

    def listen(self, dispatch: Callable[[], None]) -> None:
        """Before the bus starts: another replica's ended run may leave room for ours."""
        self._bus.on(TOPIC, lambda _message: dispatch())

    def _call(self, fn: Callable[[], Any], fallback: Callable[[], Any]) -> Any:
        try:
            result = fn()
        except REDIS_ERRORS as exc:
            if not self._down:
                log.warning("the fair queue's Redis does not answer (%s): each replica orders its own "
                            "requests until it does", exc)
            self._down = True
            return fallback()
        if self._down:
            log.info("the fair queue's Redis answers again")
            self._down = False
        return result

    # --- shares -----------------------------------------------------------------------------------
    def used(self, user: str) -> float:
        raw = self._call(lambda: self._redis.hget(self._keys["used"], user), lambda: None)
        if raw is None:
            return self._local.used(user) if self._down else 0.0
        value, at = json.loads(raw)
        half = self._half_life()
        return float(value) if half <= 0 else float(value) * math.pow(0.5, max(0.0, time.time() - at) / half)

    def charge(self, user: str, seconds: float) -> None:
        self._local.charge(user, seconds)
        self._call(lambda: self._charge(keys=[self._keys["used"], self._keys["estimate"]],
                                        args=[user, time.time(), self._half_life(), seconds, ESTIMATE_WEIGHT]),
                   lambda: None)

    def estimate(self, mine: float) -> float:
        """The mean run time over every replica's runs (this replica's own until any run ended)."""
        raw = self._call(lambda: self._redis.get(self._keys["estimate"]), lambda: None)
        return mine if raw is None else float(raw)

    # --- runs on the backends ---------------------------------------------------------------------
    def _slots(self) -> list[dict[str, Any]]:
        raw = self._call(lambda: self._redis.hgetall(self._keys["slots"]), lambda: None)
        if raw is None:
            return []
        now = time.time()
        return [s for s in (json.loads(v) for v in raw.values()) if s.get("expires", 0) >= now]

    def granted(self) -> dict[str, float]:
        if self._down:
            return self._local.granted()
        out: dict[str, float] = {}
        for slot in self._slots():
            out[slot["user"]] = out.get(slot["user"], 0.0) + float(slot.get("estimate", 0.0))
        return out

    def busy(self, url: str) -> int | None:
        if self._down:
            return None
        return sum(1 for s in self._slots() if s.get("url") == url)

    def take(self, slot: Any, url: str, depth: int) -> bool:
        self._local.take(slot, url, depth)
        body = json.dumps({"user": slot.user, "estimate": slot.estimate, "url": url, "replica": self._shared.name,
                           "expires": time.time() + self._timeout() + SLOT_SPARE})
        taken = self._call(lambda: self._take(keys=[self._keys["slots"]],
                                              args=[time.time(), url, depth, self._slot_id(slot), body]), lambda: 1)
        if not taken:
            self._local.give_back(slot)
        return bool(taken)

    def give_back(self, slot: Any) -> None:
        self._local.give_back(slot)
        self._call(lambda: self._redis.hdel(self._keys["slots"], self._slot_id(slot)), lambda: None)
        self._call(lambda: self._bus.publish(TOPIC, {"replica": self._shared.name}), lambda: None)

    def _slot_id(self, slot: Any) -> str:
        return f"{self._shared.name}/{slot.id}"

    # --- who waits where --------------------------------------------------------------------------
    def enter(self, key: str, user: str, interactive: bool, since: float) -> None:
        body = json.dumps({"user": user, "interactive": interactive, "since": since, "replica": self._shared.name,
                           "expires": time.time() + WAITING_LEASE})
        self._call(lambda: self._redis.hset(self._keys["waiting"], f"{self._shared.name}/{key}", body), lambda: None)

    def leave(self, key: str) -> None:
        self._call(lambda: self._redis.hdel(self._keys["waiting"], f"{self._shared.name}/{key}"), lambda: None)

    def rivals(self) -> list[Rival]:
        raw = self._call(lambda: self._redis.hgetall(self._keys["waiting"]), lambda: None)
        if not raw:
            return []
        now, out = time.time(), []
        for value in raw.values():
            entry = json.loads(value)
            if entry.get("replica") != self._shared.name and entry.get("expires", 0) >= now:
                out.append(Rival(str(entry["user"]), bool(entry.get("interactive")), float(entry["since"])))
        return out
