"""Styles and per-user default styles, edited through the shared store (no restart: the API re-reads).

Each change is a read-modify-write of `data/styles.json` or `data/user_preferences.json` under the
store's lock, so an edit made meanwhile by another process is kept. Names are checked with the same
rule the API uses to read `?style=`, so a style saved here can always be named in a link.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from linkpix.errors import BadRequest, ConfigError
from linkpix.model import STYLE_NAME_RE, validate_user
from linkpix.render.styles import NONE, Style, apply_styles, combine_negative, load_styles
from linkpix.storage.jsonstore import JsonStore


def check_style_name(name: str) -> str:
    name = (name or "").strip()
    if not STYLE_NAME_RE.match(name):
        raise BadRequest(f"invalid style name {name!r}: use 1-64 letters, digits, '.', '-' or '_' "
                         "(it goes into links as ?style=...)")
    if "," in name:
        raise BadRequest("a style name cannot contain a comma (commas separate styles in a link)")
    return name


def list_styles(store: JsonStore, path: Path) -> dict[str, Style]:
    return load_styles(store.get(path, default={}), path.name)


def save_style(store: JsonStore, path: Path, name: str, pre: str, post: str, negative: str,
               description: str) -> str:
    """Add or replace one style; returns its name."""
    name = check_style_name(name)
    if name == NONE:
        raise BadRequest("'none' is built in (the prompt as written) and cannot be changed")
    entry = {"pre": pre or "", "post": post or "", "negative": negative or "", "description": description or ""}

    def put(doc: Any) -> Any:
        if not isinstance(doc, dict):
            raise ConfigError(f"{path.name} must hold an object of style name -> style; fix it by hand first")
        doc[name] = entry
        load_styles(doc, path.name)  # the document stays readable by the API
        return doc

    store.update(path, put, default={})
    return name


def delete_style(store: JsonStore, path: Path, name: str, preferences: Path | None = None) -> None:
    """Remove a style; refused while a user's default style names it (links would start failing)."""
    name = check_style_name(name)
    if name == NONE:
        raise BadRequest("'none' is built in and cannot be deleted")
    if preferences is not None:
        prefs = store.get(preferences, default={})
        users = sorted(u for u, p in (prefs.items() if isinstance(prefs, dict) else ())
                       if isinstance(p, dict) and _names(p.get("style")) & {name})
        if users:
            raise BadRequest(f"style {name!r} is the default style of {', '.join(users)}; "
                             "pick another default for them first")

    def drop(doc: Any) -> Any:
        if not isinstance(doc, dict) or name not in doc:
            raise BadRequest(f"there is no style {name!r} to delete")
        del doc[name]
        return doc

    store.update(path, drop, default={})


def preview(styles: dict[str, Style], names: list[str], prompt: str, negative: str = "") -> tuple[str, str]:
    """(final prompt, final negative) as the API would build them for these styles."""
    chosen = [styles[n] for n in names if n in styles]
    final, style_negative = apply_styles(prompt, chosen)
    return final, combine_negative(negative, style_negative)


def preview_style(pre: str, post: str, negative: str, prompt: str) -> tuple[str, str]:
    """Preview of a style being edited (not saved yet)."""
    final, style_negative = apply_styles(prompt, [Style("draft", pre or "", post or "", negative or "")])
    return final, style_negative


# ---------------------------------------------------------------------------------- preferences
def user_defaults(store: JsonStore, path: Path) -> dict[str, str]:
    """user -> default style (as written, possibly comma-separated)."""
    prefs = store.get(path, default={})
    out = {}
    for user, p in (prefs.items() if isinstance(prefs, dict) else ()):
        if isinstance(p, dict) and p.get("style") is not None:
            style = p["style"]
            out[user] = ",".join(style) if isinstance(style, list) else str(style)
    return out


def set_user_default(store: JsonStore, path: Path, user: str, style: str, known: set[str]) -> None:
    """Set (or with an empty style, clear) a user's default style; other preferences are kept."""
    user = validate_user((user or "").strip())
    names = [s.strip() for s in (style or "").split(",") if s.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadRequest(f"unknown style {', '.join(unknown)}; available: {', '.join(sorted(known))}")

    def put(doc: Any) -> Any:
        if not isinstance(doc, dict):
            raise ConfigError(f"{path.name} must hold an object of user -> preferences; fix it by hand first")
        mine = doc.get(user) if isinstance(doc.get(user), dict) else {}
        if names:
            mine["style"] = ",".join(names)
        else:
            mine.pop("style", None)
        if mine:
            doc[user] = mine
        else:
            doc.pop(user, None)
        return doc

    store.update(path, put, default={})


def _names(value: Any) -> set[str]:
    if isinstance(value, list):
        return {str(v) for v in value}
    return {s.strip() for s in str(value or "").split(",") if s.strip()}
