"""The objects one running API owns, built once by the app factory and handed to the blueprints.

Nothing here is a module-level global: tests build as many independent apps as they like, each with its
own configuration, ComfyUI client and cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app

from ..cache import ImageCache
from ..comfy import ComfyClient
from ..config import ConfigHolder, LoadedConfig
from ..generator import Generator
from ..jobs import JobManager
from ..jsonstore import JsonStore
from ..resolver import Resolver
from .memo import HitMemo

EXTENSION = "linkpix"


@dataclass
class Services:
    config_holder: ConfigHolder
    store: JsonStore
    resolver: Resolver
    client: ComfyClient
    cache: ImageCache
    generator: Generator
    memo: HitMemo
    jobs: JobManager | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> LoadedConfig:
        return self.config_holder.get()

    def fingerprint(self) -> tuple[Any, ...]:
        """Changes whenever anything that could change which image a URL maps to changes: the
        configuration, a style, a placeholder definition, a preference, a workflow or its settings."""
        return self.resolver.fingerprint()


def build_services(holder: ConfigHolder, client: ComfyClient | None = None) -> Services:
    cfg = holder.get()
    s = cfg.settings
    client = client or ComfyClient(s.comfyui_url)
    store = JsonStore()
    resolver = Resolver(holder.get, store, lambda: _object_info_or_none(client))
    cache = ImageCache(cfg.output_dir, int(s.cache_max_mb * 1024 * 1024), s.cache_max_age_days * 86400)
    generator = Generator(client, cache, lambda: holder.get().settings.timeout,
                          lambda: holder.get().settings.max_pending)
    jobs = JobManager.open(cfg.data_dir, generator, cache, lambda: holder.get().settings, client.queue_position)
    return Services(holder, store, resolver, client, cache, generator, HitMemo(), jobs)


def _object_info_or_none(client: ComfyClient) -> dict[str, Any] | None:
    """object_info for validation, or None when ComfyUI is down (it will refuse bad values itself)."""
    try:
        return client.object_info()
    except Exception:
        return None


def services(app: Flask | None = None) -> Services:
    return (app or current_app).extensions[EXTENSION]
