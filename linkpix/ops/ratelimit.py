"""Rate limits per user and per client address, by class of work, on top of the `limits` library.

One greedy user or a looping bot must not starve everyone else, but a person reloading a page of cached
pictures must not be stopped either: so work is limited by class (`links`: new pictures made through
links; `jobs`: POST /generate and /edit; `uploads`; `hits`: cached pictures, unlimited unless
configured), each with its own rates per user and per address (`rate_limits_user`,
`rate_limits_address`, in the `limits` notation: "30/minute;500/day").

The counting is `limits`' moving window, which behaves like a token bucket refilled as old requests
leave the window. The counters live in one storage built by `make_storage`, the one line that changes
when several replicas share them (`limits`' Redis storage). A refused request consumes nothing, so a
client that waits as it is told (`Retry-After`) gets through.

The answer is described with the IETF draft's fields (draft-ietf-httpapi-ratelimit-headers-11):
`RateLimit-Policy: "links-user";q=30;w=60` and `RateLimit: "links-user";r=0;t=12`.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from linkpix.errors import QueueFull, SharedUnavailable

CLASSES = ("links", "jobs", "uploads", "hits", "gpu_seconds")  # the last: per user only (ops/gpuquota.py)
SCOPES = ("user", "address")
# What a class counts, for messages a person reads.
_WHAT = {"links": "new pictures", "jobs": "jobs", "uploads": "uploads", "hits": "image requests",
         "gpu_seconds": "GPU-seconds"}


class RateLimited(QueueFull):
    """A rate limit was reached: 429 with `Retry-After` (a QueueFull, so every dialect's handler that
    knows QueueFull answers it in its own shape)."""

    code = "rate_limited"


def parse_rates(value: Mapping[str, str]) -> dict[str, list[RateLimitItem]]:
    """`{"links": "30/minute;500/day"}` -> parsed items; ValueError naming the class or text that is wrong."""
    parsed: dict[str, list[RateLimitItem]] = {}
    for cls, text in value.items():
        if cls not in CLASSES:
            raise ValueError(f"unknown class {cls!r}; the classes are {', '.join(CLASSES)}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{cls}: give a rate such as \"30/minute\" or \"30/minute;500/day\"")
        try:
            parsed[cls] = list(parse_many(text))
        except ValueError:
            raise ValueError(f"{cls}: {text!r} is not a rate; write e.g. \"30/minute\", \"10 per hour\" or "
                             "\"30/minute;500/day\"") from None
    return parsed


def make_storage(url: str = "memory://") -> Storage:
    """Where the counters live: this process's memory, or with `redis_url` (several replicas sharing the
    limits) `limits`' Redis storage, and nothing else changes."""
    if not url:
        return storage_from_string("memory://")
    # Short timeouts, as for every Redis call: a Redis that hangs must not hold a request.
    return storage_from_string(url, socket_timeout=3, socket_connect_timeout=2)


@dataclass(frozen=True)
class Policy:
    """One configured rate of one class and scope, named as the RateLimit fields name it."""

    name: str
    cls: str
    scope: str
    item: RateLimitItem

    @property
    def quota(self) -> int:
        return int(self.item.amount)

    @property
    def window(self) -> int:
        return int(self.item.get_expiry())

    def describe(self) -> str:
        """"30 per minute", "100 per 2 hours"."""
        n, unit = self.item.multiples, self.item.GRANULARITY.name
        return f"{self.quota} per {unit}" if n == 1 else f"{self.quota} per {n} {unit}s"


@dataclass
class Verdict:
    """What one check found: allowed or not, and each policy's state for the RateLimit fields."""

    allowed: bool
    cls: str
    cost: int = 1
    states: list[tuple[Policy, int, int]] = field(default_factory=list)  # policy, remaining, seconds to reset
    violated: list[tuple[Policy, int, str]] = field(default_factory=list)  # policy, retry after, whose

    @property
    def retry_after(self) -> int:
        return max((seconds for _, seconds, _ in self.violated), default=0)

    def headers(self) -> list[tuple[str, str]]:
        """`RateLimit-Policy` and `RateLimit` (draft-11: Structured Field lists; names are strings)."""
        if not self.states:
            return []
        policy = ", ".join(f'"{p.name}";q={p.quota};w={p.window}' for p, _, _ in self.states)
        current = ", ".join(f'"{p.name}";r={max(0, r)};t={t}' for p, r, t in self.states)
        return [("RateLimit-Policy", policy), ("RateLimit", current)]

    def error(self) -> RateLimited:
        policy, seconds, whose = max(self.violated, key=lambda v: v[1])
        if self.cost > policy.quota:  # waiting will not help: say so
            text = (f"{self.cost} {_WHAT[self.cls]} at once {whose} are more than the limit of "
                    f"{policy.describe()} allows; ask for fewer")
        else:
            text = f"too many {_WHAT[self.cls]} {whose}: the limit is {policy.describe()}; try again in {seconds} s"
        return RateLimited(text, retry_after=seconds,
                           details={"class": self.cls, "retry_after": seconds,
                                    "policies": [p.name for p, _, _ in self.violated]})


