"""The objects one running API owns, built once by the app factory and handed to the blueprints.

Nothing here is a module-level global: tests build as many independent apps as they like, each with its
own configuration, ComfyUI pool and cache. Settings the dashboard may change while the API runs
(the ComfyUI backends, the cache limits) are applied live: the pool adds and retires backends on every
configuration reload (each run keeps the backend it started on), and the cache takes its new limits.

With `redis_url` the same interfaces get their Redis-backed twins (`linkpix/replicas/`, the jobs' `redis_*`
modules), and with `storage: s3` the cache is a bucket (`storage/s3.py`); neither is imported otherwise.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from linkpix.comfy import ComfyClient
from linkpix.comfy.pool import Pool
from linkpix.comfy.queuepeek import QueuePeek
from linkpix.comfy.stops import FILE_NAME as STOPS_FILE
from linkpix.comfy.stops import StopList
from linkpix.config import ConfigHolder, LoadedConfig, Settings
from linkpix.edit.editor import Editor
from linkpix.imaging.budget import BUDGET
from linkpix.jobs.manager import JobManager
from linkpix.jobs.targets import Targets
from linkpix.ops.usage import Usage, UsageBook
from linkpix.pipeline.characters import CharacterResolver
from linkpix.pipeline.fairqueue import FairQueue, LocalLedger
from linkpix.pipeline.generator import Generator
from linkpix.pipeline.previews import LiveRuns
from linkpix.providers.hosted import Providers
from linkpix.storage.cache import ImageCache
from linkpix.storage.jsonstore import JsonStore
from linkpix.storage.opening import open_image_cache, open_uploads
from linkpix.storage.uploads import Uploads
from linkpix.web.live import Live
from linkpix.web.memo import HitMemo

if TYPE_CHECKING:
    from linkpix.replicas.replica import Replica

EXTENSION = "linkpix"


@dataclass
class Services:
    config_holder: ConfigHolder
    store: JsonStore
    resolver: CharacterResolver
    pool: Pool
    cache: ImageCache
    generator: Generator
    memo: HitMemo
    uploads: Uploads
    jobs: JobManager | None = None
    editor: Editor | None = None
    recent_requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))
    closers: list[Callable[[], None]] = field(default_factory=list)  # run by close(): the fronts' sockets
    own_ports: set[int] = field(default_factory=set)  # ports this API was reached on (webhooks avoid them)
    replica: Replica | None = None  # with redis_url: what this replica shares with the others
    replica_name: str = ""
    usage: Usage | None = None  # GPU-seconds per user and day (ops/usage.py)
    live: Live | None = None  # live links' feeds and their writer (web/live.py)

    def webhook_targets(self) -> Targets:
        """The webhook rules in force: the allow list, every ComfyUI backend, LinkPix's own ports."""
        return webhook_targets(self.config.settings, self.own_ports)

    @property
    def config(self) -> LoadedConfig:
        return self.config_holder.get()

    @property
    def client(self) -> ComfyClient:
        """The first configured backend's client (for code that speaks to one ComfyUI; runs use the pool)."""
        return self.pool.members()[0].client

    def close(self) -> None:
        if self.live is not None:
            self.live.close()
        for closer in self.closers:
            closer()
        if self.jobs is not None:
            self.jobs.close()
        self.pool.close()
        self.pool.stops.close()
        if self.usage is not None:
            self.usage.close()
        if self.replica is not None:
            self.replica.close()
        self.cache.close()  # the last published pictures reach the disk (storage/durable.py)

    def fingerprint(self) -> tuple[Any, ...]:
        """Changes whenever anything that could change which image a URL maps to changes: the
        configuration, a style, a placeholder definition, a preference, a workflow or its settings."""
        return self.resolver.fingerprint()


