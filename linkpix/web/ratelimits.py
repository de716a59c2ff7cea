"""Rate limits on the HTTP routes: which request counts as which class, for whom, and the answer.

Routes whose class is known before the view runs are checked here, before anything is read or rendered
(`ENDPOINT_CLASSES`). A link is a new picture or a cached one, which only the resolved job tells, so
`/prompt` calls `admit_generation` itself, and so may any other route that generates (the fronts: call
`admit_generation(job, user)` before `generator.generate`, or `admit(cls, user)`; the `RateLimited`
it raises is a `QueueFull`, so each dialect's own handler answers it, `Retry-After` included). Every
answer of a limited route carries the `RateLimit-Policy` and `RateLimit` fields, errors included.

Who is counted: a request with an API key counts for the key's user; one without counts for the user
it names (`?user=`, `X-LinkPix-User`, a job's `user` field), apart from that user's key, so naming
someone cannot use up their quota. Every request also counts for its client address: the peer, or with
`trusted_proxies`, the address the proxies name in `X-Forwarded-For`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from flask import Flask, Response, current_app, request

from linkpix.model import USER_NAME_RE, RenderedJob
from linkpix.ops.ratelimit import RateLimiter, client_address
from linkpix.web.auth import ANONYMOUS, identify
from linkpix.web.requestinfo import user_from_environ
from linkpix.web.services import services

log = logging.getLogger(__name__)

OPS = "linkpix.ops"
VERDICT = "linkpix.ops.ratelimit"  # environ: the verdict whose fields the response carries
# Routes whose class does not depend on what they are asked for.
ENDPOINT_CLASSES = {"jobs.generate": "jobs", "edit.edit": "jobs", "uploads.upload": "uploads",
                    "images.stored_image": "hits"}

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def install(app: Flask) -> None:
    app.before_request(_by_endpoint)
    app.after_request(_fields)


def _by_endpoint() -> None:
    cls = ENDPOINT_CLASSES.get(request.endpoint or "")
    if cls is not None:
        admit(cls)


def admit(cls: str, user: str | None = None, *, keyed: bool | None = None, cost: int = 1) -> None:
    """Count `cost` requests of class `cls` (links, jobs, uploads, hits); `RateLimited` (429) when a limit
    is reached. `user` defaults to the caller (the key's user, or the user the request names); `keyed`
    says whether that user was proven by a key (default: the request's API key names this user; a front
    with keys of its own says it, and then the API's key check is not asked)."""
    ops = current_app.extensions[OPS]
    limiter: RateLimiter = ops.limiter
    if not limiter.limited(cls):
        return
    if user is None:
        who = identify()
        keyed, user = who.keyed, who.user if who.keyed else _claimed_user()
    elif keyed is None:
        who = identify()
        keyed = who.keyed and who.user == user
    address = client_address(request.environ, ops.trusted_proxies)
    verdict = limiter.check(cls, ("key:" if keyed else "name:") + user, address, who=user, cost=cost)
    request.environ[VERDICT] = verdict
    if not verdict.allowed:
        ops.metrics.observe_refusal(cls)
        err = verdict.error()
        log.info("rate limited (%s) user=%s address=%s: %s", cls, user, address, err.message)
        raise err


def admit_generation(job: RenderedJob, user: str, *, keyed: bool | None = None) -> None:
    """Before generating `job` for `user`: a picture the cache holds counts as a hit, anything else as
    a new picture (`links`)."""
    admit_generations([job], user, keyed=keyed)


def admit_generations(jobs: Sequence[RenderedJob], user: str, *, keyed: bool | None = None) -> None:
    """Before generating a batch (a front's n images): checked whole, before anything runs, so a batch
    is never refused halfway. Pictures the cache holds count as hits, the others as new pictures."""
    limiter: RateLimiter = current_app.extensions[OPS].limiter
    if not (limiter.limited("links") or limiter.limited("hits")):
        return
    svc = services()
    cached = sum(1 for job in jobs
                 if not job.seed_is_random and svc.cache.get(user, svc.generator.key_for(job)) is not None)
    if cached:
        admit("hits", user, keyed=keyed, cost=cached)
    if len(jobs) > cached:
        admit("links", user, keyed=keyed, cost=len(jobs) - cached)


def _claimed_user() -> str:
    """The user a request without a key names: a job's `user` field, else `?user=` / X-LinkPix-User."""
    name: Any = None
    if request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            name = body.get("user")
    if not isinstance(name, str) or not name:
        name = user_from_environ(request.environ)
    return name if USER_NAME_RE.match(name) else ANONYMOUS


def _fields(resp: Response) -> Response:
    verdict = request.environ.get(VERDICT)
    if verdict is not None:
        for name, value in verdict.headers():
            resp.headers[name] = value
        if not verdict.allowed and "Retry-After" not in resp.headers:  # a dialect whose handler omits it
            resp.headers["Retry-After"] = str(verdict.retry_after)
    return resp


class HitGate:
    """In front of the memoised hit path: while cached hits are limited (`rate_limits_*.hits`), links go
    through Flask, where the limit is checked; otherwise the hit path answers as fast as it can."""

    def __init__(self, hit_path: WSGIApp, app: WSGIApp, limiter: RateLimiter) -> None:
        self.hit_path = hit_path
        self.app = app
        self.limiter = limiter

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.limiter.limits_hits:
            return self.app(environ, start_response)
        return self.hit_path(environ, start_response)