class RateLimiter:
    """Checks and counts requests against the configured policies; `configure` applies new settings live."""

    def __init__(self, storage: Storage | None = None) -> None:
        self.storage = storage or make_storage()
        self._strategy = MovingWindowRateLimiter(self.storage)
        self._lock = threading.Lock()
        self._policies: dict[str, list[Policy]] = {}
        self.limits_hits = False  # read on every cached link: a plain attribute

    def configure(self, user: Mapping[str, str], address: Mapping[str, str]) -> None:
        policies: dict[str, list[Policy]] = {cls: [] for cls in CLASSES}
        for scope, rates in (("user", user), ("address", address)):
            for cls, items in parse_rates(rates).items():
                for item in items:
                    name = f"{cls}-{scope}" + (f"-{int(item.get_expiry())}s" if len(items) > 1 else "")
                    policies[cls].append(Policy(name, cls, scope, item))
        with self._lock:
            self._policies = {cls: found for cls, found in policies.items() if found}
            self.limits_hits = "hits" in self._policies

    def limited(self, cls: str) -> bool:
        return cls in self._policies

    def policies(self, cls: str) -> list[Policy]:
        """The policies configured for `cls` (none: not limited)."""
        return list(self._policies.get(cls, []))

    @property
    def strategy(self) -> MovingWindowRateLimiter:
        """The `limits` strategy over this limiter's storage (for counts that are not requests)."""
        return self._strategy

    def check(self, cls: str, user: str | None, address: str | None, who: str = "", cost: int = 1) -> Verdict:
        """Count `cost` requests of `cls` for `user` and `address` if every policy allows them; otherwise
        count nothing and say which policy refused and for how long. `who` names the user in messages."""
        policies = self._policies.get(cls, [])
        keys = {"user": f"user:{user}" if user else None, "address": address_key(address)}
        applicable = [(p, keys[p.scope]) for p in policies if keys[p.scope] is not None]
        verdict = Verdict(True, cls, cost)
        if not applicable:
            return verdict
        try:
            return self._count(verdict, applicable, cls, cost, who)
        except Exception as exc:  # the shared storage (Redis) does not answer; memory never raises
            if self.storage.__class__.__name__.startswith("Memory"):
                raise
            if cls == "hits":  # cached pictures are served while Redis is down
                return Verdict(True, cls, cost)
            raise SharedUnavailable(f"the rate limits are kept in Redis, which does not answer ({exc}); new "
                                    "work is refused for now, cached pictures are still served") from None

    def _count(self, verdict: Verdict, applicable: list[tuple[Policy, str]], cls: str, cost: int,
               who: str) -> Verdict:
        refused = [(p, key) for p, key in applicable if not self._strategy.test(p.item, cls, key, cost=cost)]
        if not refused:
            refused = [(p, key) for p, key in applicable if not self._strategy.hit(p.item, cls, key, cost=cost)]
        now = time.time()
        for p, key in applicable:
            stats = self._strategy.get_window_stats(p.item, cls, key)
            verdict.states.append((p, int(stats.remaining), max(0, math.ceil(stats.reset_time - now))))
        if refused:
            verdict.allowed = False
            for p, key in refused:
                stats = self._strategy.get_window_stats(p.item, cls, key)
                whose = f"for user {who!r}" if p.scope == "user" else "from this address"
                verdict.violated.append((p, max(1, math.ceil(stats.reset_time - now)), whose))
        return verdict

    def reset(self) -> None:
        """Forget every count (the dashboard's maintenance, and tests)."""
        self.storage.reset()


def address_key(address: str | None) -> str | None:
    """The counter key of a client address. An IPv6 client usually holds a whole /64, and could
    otherwise take a fresh address per request, so IPv6 addresses count by their /64."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"addr:{address}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"addr:{ip.ipv4_mapped}"
        return f"addr:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"addr:{ip}"


def client_address(environ: Mapping[str, Any], trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
                   ) -> str | None:
    """The client's address: the peer, or, when the peer is a trusted proxy, the right-most address of
    X-Forwarded-For that is not itself a trusted proxy (each proxy appends the address it saw, so
    everything left of the first untrusted hop could have been written by the client)."""
    peer = environ.get("REMOTE_ADDR")
    if not trusted or not peer or not _in(peer, trusted):
        return peer
    forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop if _is_ip(hop) else peer
    return hops[0] if hops and _is_ip(hops[0]) else peer


def parse_networks(values: list[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`["10.0.0.0/8", "127.0.0.1"]` -> networks; ValueError naming an entry that is not one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an address or network (write 10.0.0.0/8 or 127.0.0.1)") from None
    return tuple(networks)


def _in(address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return any(ip in net for net in networks)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