def build_services(holder: ConfigHolder) -> Services:
    """Build the parts in the order data flows: pool, cache, uploads, resolver (characters' reference pictures
    are uploads), generator, then the editor and the job manager with uploads handed in. `settings` is read
    at each use, so reloads apply; only state that must be rebuilt (the pool's backends, the cache's limits)
    subscribes to reloads."""
    cfg = holder.get()
    s = cfg.settings
    settings = holder.settings
    pool = Pool(s.backends(), StopList(cfg.data_dir / STOPS_FILE))
    holder.subscribe(lambda new: pool.update(new.settings.backends()))
    _ask_previews(pool, s)
    holder.subscribe(lambda new: _ask_previews(pool, new.settings))
    store = JsonStore()
    providers = Providers(lambda: settings().providers)
    cache = open_image_cache(cfg)
    holder.subscribe(lambda new: cache.set_limits(int(new.settings.cache_max_mb * 1024 * 1024),
                                                  new.settings.cache_max_age_days * 86400))
    uploads = open_uploads(cfg, cache)  # before the resolver: characters' reference pictures are uploads
    resolver = CharacterResolver(holder.get, store, pool.object_info, pool.check_models, uploads=uploads,
                                 providers=providers)
    replica = None
    if s.redis_url:
        from linkpix.replicas.replica import open_replica

        replica = open_replica(s.redis_url, s.replica_name, s.replica_lease, s.api_port)
    half_life = lambda: settings().fair_half_life  # noqa: E731
    ledger = None
    if replica is not None:
        from linkpix.replicas.fairqueue import RedisLedger

        ledger = RedisLedger(replica.shared, replica.bus, half_life, lambda: settings().timeout, LocalLedger(half_life))
    queue = FairQueue(pool, lambda: settings().fair_depth, half_life, weights=lambda: settings().fair_weights,
                      ledger=ledger)
    if ledger is not None:
        ledger.listen(queue.dispatch)  # before the bus starts (replica.start below)
    generator = Generator(pool, cache, settings, shared=replica.flights if replica is not None else None,
                          providers=providers, queue=queue)
    usage: Usage
    if replica is not None:
        from linkpix.ops.usage import RedisUsageBook

        usage = RedisUsageBook(replica.shared.redis)
    else:
        usage = UsageBook(cfg.data_dir / "usage.sqlite3")
    own_ports: set[int] = set()
    editor = Editor(resolver, generator, cache, uploads, lambda: settings().edit_max_megapixels)
    BUDGET.configure(s.edit_memory_mb * 1024 * 1024)  # full-resolution work (imaging/budget.py)
    holder.subscribe(lambda new: BUDGET.configure(new.settings.edit_memory_mb * 1024 * 1024))
    position = QueuePeek(pool.client).position  # a listing a second old at most: polls must not load ComfyUI
    targets = lambda: webhook_targets(settings(), own_ports)  # noqa: E731
    if replica is not None:
        from linkpix.jobs.replicated_manager import SharedJobManager

        jobs: JobManager = SharedJobManager.open_shared(replica.shared, replica.bus, generator, cache,
                                                        settings, position, uploads, webhook_targets=targets,
                                                        finish_edit=editor.finish_job, data_dir=cfg.data_dir)
        replica.start(resolver.fingerprint, store.invalidate)
    else:
        jobs = JobManager.open(cfg.data_dir, generator, cache, settings, position, uploads, webhook_targets=targets,
                               replica=s.replica_name or default_replica_name(s.api_port),
                               finish_edit=editor.finish_job)
    live = Live(LiveRuns(generator, lambda backend: pool.client(backend).control.queue()))
    return Services(holder, store, resolver, pool, cache, generator, HitMemo(), uploads, jobs, editor,
                    own_ports=own_ports, replica=replica, replica_name=jobs.replica or "", usage=usage, live=live)


def _ask_previews(pool: Pool, settings: Settings) -> None:
    """Every backend asks ComfyUI for previews as `preview_method` says (new backends too, after a reload)."""
    for member in pool.members():
        member.client.preview_method = settings.preview_method


def default_replica_name(port: int) -> str:
    """host:api_port, as a replica names itself when `replica_name` is not set."""
    import socket

    return f"{socket.gethostname()}:{port}"


def webhook_targets(settings: Settings, own_ports: set[int]) -> Targets:
    """Without the Services object: the job manager resumes webhooks while it is being built."""
    return Targets(tuple(settings.webhook_allow), tuple(settings.backend_urls),
                   tuple(sorted(own_ports | {settings.api_port, settings.web_port})))


def services(app: Flask | None = None) -> Services:
    return (app or current_app).extensions[EXTENSION]
