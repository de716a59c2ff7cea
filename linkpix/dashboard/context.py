"""What every tab needs: the current configuration, the shared-file store, and a client for the API.

One `DashboardContext` is built by `gradio_app.py` and passed to each tab's builder (no globals). The
configuration is re-read when `config.json` changes (the Settings tab writes it), so the tabs always see
what the API sees.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from linkpix.config import ConfigHolder, LoadedConfig, Settings
from linkpix.dashboard.apiclient import ApiClient, ApiError
from linkpix.dashboard.links import api_url
from linkpix.errors import ConfigError
from linkpix.render.placeholders import Registry
from linkpix.storage.jsonstore import JsonStore
from linkpix.storage.opening import open_image_cache

OBJECT_INFO_TTL = 60.0  # s an object_info answer is reused (it is large, and models change rarely)


def dashboard_auth(settings: Settings) -> tuple[str, str] | None:
    """The login Gradio asks for: required when the dashboard is reachable from the network.

    There is no default password on purpose: with network access on and no credentials the dashboard
    refuses to start, with a message that says how to set them.
    """
    if not settings.network_access:
        return None
    user, password = settings.dashboard_user.strip(), settings.dashboard_password
    if not user or not password:
        raise ConfigError("network_access is on, so the dashboard needs a login: set dashboard_user and "
                          "dashboard_password in config.json, or LINKPIX_DASHBOARD_USER and "
                          "LINKPIX_DASHBOARD_PASSWORD in the environment / .env (or turn network_access off)")
    return user, password


@dataclass
class DashboardContext:
    config_path: Path
    holder: ConfigHolder
    store: JsonStore = field(default_factory=JsonStore)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    _object_info: tuple[float, str, dict[str, Any]] | None = None
    _cache: tuple[int, Any] | None = None

    @classmethod
    def open(cls, config_path: str | os.PathLike[str]) -> DashboardContext:
        path = Path(config_path).resolve()
        return cls(path, ConfigHolder(path))

    @property
    def config(self) -> LoadedConfig:
        return self.holder.get()

    @property
    def settings(self) -> Settings:
        return self.config.settings

    @property
    def api_url(self) -> str:
        return api_url(self.settings.api_port, self.environ)

    def api(self, timeout: float = 10.0) -> ApiClient:
        """A client for the API; with network access on it sends a configured API key, since
        state-changing routes (POST /generate) then require one: the first admin key when there is one
        (the Monitor lists every user's jobs and requests), else the first key."""
        keys = list(self.settings.admin_keys) + list(self.settings.api_keys)
        key = keys[0] if keys and self.settings.network_access else None
        return ApiClient(self.api_url, key, timeout)

    def image_cache(self) -> Any:
        """The API's image cache as this process may see it: its folder (opened afresh by each use, never
        tidied from here), or the bucket with `storage: s3` (one client, made again when the configuration
        changes)."""
        config, generation = self.config, self.holder.generation
        if config.settings.storage != "s3":
            return config.output_dir
        if self._cache is None or self._cache[0] != generation:
            self._cache = (generation, open_image_cache(config, tidy=False))
        return self._cache[1]

    # ------------------------------------------------------------------------------ shared files
    @property
    def styles_path(self) -> Path:
        return self.config.data_dir / "styles.json"

    @property
    def placeholders_path(self) -> Path:
        return self.config.data_dir / "placeholders.json"

    @property
    def preferences_path(self) -> Path:
        return self.config.data_dir / "user_preferences.json"

    def registry(self) -> Registry:
        return Registry(self.store.get(self.placeholders_path), str(self.placeholders_path.name))

    # ------------------------------------------------------------------------------ ComfyUI
    def comfyui_url(self) -> str:
        """The ComfyUI the running API talks to (from /health), else the configured one."""
        try:
            url = self.api(timeout=3).health().get("comfyui_url")
        except ApiError:
            url = None
        return str(url or self.settings.comfyui_url).rstrip("/")

    def comfy_get(self, path: str, timeout: float = 5.0) -> Any:
        """A read-only GET to ComfyUI (system stats, queue, object_info); ApiError when it fails."""
        base = self.comfyui_url()
        try:
            resp = requests.get(base + path, timeout=timeout)
            resp.raise_for_status()
            return resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise ApiError(f"ComfyUI at {base} did not answer {path} ({type(exc).__name__})") from None

    def object_info(self, now: float | None = None) -> dict[str, Any]:
        """ComfyUI's object_info (what node classes and inputs it has), reused for a minute."""
        import time

        now = time.monotonic() if now is None else now
        base = self.comfyui_url()
        cached = self._object_info
        if cached is not None and cached[1] == base and now - cached[0] < OBJECT_INFO_TTL:
            return cached[2]
        info = self.comfy_get("/object_info", timeout=15.0)
        if not isinstance(info, dict):
            raise ApiError(f"ComfyUI at {base} answered /object_info with something unexpected")
        self._object_info = (now, base, info)
        return info
