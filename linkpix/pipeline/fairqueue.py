"""LinkPix's own queue in front of the ComfyUI backends: who runs next, by each user's fair share.

ComfyUI runs prompts first come, first served, so one script that queues fifty prompts holds the GPU for
everyone. LinkPix therefore gives each backend only what keeps it busy - `depth` of LinkPix's runs (one
running, one waiting in ComfyUI's own queue, so the GPU never idles between two runs) - and keeps
everything else here, where the order is ours to choose.

The rule (why it is this and not plain deficit round robin: docs/fair-queue.md): when a backend has room,
the next run goes to the waiting user with the least GPU-seconds used recently, divided by the user's
weight. "Used" is what ComfyUI reported for that user's finished runs, decayed with a half-life
(`fair_half_life`), plus an estimate for each of their runs already handed to a backend (the mean run
time so far), replaced by the real figure when the run ends. Within one user, requests someone waits
for at a link or a live preview go before that user's background jobs, oldest first. A request that no
backend with room can run (its model is elsewhere, busy) lets the next one past; none is lost: a
request waits until a backend takes it, ComfyUI refuses it, or its waiters leave.

With `redis_url`, several replicas feed the same backends: the ledger (`replicas/fairqueue.py`) then
keeps the shares, the runs on each backend and every replica's waiting requests in Redis, and a replica
hands a backend to its own best request only when no other replica's waiting request has a better claim
(or that one has not been taken for DEFER_MAX seconds: it may fit no backend that has room).

Runs are charged as their real GPU-seconds arrive, so a user of 40-second runs and one of 4-second runs
get equal GPU time, not equal run counts; the decay forgets old use, so a user who had the GPU alone
for a while yields to a newcomer until their shares meet, and nobody is owed credit forever.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from linkpix.comfy.pool import AllBusy
from linkpix.errors import LinkPixError

POLL = 0.5  # s between a waiter's own looks at the pool (a backend that came back wakes nobody)
FIRST_ESTIMATE = 1.0  # s a run is assumed to take before any ended
ESTIMATE_WEIGHT = 0.2  # how much each ended run moves the estimate (an exponential mean)
DEFER_MAX = 1.0  # s a replica leaves room to another replica's better-placed request before using it itself


@dataclass(frozen=True)
class Rival:
    """A request waiting on another replica: enough to place it in the order (never its prompt)."""

    user: str
    interactive: bool
    since: float  # wall clock


class Ledger(Protocol):
    """What the queue shares with other replicas, if any (`LocalLedger`: nothing; Redis: everything)."""

    def used(self, user: str) -> float: ...

    def charge(self, user: str, seconds: float) -> None: ...

    def granted(self) -> dict[str, float]: ...

    def busy(self, url: str) -> int | None: ...

    def take(self, slot: Slot, url: str, depth: int) -> bool: ...

    def give_back(self, slot: Slot) -> None: ...

    def enter(self, key: str, user: str, interactive: bool, since: float) -> None: ...

    def leave(self, key: str) -> None: ...

    def rivals(self) -> list[Rival]: ...

    def estimate(self, mine: float) -> float: ...


@dataclass
class Slot:
    """A place on a backend given to one run: release it with `FairQueue.finish` when the run is over."""

    client: Any
    user: str
    estimate: float
    id: str = ""


@dataclass
class _Waiting:
    seq: int
    key: str
    user: str
    interactive: bool
    graph: dict[str, Any]
    exclude: list[Any]
    since: float = field(default_factory=time.time)
    ready: threading.Event = field(default_factory=threading.Event)
    slot: Slot | None = None
    error: LinkPixError | None = None
    withdrawn: bool = False


class Shares:
    """GPU-seconds each user used, decayed with a half-life: old use counts less and less."""

    def __init__(self, half_life: Callable[[], float]) -> None:
        self._half_life = half_life
        self._used: dict[str, tuple[float, float]] = {}  # user -> (seconds, as of)

    def used(self, user: str, now: float) -> float:
        seconds, at = self._used.get(user, (0.0, now))
        half = self._half_life()
        return seconds if half <= 0 else seconds * math.pow(0.5, (now - at) / half)

    def charge(self, user: str, seconds: float, now: float) -> None:
        self._used[user] = (self.used(user, now) + seconds, now)


class LocalLedger:
    """One process, nothing shared: the shares and the granted estimates in memory."""

    def __init__(self, half_life: Callable[[], float]) -> None:
        self._shares = Shares(half_life)
        self._granted: dict[str, float] = {}  # user -> estimates of runs on a backend, not yet charged

    def used(self, user: str) -> float:
        return self._shares.used(user, time.monotonic())

    def charge(self, user: str, seconds: float) -> None:
        self._shares.charge(user, seconds, time.monotonic())

    def granted(self) -> dict[str, float]:
        return self._granted

    def busy(self, url: str) -> int | None:
        return None  # the pool's own count of this process's runs is the whole truth

    def take(self, slot: Slot, url: str, depth: int) -> bool:
        self._granted[slot.user] = self._granted.get(slot.user, 0.0) + slot.estimate
        return True

    def give_back(self, slot: Slot) -> None:
        self._granted[slot.user] = max(0.0, self._granted.get(slot.user, 0.0) - slot.estimate)

    def enter(self, key: str, user: str, interactive: bool, since: float) -> None:
        """Nobody else to tell."""

    def leave(self, key: str) -> None:
        """Nobody else to tell."""

    def rivals(self) -> list[Rival]:
        return []

    def estimate(self, mine: float) -> float:
        return mine


class FairQueue:
    """See the module docstring. `acquire` blocks until the pool reserved a backend for the request."""

    def __init__(self, pool: Any, depth: Callable[[], int] = lambda: 2,
                 half_life: Callable[[], float] = lambda: 3600.0,
                 weights: Callable[[], Mapping[str, float]] = dict, ledger: Ledger | None = None) -> None:
        self._pool = pool
        self._depth = depth
        self._weights = weights
        self._lock = threading.Lock()
        self._waiting: dict[str, list[_Waiting]] = {}  # by user, in arrival order
        self._by_key: dict[str, _Waiting] = {}
        self._seq = itertools.count()
        self.ledger: Ledger = ledger if ledger is not None else LocalLedger(half_life)
        self._running: dict[str, int] = {}
        self._slot_ids = itertools.count()
        self._deferred: dict[tuple[str, float], float] = {}  # another replica's request -> since we yield to it
        self.estimate = FIRST_ESTIMATE

    # --- the generator's side ---------------------------------------------------------------------
    def acquire(self, key: str, user: str, graph: dict[str, Any], *, interactive: bool,
                exclude: list[Any], cancelled: Callable[[], bool]) -> Slot | None:
        """Wait for this request's turn and a backend with room; the reserved backend, or None if the
        waiters left meanwhile. Raises what the pool raises when nobody can run it (400, 503)."""
        entry = _Waiting(next(self._seq), key, user, interactive, graph, list(exclude))
        with self._lock:
            self._waiting.setdefault(user, []).append(entry)
            self._by_key[key] = entry
        try:
            self.ledger.enter(key, user, interactive, entry.since)
            self.dispatch()
            self._refuse_if_nobody_can(entry)
            while not entry.ready.wait(POLL):
                if cancelled():
                    break
                self._refuse_if_nobody_can(entry)
                self.ledger.enter(key, user, entry.interactive, entry.since)  # renews its lease
                self.dispatch()  # a backend may have come back without anyone finishing
        finally:
            with self._lock:
                entry.withdrawn = True
                self._remove(entry)
            self.ledger.leave(key)
        if entry.error is not None:
            raise entry.error
        return entry.slot

    def _refuse_if_nobody_can(self, entry: _Waiting) -> None:
        """No backend that could run it answers (all frozen, down or excluded): the request hears the pool's
        own 503 at once instead of waiting for a room that no backend will offer (`has_room` skips frozen
        ones, so `dispatch` alone would never tell it)."""
        if entry.ready.is_set() or self._pool.can_run(entry.graph, entry.exclude):
            return
        try:
            client = self._pool.choose(entry.graph, exclude=entry.exclude)
        except LinkPixError as exc:
            with self._lock:
                if not entry.ready.is_set():
                    entry.error = exc
                    self._remove(entry)
                    entry.ready.set()
            return
        self._pool.unreserve(client)  # it came back meanwhile: the queue hands it out in turn

    def withdraw(self, key: str) -> None:
        """Every waiter of `key` left: wake its queued request so that it leaves the queue now."""
        with self._lock:
            entry = self._by_key.get(key)
        if entry is not None:
            entry.ready.set()

    def promote(self, key: str) -> None:
        """Someone now waits at a link for a queued background request: it goes ahead of its user's jobs."""
        with self._lock:
            entry = self._by_key.get(key)
            if entry is not None:
                entry.interactive = True

    def finish(self, slot: Slot, gpu_seconds: float | None) -> None:
        """The run on `slot` is over: charge its user what ComfyUI reported, and give the room away."""
        with self._lock:  # charged before the room is given back: a replica woken by it sees the charge
            if gpu_seconds is not None and gpu_seconds >= 0:
                self.ledger.charge(slot.user, gpu_seconds)
                self.estimate += ESTIMATE_WEIGHT * (gpu_seconds - self.estimate)
            self.ledger.give_back(slot)
            self._running[slot.user] = max(0, self._running.get(slot.user, 0) - 1)
        self.dispatch()

    # --- the order --------------------------------------------------------------------------------
    def dispatch(self) -> None:
        """Hand backends with room to waiting requests, best claim first (see the module docstring)."""
        depth = max(1, self._depth())
        with self._lock:
            while self._by_key and self._pool.has_room(depth, self.ledger.busy):
                if not self._grant_next(depth):
                    return

    def _grant_next(self, depth: int) -> bool:
        claims = self._claims()
        now = time.monotonic()
        listed = self.ledger.rivals()
        rivals = [r for r in listed if now - self._deferred.get((r.user, r.since), now) < DEFER_MAX]
        for user in sorted(self._waiting, key=lambda u: (claims(u), self._waiting[u][0].since)):
            for entry in self._in_user_order(self._waiting[user]):
                if entry.withdrawn or entry.ready.is_set():
                    continue
                try:
                    client = self._pool.choose(entry.graph, exclude=entry.exclude, depth=depth, busy=self.ledger.busy)
                except AllBusy:
                    continue  # its backends are full; another request may fit elsewhere
                except LinkPixError as exc:  # nobody can run it at all: the request hears why
                    entry.error = exc
                    self._remove(entry)
                    entry.ready.set()
                    return True
                mine = (claims(user), not entry.interactive, entry.since)
                better = [r for r in rivals if (claims(r.user), not r.interactive, r.since) < mine]
                if better:  # another replica's request goes first; it takes the room itself. The wait for it
                    self._pool.unreserve(client)  # (DEFER_MAX) counts from when there is room, for the best
                    best = min(better, key=lambda r: (claims(r.user), not r.interactive, r.since))
                    self._deferred.setdefault((best.user, best.since), now)  # only: the next gets its own
                    return False
                slot = Slot(client, user, self.ledger.estimate(self.estimate), f"{id(self):x}-{next(self._slot_ids)}")
                if not self.ledger.take(slot, client.base_url, depth):  # another replica filled it first
                    self._pool.unreserve(client)
                    return False
                entry.slot = slot
                self._running[user] = self._running.get(user, 0) + 1
                live = {(r.user, r.since) for r in listed}
                self._deferred = {k: v for k, v in self._deferred.items() if k in live}
                self._remove(entry)
                entry.ready.set()
                return True
        return False

    def _claims(self) -> Callable[[str], float]:
        """A user's claim on the next run: recent GPU-seconds plus runs under way, over the weight."""
        granted = dict(self.ledger.granted())
        weights = self._weights()
        cache: dict[str, float] = {}

        def claim(user: str) -> float:
            if user not in cache:
                weight = max(1e-6, float(weights.get(user, 1.0)))
                cache[user] = (self.ledger.used(user) + granted.get(user, 0.0)) / weight
            return cache[user]

        return claim

    @staticmethod
    def _in_user_order(entries: list[_Waiting]) -> list[_Waiting]:
        return sorted(entries, key=lambda e: (not e.interactive, e.seq))

    def _remove(self, entry: _Waiting) -> None:
        entries = self._waiting.get(entry.user)
        if entries is not None and entry in entries:
            entries.remove(entry)
            if not entries:
                del self._waiting[entry.user]
        if self._by_key.get(entry.key) is entry:
            del self._by_key[entry.key]

    # --- what /health and the Monitor show --------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Per user: the places of their waiting requests in the order they would run (1 = next), how
        many run now, and their recent GPU-seconds. No prompt is shown."""
        with self._lock:
            claim = self._claims()
            waiting = [(e.user, e.interactive, e.since) for es in self._waiting.values() for e in es]
            waiting += [(r.user, r.interactive, r.since) for r in self.ledger.rivals()]
            queues: dict[str, list[tuple[bool, float]]] = {}
            for user, interactive, since in waiting:
                queues.setdefault(user, []).append((not interactive, since))
            for entries in queues.values():
                entries.sort()
            claims = {u: claim(u) for u in queues}
            users = set(queues) | {u for u, n in self._running.items() if n}
            rows = {u: {"user": u, "waiting": len(queues.get(u, [])), "interactive":
                        sum(1 for e in queues.get(u, []) if not e[0]), "running": self._running.get(u, 0),
                        "recent_gpu_seconds": round(self.ledger.used(u), 2), "positions": []}
                    for u in users}
            estimate = self.estimate
        order = self._run_order(queues, claims, estimate)
        for place, (user, _) in enumerate(order, 1):
            rows[user]["positions"].append(place)
        return {"waiting": len(order), "depth": self._depth(), "users": sorted(rows.values(), key=lambda r: r["user"])}

    def place(self, key: str) -> int | None:
        """Where the request waiting under `key` stands in the order the queue would run everything now
        (1 = next; other replicas' requests counted); None when it does not wait here."""
        with self._lock:
            if key not in self._by_key:
                return None
            claim = self._claims()
            queues: dict[str, list[tuple[bool, float, str | None]]] = {}
            for e in (e for es in self._waiting.values() for e in es if not (e.withdrawn or e.ready.is_set())):
                queues.setdefault(e.user, []).append((not e.interactive, e.since, e.key))
            for r in self.ledger.rivals():
                queues.setdefault(r.user, []).append((not r.interactive, r.since, None))
            for entries in queues.values():
                entries.sort(key=lambda t: t[:2])
            claims = {u: claim(u) for u in queues}
            estimate = self.estimate
        for place, (_, entry) in enumerate(self._run_order(queues, claims, estimate), 1):
            if entry[2] == key:
                return place
        return None

    def _run_order(self, queues: Mapping[str, list[Any]], claims: dict[str, float],
                   estimate: float) -> list[tuple[str, Any]]:
        """Every waiting entry as (user, entry) in the order the queue would run them: the smallest claim
        next (then the oldest head), each taken run adding the mean run time over the user's weight.
        `queues` holds each user's entries sorted, with `since` second."""
        order: list[tuple[str, Any]] = []
        heads = {u: 0 for u in queues}
        while any(heads[u] < len(queues[u]) for u in queues):
            user = min((u for u in queues if heads[u] < len(queues[u])),
                       key=lambda u: (claims[u], queues[u][heads[u]][1]))
            order.append((user, queues[user][heads[user]]))
            heads[user] += 1
            claims[user] += estimate / max(1e-6, float(self._weights().get(user, 1.0)))
        return order

    def waiting(self) -> int:
        with self._lock:
            return len(self._by_key)
