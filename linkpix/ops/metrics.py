"""The service's own figures, for Prometheus (`GET /metrics`) and for the dashboard's plots.

One `Metrics` per app, with its own `CollectorRegistry` (never the library's global default registry:
tests build many apps in one process, and each must count only its own requests). Figures are of two
kinds:

- counted as things happen, at the one place each passes: requests (the request log, which sees the
  memoised hit path too), ComfyUI runs (the generator), webhook deliveries (the webhook sender),
  requests refused by a rate limit;
- read when Prometheus scrapes (`Figures`): the cache's hits, misses, bytes and files, runs in flight,
  jobs by state. Nothing is computed for them on the request path.

Label values are bounded: a request is labelled with its Flask URL rule (`/prompt/<path:text>`), never
its path, and methods outside the usual few are `other`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # a request no route answered (404, 405)
# Seconds: from a cached-model SD1.5 run on a fast GPU to a long video-ish workflow on a slow one.
GENERATION_BUCKETS = (0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 120, 180, 300, 600)
# Routes that watch the service rather than use it: not "requests per minute" in the plots.
MONITORING = frozenset({"/metrics", "/health", "/ready", "/api/stats/history", "/api/requests", "/openapi.json",
                        "/jobs"})  # the last: the job list a dashboard polls (a client polls /jobs/<id>)


@dataclass(frozen=True)
class Snapshot:
    """What the scrape-time figures read: one call to each source, all optional."""

    cache: dict[str, Any] | None = None  # ImageCache.stats()
    in_flight: int | None = None  # runs under way (the generator's flights)
    jobs: dict[str, int] | None = None  # jobs by state


class Figures(Collector):
    """Figures read at scrape time from the service's objects."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        try:
            snap = self._snapshot()
        except Exception:  # a scrape must answer with what it has, never fail
            log.exception("reading the figures for /metrics failed")
            return
        if snap.cache is not None:
            yield _counter("linkpix_cache_hits", "Pictures served from the cache", snap.cache.get("hits", 0))
            yield _counter("linkpix_cache_misses", "Requests that needed a ComfyUI run (or a shared one)",
                           snap.cache.get("misses", 0))
            yield GaugeMetricFamily("linkpix_cache_bytes", "Bytes of pictures in the cache",
                                    value=snap.cache.get("bytes", 0))
            yield GaugeMetricFamily("linkpix_cache_files", "Pictures in the cache", value=snap.cache.get("images", 0))
        if snap.in_flight is not None:
            yield GaugeMetricFamily("linkpix_runs_in_flight", "ComfyUI runs under way (identical requests share one)",
                                    value=snap.in_flight)
        if snap.jobs is not None:
            jobs = GaugeMetricFamily("linkpix_jobs", "Async jobs kept, by state", labels=["state"])
            for state, count in snap.jobs.items():
                jobs.add_metric([state], count)
            yield jobs
            yield GaugeMetricFamily("linkpix_jobs_queued", "Async jobs waiting for ComfyUI to start them",
                                    value=snap.jobs.get("queued", 0))


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


class Metrics:
    """The registry of one app and the counters fed as things happen."""

    def __init__(self, snapshot: Callable[[], Snapshot] = Snapshot) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("linkpix_http_requests", "HTTP requests answered, by route, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.generation_seconds = Histogram("linkpix_generation_seconds",
                                            "Seconds of successful ComfyUI runs, by workflow and backend",
                                            ["workflow", "backend"], buckets=GENERATION_BUCKETS,
                                            registry=self.registry)
        self.runs = Counter("linkpix_runs", "ComfyUI runs ended, by workflow, backend and outcome (ok or the "
                            "error code)", ["workflow", "backend", "outcome"], registry=self.registry)
        self.webhooks = Counter("linkpix_webhook_deliveries", "Webhook deliveries ended, by outcome "
                                "(delivered, failed)", ["outcome"], registry=self.registry)
        self.webhook_attempts = Counter("linkpix_webhook_attempts", "Webhook attempts, by result (2xx, 4xx, 5xx, "
                                        "refused, error)", ["result"], registry=self.registry)
        self.rate_limited = Counter("linkpix_rate_limited", "Requests refused by a rate limit, by class",
                                    ["class"], registry=self.registry)
        self.gpu_seconds = Counter("linkpix_gpu_seconds", "Seconds ComfyUI spent on runs (execution_start to "
                                   "execution_success), by the user they were counted for", ["user"],
                                   registry=self.registry)
        self.provider_cost = Counter("linkpix_provider_cost", "Cost of hosted provider runs (as configured "
                                     "per image or megapixel), by user and provider", ["user", "provider"],
                                     registry=self.registry)
        self.provider_runs = Counter("linkpix_provider_runs", "Hosted provider runs that gave a picture, by user "
                                     "and provider", ["user", "provider"], registry=self.registry)
        self.registry.register(Figures(snapshot))
        self._children: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()
        # Running totals the plots sample once a minute (cheaper to read than the registry).
        self.total_requests = 0
        self.run_seconds_sum = 0.0
        self.run_count = 0

    def observe_request(self, route: str | None, method: str, status: str) -> None:
        """One answered request. Called for every request, hits included: a dict lookup and an increment."""
        key = (route or UNMATCHED, method if method in METHODS else "other", status)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.setdefault(key, self.requests.labels(*key))
        child.inc()
        if key[0] not in MONITORING:
            self.total_requests += 1  # a lost increment under a race only blurs a plot by one request

    def observe_run(self, workflow: str, backend: str, seconds: float, outcome: str) -> None:
        """A ComfyUI run ended (the generator calls this once per run, however many requests shared it)."""
        backend = _public_backend(backend)
        self.runs.labels(workflow, backend, outcome).inc()
        if outcome == "ok":
            self.generation_seconds.labels(workflow, backend).observe(seconds)
            with self._lock:
                self.run_seconds_sum += seconds
                self.run_count += 1

    def observe_gpu(self, user: str, seconds: float) -> None:
        """A run's time in ComfyUI, for the user who started it (once per run)."""
        self.gpu_seconds.labels(user).inc(max(0.0, seconds))
    def observe_cost(self, user: str, provider: str, cost: float, seconds: float) -> None:
        """A hosted provider run gave a picture for `user`; what it cost, as configured."""
        self.provider_runs.labels(user, provider).inc()
        self.provider_cost.labels(user, provider).inc(cost)

    def observe_webhook(self, outcome: str) -> None:
        """`delivered` / `failed` for a delivery; `attempt:<result>` for one try."""
        if outcome.startswith("attempt:"):
            self.webhook_attempts.labels(outcome[8:]).inc()
        else:
            self.webhooks.labels(outcome).inc()

    def observe_refusal(self, cls: str) -> None:
        self.rate_limited.labels(cls).inc()


def _public_backend(backend: str) -> str:
    """A backend's name, or its URL without a password (a label is shown to whoever reads /metrics)."""
    if "://" not in backend:
        return backend
    parts = urlsplit(backend)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"
