"""Quotas in GPU-seconds (`rate_limits_user: {"gpu_seconds": "600/day"}`), on the `limits` counters.

A run's cost is known only when it ends, so the quota is checked before a run starts (any seconds left
in every window?) and charged after (the run's GPU-seconds, rounded up). The last run may overshoot the
quota by its own length; the next one is refused with 429 and `Retry-After` until old use leaves the
window. Cached pictures and runs joined from another request start nothing and cost nothing.
"""

from __future__ import annotations

import math
import time

from linkpix.ops.ratelimit import RateLimited, RateLimiter

CLASS = "gpu_seconds"


class GpuQuota:
    """`admit(user)` before a run starts; `charge(user, seconds)` when it ended."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    def admit(self, user: str) -> None:
        """RateLimited (429) when `user` has no GPU-seconds left in some window of their quota."""
        now = time.time()
        for policy in self._limiter.policies(CLASS):
            if policy.scope != "user":
                continue
            stats = self._limiter.strategy.get_window_stats(policy.item, CLASS, _key(user))
            if stats.remaining <= 0:
                wait = max(1, math.ceil(stats.reset_time - now))
                allowed = policy.describe().replace(" per ", " GPU-seconds per ", 1)
                raise RateLimited(f"user {user!r} has used the GPU time their quota allows (gpu_seconds: {allowed}); "
                                  f"cached pictures are still served; new runs again in {wait} s", retry_after=wait,
                                  details={"class": CLASS, "retry_after": wait, "policies": [policy.name]})

    def charge(self, user: str, seconds: float) -> None:
        cost = max(1, math.ceil(seconds))
        for policy in self._limiter.policies(CLASS):
            if policy.scope != "user":
                continue
            left = int(self._limiter.strategy.get_window_stats(policy.item, CLASS, _key(user)).remaining)
            if left > 0:  # a moving window refuses more than is left: count the overshoot as the rest
                self._limiter.strategy.hit(policy.item, CLASS, _key(user), cost=min(cost, left))


def _key(user: str) -> str:
    return f"user:{user}"
