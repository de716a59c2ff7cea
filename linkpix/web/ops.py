"""Running LinkPix for others: the metrics, the last hour's figures and the rate limits of one app.

`install` builds them with the app (nothing global: every app counts only its own requests), feeds the
metrics from the generator, the webhook sender and the request log, and serves `GET /metrics`
(Prometheus' text format, or OpenMetrics when asked) and `GET /api/stats/history` (the Monitor's plots).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client.exposition import choose_encoder

from linkpix.config import LoadedConfig
from linkpix.errors import LinkPixError
from linkpix.ops.gpuquota import GpuQuota
from linkpix.ops.metrics import Metrics, Snapshot
from linkpix.ops.minutes import History, Sampler, Totals
from linkpix.ops.ratelimit import RateLimiter, make_storage, parse_networks
from linkpix.web import ratelimits
from linkpix.web.auth import require
from linkpix.web.errors import no_store
from linkpix.web.services import Services

bp = Blueprint("ops", __name__)

ROUTE = "linkpix.route"  # environ: the URL rule that answered (set by Flask, read by the request log)
PROMPT_RULE = "/prompt/<path:text>"  # the rule of the links the memoised hit path answers outside Flask


@dataclass
class Ops:
    metrics: Metrics
    history: History
    limiter: RateLimiter
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(default_factory=tuple)

    def observe_request(self, environ: dict[str, Any], status: str) -> None:
        """The request log's hook: one call per answered request, the memoised hits included."""
        route = environ.get(ROUTE)
        if route is None and environ.get("PATH_INFO", "").startswith("/prompt/"):
            route = PROMPT_RULE
        self.metrics.observe_request(route, environ.get("REQUEST_METHOD", ""), status)


def install(app: Flask, svc: Services) -> Ops:
    """Build the app's metrics, history and limiter, and hook them up; call after `guards.install`."""
    metrics = Metrics(lambda: _snapshot(svc))
    history = History(lambda: _totals(svc, metrics))
    ops = Ops(metrics, history, RateLimiter(make_storage(svc.config.settings.redis_url)))  # Redis: shared

    def _apply(cfg: LoadedConfig) -> None:
        s = cfg.settings
        ops.limiter.configure(s.rate_limits_user, s.rate_limits_address)
        ops.trusted_proxies = parse_networks(s.trusted_proxies)

    _apply(svc.config)
    svc.config_holder.subscribe(_apply)
    svc.generator.on_run = metrics.observe_run
    quota = GpuQuota(ops.limiter)

    def _on_gpu(user: str, seconds: float) -> None:
        """One run's GPU-seconds: the usage book, the Prometheus counter, the user's quota."""
        metrics.observe_gpu(user, seconds)
        quota.charge(user, seconds)
        if svc.usage is not None:
            svc.usage.add(user, seconds)

    svc.generator.on_gpu = _on_gpu
    svc.generator.admit_run = quota.admit
    def _on_cost(user: str, provider: str, cost: float, seconds: float) -> None:
        """One hosted provider run: the Prometheus counters and the usage book, beside GPU-seconds."""
        metrics.observe_cost(user, provider, cost, seconds)
        if svc.usage is not None:
            svc.usage.add_cost(user, cost)

    if svc.generator.providers is not None:
        svc.generator.providers.on_cost = _on_cost
    if svc.jobs is not None:
        svc.jobs.webhooks.observe = metrics.observe_webhook
    svc.closers.append(Sampler(history).start().close)
    app.extensions[ratelimits.OPS] = ops
    app.teardown_request(_remember_route)
    ratelimits.install(app)
    app.register_blueprint(bp)
    return ops


def _remember_route(_error: BaseException | None) -> None:
    rule = request.url_rule
    request.environ[ROUTE] = rule.rule if rule is not None else None


def _snapshot(svc: Services) -> Snapshot:
    cache = svc.cache.stats()
    cache.pop("users", None)
    try:
        jobs = svc.jobs.store.count_by_state() if svc.jobs is not None and not svc.jobs.closed else None
    except LinkPixError:  # the jobs are in Redis, which does not answer: the other figures still count
        jobs = None
    return Snapshot(cache=cache, in_flight=svc.generator.pending, jobs=jobs)


def _totals(svc: Services, metrics: Metrics) -> Totals:
    try:
        waiting = svc.jobs.store.count_waiting() if svc.jobs is not None and not svc.jobs.closed else 0
    except LinkPixError:  # Redis does not answer
        waiting = 0
    return Totals(requests=metrics.total_requests, hits=svc.cache.hits, misses=svc.cache.misses,
                  runs=metrics.run_count, run_seconds=metrics.run_seconds_sum,
                  queue=svc.generator.pending + waiting)


@bp.get("/metrics")
def metrics() -> Response:
    """The service's figures for Prometheus.
    ---
    get:
      summary: Metrics in Prometheus' text format (OpenMetrics when the Accept header asks for it)
      description: "Requests by route and status, cache hits and misses, generation seconds by workflow
        and backend, runs in flight, jobs by state and queued, webhook deliveries by outcome, requests
        refused by a rate limit, cache bytes and files. With network_access on, it needs an API key."
      responses:
        200:
          description: "the metrics"
          content:
            text/plain: {schema: {type: string}}
            application/openmetrics-text: {schema: {type: string}}
        401: {description: "network_access is on and no valid API key was sent"}
    """
    require("reading the metrics")
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encoder(current_app.extensions[ratelimits.OPS].metrics.registry)
    return no_store(Response(body, content_type=content_type))


@bp.get("/api/stats/history")
def stats_history() -> Response:
    """The last hour, minute by minute (what the dashboard's Monitor plots).
    ---
    get:
      summary: Per-minute figures of the last hour
      description: "Oldest first; the last point is the minute under way (partial: true). hit_rate and
        generation_seconds are null in a minute without cache lookups or finished runs."
      responses:
        200:
          description: "minutes and points"
          content:
            application/json:
              schema:
                type: object
                properties:
                  minutes: {type: integer, description: "how many closed minutes are kept"}
                  points:
                    type: array
                    items:
                      type: object
                      properties:
                        time: {type: number, description: "start of the minute (Unix seconds)"}
                        seconds: {type: number, description: "length covered (60, less for the minute under way)"}
                        partial: {type: boolean}
                        requests: {type: integer, description: "requests answered (monitoring routes left out)"}
                        hit_rate: {type: number, nullable: true, description: "cache hits / lookups"}
                        runs: {type: integer, description: "ComfyUI runs that succeeded"}
                        generation_seconds: {type: number, nullable: true, description: "mean seconds of those runs"}
                        queue: {type: integer, description: "runs under way plus jobs waiting to start"}
        401: {description: "network_access is on and no valid API key was sent"}
    """
    require("reading the statistics")
    history = current_app.extensions[ratelimits.OPS].history
    return no_store(jsonify({"minutes": history.minutes, "points": history.points()}))
