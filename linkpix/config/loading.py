"""Reading the settings: from config.json, `.env` and the environment, and again when the file changes.

`load_config` validates everything once (an unknown or mistyped key stops start-up with a message that
names it); `ConfigHolder` gives the current configuration to every component (`holder.settings` is the one
way to read a setting at its point of use) and reloads it when config.json changes on disk.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from linkpix.config.settings import ENV_PREFIX, Settings
from linkpix.errors import ConfigError

log = logging.getLogger("linkpix.config")


class LoadedConfig:
    """Settings plus the folder they are relative to, with the folders resolved once."""

    def __init__(self, settings: Settings, base_dir: Path, source: Path | None = None) -> None:
        self.settings = settings
        self.base_dir = base_dir
        self.source = source or base_dir / "config.json"  # the file the settings were read from
        self.workflows_dir = self.path(settings.workflows_dir)
        self.data_dir = self.path(settings.data_dir)
        self.output_dir = self.path(settings.output_dir)
        self.default_workflow = default_workflow_name(settings.workflow_path, base_dir, self.workflows_dir)

    def path(self, value: str) -> Path:
        """Resolve a configured path against the config file's folder."""
        p = Path(value)
        return p if p.is_absolute() else self.base_dir / p


def default_workflow_name(value: str, base_dir: Path, workflows_dir: Path) -> str:
    """`workflow_path` as a file name in the workflows folder.

    A bare name is the usual form; the original LinkPix documented a path from the project folder
    (`workflows/flux_schnell.json`), so a path to a file directly inside the workflows folder is accepted
    too. A path that leaves the folder is refused here, at start-up, rather than at the first request.
    """
    clean = value.replace("\\", "/")
    if "/" not in clean:
        return value
    path = Path(clean)
    full = (path if path.is_absolute() else base_dir / path).resolve()
    if full.parent != workflows_dir.resolve():
        raise ConfigError(f"'workflow_path' ({value!r}) must name a file directly in the workflows folder "
                          f"({workflows_dir}): a name like 'flux_schnell.json', or a path to it like "
                          f"'{Path(workflows_dir.name) / 'flux_schnell.json'}'; set it in config.json or "
                          f"{ENV_PREFIX}WORKFLOW_PATH")
    return full.name


def _format_validation(err: ValidationError, source: Path) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "?"
        got = e.get("input")
        hint = f" (got {got!r})" if not isinstance(got, dict) else ""
        top = str(e["loc"][0]).upper() if e["loc"] else "?"
        parts.append(f"'{key}': {e['msg']}{hint}; set it in {source.name} or {ENV_PREFIX}{top}")
    return "invalid configuration: " + " | ".join(parts)


def load_config(path: str | os.PathLike[str] = "config.json", overrides: dict[str, Any] | None = None,
                use_env: bool = True) -> LoadedConfig:
    """Read config.json (missing file = defaults), apply `.env` and environment, validate everything."""
    path = Path(path).resolve()
    values: dict[str, Any] = {}
    if path.exists():
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: must hold a JSON object of settings")
    values.update(overrides or {})
    env_file = path.parent / ".env"
    kwargs: dict[str, Any] = {"_env_file": env_file if (use_env and env_file.exists()) else None}
    try:
        settings = Settings(**kwargs, **values) if use_env else _ExplicitSettings(**values)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, path)) from None
    return LoadedConfig(settings, path.parent, path)


class _ExplicitSettings(Settings):
    """Settings from explicit values only: tests must not be steered by the caller's shell."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   **_others: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class ConfigHolder:
    """Gives the current configuration, reloading it when config.json changes on disk.

    A reload that fails keeps the last good configuration and logs why, so a typo made in the
    dashboard never takes the API down. The check is one `stat` call, cheap enough per request.
    """

    def __init__(self, path: str | os.PathLike[str], overrides: dict[str, Any] | None = None,
                 use_env: bool = True) -> None:
        self._path = Path(path).resolve()
        self._overrides = overrides or {}
        self._use_env = use_env
        self._lock = threading.Lock()
        self._stamp = self._mtime()
        self._config = load_config(self._path, self._overrides, use_env)
        self.generation = 0
        self._listeners: list[Callable[[LoadedConfig], None]] = []

    def subscribe(self, listener: Callable[[LoadedConfig], None]) -> None:
        """Call `listener(new_config)` after every successful reload (to apply a setting live)."""
        self._listeners.append(listener)

    def _mtime(self) -> float | None:
        try:
            return self._path.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def settings(self) -> Settings:
        """The settings in force now (reloaded if config.json changed): pass `holder.settings` to a
        component and it reads each value at its point of use, so a reload applies."""
        return self.get().settings

    def get(self) -> LoadedConfig:
        stamp = self._mtime()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._reload(stamp)
        return self._config

    def _reload(self, stamp: float | None) -> None:
        self._stamp = stamp
        try:
            self._config = load_config(self._path, self._overrides, self._use_env)
            self.generation += 1
            log.info("configuration reloaded from %s", self._path)
        except ConfigError as exc:
            log.error("keeping the previous configuration: %s", exc.message)
            return
        for listener in self._listeners:
            try:
                listener(self._config)
            except Exception:  # one listener's failure must not stop the others or the request
                log.exception("applying the reloaded configuration failed")
