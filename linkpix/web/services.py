"""The objects one running API owns, built once by the app factory and handed to the blueprints.

Nothing here is a module-level global: tests build as many independent apps as they like, each with its
own configuration, ComfyUI client and cache. Settings the dashboard may change while the API runs
(the ComfyUI URL, the cache limits) are applied live: the client is looked up per run, and the cache
takes its limits from every configuration reload.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app

from ..comfy import ComfyClient
from ..comfy.holder import ClientHolder
from ..config import ConfigHolder, LoadedConfig, Settings
from ..edit.editor import Editor
from ..generator import Generator
from ..jobs.manager import JobManager
from ..jobs.targets import Targets
from ..resolver import Resolver
from ..storage.cache import ImageCache
from ..storage.jsonstore import JsonStore
from .memo import HitMemo

EXTENSION = "linkpix"


@dataclass
class Services:
    config_holder: ConfigHolder
    store: JsonStore
    resolver: Resolver
    clients: ClientHolder
    cache: ImageCache
    generator: Generator
    memo: HitMemo
    jobs: JobManager | None = None
    editor: Editor | None = None
    recent_requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))
    closers: list[Callable[[], None]] = field(default_factory=list)  # run by close(): the fronts' sockets
    own_ports: set[int] = field(default_factory=set)  # ports this API was reached on (webhooks avoid them)

    def webhook_targets(self) -> Targets:
        """The webhook rules in force: the allow list, every ComfyUI backend, LinkPix's own ports."""
        return webhook_targets(self.config.settings, self.own_ports)

    @property
    def config(self) -> LoadedConfig:
        return self.config_holder.get()

    @property
    def client(self) -> ComfyClient:
        """The ComfyUI client for the URL configured now."""
        return self.clients.current()

    def close(self) -> None:
        for closer in self.closers:
            closer()
        if self.jobs is not None:
            self.jobs.close()
        self.clients.close()

    def fingerprint(self) -> tuple[Any, ...]:
        """Changes whenever anything that could change which image a URL maps to changes: the
        configuration, a style, a placeholder definition, a preference, a workflow or its settings."""
        return self.resolver.fingerprint()


def build_services(holder: ConfigHolder, client: ComfyClient | None = None) -> Services:
    cfg = holder.get()
    s = cfg.settings
    settings = lambda: holder.get().settings  # noqa: E731 - read at each use, so reloads apply
    clients = ClientHolder(lambda: settings().comfyui_url, lambda: settings().timeout, client)
    store = JsonStore()
    resolver = Resolver(holder.get, store, lambda: _object_info_or_none(clients.current()))
    cache = ImageCache(cfg.output_dir, int(s.cache_max_mb * 1024 * 1024), s.cache_max_age_days * 86400)
    holder.subscribe(lambda new: cache.set_limits(int(new.settings.cache_max_mb * 1024 * 1024),
                                                  new.settings.cache_max_age_days * 86400))
    generator = Generator(clients.current, cache, lambda: settings().timeout, lambda: settings().max_pending,
                          strip_metadata=lambda: settings().strips_metadata)
    own_ports: set[int] = set()
    jobs = JobManager.open(cfg.data_dir, generator, cache, settings,
                           lambda prompt_id: clients.current().queue_position(prompt_id),
                           webhook_targets=lambda: webhook_targets(settings(), own_ports))
    editor = Editor(resolver, generator, cache, lambda: jobs.uploads)
    jobs.finish_edit = editor.finish_job
    svc = Services(holder, store, resolver, clients, cache, generator, HitMemo(), jobs, editor,
                   own_ports=own_ports)
    return svc


def webhook_targets(settings: Settings, own_ports: set[int]) -> Targets:
    """Without the Services object: the job manager resumes webhooks while it is being built."""
    return Targets(tuple(settings.webhook_allow), tuple(settings.backend_urls),
                   tuple(sorted(own_ports | {settings.api_port, settings.web_port})))


def _object_info_or_none(client: ComfyClient) -> dict[str, Any] | None:
    """object_info for validation, or None when ComfyUI is down (it will refuse bad values itself)."""
    try:
        return client.object_info()
    except Exception:
        return None


def services(app: Flask | None = None) -> Services:
    return (app or current_app).extensions[EXTENSION]
