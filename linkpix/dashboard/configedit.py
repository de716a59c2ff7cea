"""Editing `config.json` from the Settings tab: validate with the Settings model, then write atomically.

The file is changed by a read-modify-write under the store's cross-process lock, so a hand edit or a
second dashboard is never overwritten, and the whole new document is validated by the same `Settings`
model the API loads, from the file's values alone (an environment variable that happens to override a
bad value must not let that value into the file). A refused change leaves the file untouched.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from linkpix.config import ENV_PREFIX, LAUNCHER_ENV, Settings, load_config
from linkpix.errors import ConfigError
from linkpix.storage.jsonstore import JsonStore

# The keys the Settings form edits, in display order. Everything else in config.json is kept as it is.
EDITABLE = ("comfyui_url", "comfyui_urls", "timeout", "image_format", "workflow_path", "max_pixels",
            "cache_max_mb", "cache_max_age_days", "error_images", "network_access")
# The running API reads these at start only; saving them is fine, but they apply after a restart.
# (The backends and the cache limits apply live: the API's pool adds and retires backends on reload.)
RESTART_KEYS = frozenset({"network_access", "api_port", "web_port", "threads", "job_workers", "cpu_pin"})


def validate(document: Mapping[str, Any]) -> Settings:
    """The settings `document` would give, from its own values only; ConfigError naming the key."""
    if not isinstance(document, Mapping):
        raise ConfigError("config.json must hold a JSON object of settings")
    nowhere = Path(tempfile.gettempdir()) / f"linkpix-validate-{uuid.uuid4().hex}" / "config.json"
    return load_config(nowhere, overrides=dict(document), use_env=False).settings


def save_settings(store: JsonStore, path: Path, changes: Mapping[str, Any]) -> list[str]:
    """Merge `changes` into config.json (validated first); returns the keys whose value changed.

    Unknown keys are refused (the form only sends known ones, a typo must not slip into the file).
    """
    unknown = sorted(set(changes) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    changed: list[str] = []

    def merge(current: Any) -> Any:
        if not isinstance(current, dict):
            raise ConfigError(f"{path.name} must hold a JSON object of settings; fix it by hand first")
        new = {**current, **changes}
        after = validate(new).model_dump(mode="json")
        for key in changes:
            value = after[key]
            new[key] = value  # the normalised value (a URL without its trailing /), as JSON
            if current.get(key, Settings.model_fields[key].get_default(call_default_factory=True)) != value:
                changed.append(key)
        return new if changed else current

    store.update(path, merge, default={})
    return changed


BACKEND_OPTIONS = ("name", "weight", "max_queue", "tags")


def backends_text(backends: list[Any]) -> str:
    """`comfyui_urls` as the Settings form shows it: one backend per line, `URL name=gpu1 weight=2 ...`."""
    lines = []
    for entry in backends or []:
        entry = entry if isinstance(entry, Mapping) else {"url": str(entry)}
        parts = [str(entry.get("url", ""))]
        for key in BACKEND_OPTIONS:
            value = entry.get(key)
            if key == "tags" and value:
                parts.append(f"tags={','.join(value)}")
            elif key == "name" and value:
                parts.append(f"name={value}")
            elif key in ("weight", "max_queue") and value not in (None, 1, 1.0, 0):
                parts.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
        lines.append(" ".join(parts))
    return "\n".join(lines)


def parse_backends(text: str) -> list[dict[str, Any]]:
    """The form's lines back into `comfyui_urls` entries; ConfigError naming the line that is wrong
    (values are then checked by the Settings model like any other)."""
    out: list[dict[str, Any]] = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        entry: dict[str, Any] = {"url": words[0]}
        for word in words[1:]:
            key, sep, value = word.partition("=")
            if not sep or key not in BACKEND_OPTIONS:
                raise ConfigError(f"backends, line {number}: {word!r} is not one of "
                                  f"{', '.join(k + '=...' for k in BACKEND_OPTIONS)}")
            entry[key] = [t for t in value.split(",") if t] if key == "tags" else value
        out.append(entry)
    return out


def env_overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """Settings an environment variable overrides (what the form shows may not be what runs)."""
    return {key: environ[ENV_PREFIX + key.upper()] for key in Settings.model_fields
            if ENV_PREFIX + key.upper() in environ}


# Shown in the table of values in force, in this order (the rest of the keys are rarely changed).
IN_FORCE = ("comfyui_url", "workflow_path", "api_port", "web_port", "network_access", "timeout", "image_format",
            "max_pixels", "cache_max_mb", "cache_max_age_days", "error_images", "threads", "max_pending",
            "job_workers", "dashboard_user", "dashboard_password", "api_keys", "signing_keys")
_SECRET = frozenset({"dashboard_password", "api_keys", "signing_keys"})


def settings_in_force(settings: Settings, config_doc: Mapping[str, Any], environ: Mapping[str, str],
                      dotenv: Mapping[str, Any]) -> list[list[str]]:
    """[setting, value, where it comes from] for the values the running LinkPix uses.

    The sources, strongest first: the launcher (`start_server.py` sets the ComfyUI URL with --demo and
    the ports with --api-port / --web-port, and names what it set in LINKPIX_SET_BY_LAUNCHER), the
    environment, the `.env` file, config.json, the default. Secrets are shown as set or not, never as
    their value.
    """
    launcher = dict(item.split("=", 1) for item in environ.get(LAUNCHER_ENV, "").split(",") if "=" in item)
    rows = []
    for key in IN_FORCE:
        env_name = ENV_PREFIX + key.upper()
        if key in launcher:
            source = f"launcher ({launcher[key]})"
        elif env_name in environ:
            source = f"environment ({env_name})"
        elif env_name in dotenv:
            source = f".env ({env_name})"
        elif key in config_doc:
            source = "config.json"
        else:
            source = "default"
        value = getattr(settings, key)
        if key in _SECRET:
            shown = "(set)" if value else "(not set)"
        elif isinstance(value, bool):
            shown = "on" if value else "off"
        else:
            shown = str(value)
        rows.append([key, shown, source])
    return rows


def restart_note(changed: list[str]) -> str:
    later = [k for k in changed if k in RESTART_KEYS]
    if not later:
        return "The API uses the new values at once (no restart)."
    return (f"Saved. {', '.join(later)} take effect when LinkPix is restarted (the running API keeps its "
            "current connection / listening address until then); the rest apply at once.")


def check_connection(url: str, timeout: float = 3.0) -> tuple[bool, str]:
    """Can ComfyUI be reached at `url`? -> (ok, a sentence saying what was found)."""
    url = (url or "").strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        return False, "The ComfyUI URL must start with http:// or https://"
    try:
        resp = requests.get(url + "/system_stats", timeout=timeout)
    except requests.Timeout:
        return False, f"No answer from {url} within {timeout:g} s."
    except requests.RequestException as exc:
        return False, f"Cannot connect to {url} ({type(exc).__name__}). Is ComfyUI running (with --listen if " \
                      "it is on another machine)?"
    if resp.status_code != 200:
        return False, f"{url}/system_stats answered {resp.status_code}: this does not look like ComfyUI."
    try:
        stats = resp.json()
        version = stats.get("system", {}).get("comfyui_version", "?")
        devices = ", ".join(d.get("name", "?") for d in stats.get("devices", [])) or "no devices listed"
    except (ValueError, AttributeError):
        return False, f"{url}/system_stats did not answer JSON: this does not look like ComfyUI."
    return True, f"Connected: ComfyUI {version} ({devices})."
