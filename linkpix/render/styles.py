"""Styles: text wrapped around the prompt (`pre`, `post`) plus an optional negative prompt.

`data/styles.json` maps a style name to `{"pre": ..., "post": ..., "negative": ..., "description": ...}`.
The final prompt is `pre prompt, post`; several styles (`style=a,b`) contribute their `pre` parts in order
before the prompt and their `post` parts in order after it. Empty parts leave no stray comma or space,
and with no style text at all the prompt passes through byte for byte. `none` always exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from linkpix.errors import BadRequest, ConfigError

NONE = "none"


@dataclass(frozen=True)
class Style:
    name: str
    pre: str = ""
    post: str = ""
    negative: str = ""
    description: str = ""
    model: str = ""  # a hosted provider model (<provider>:<model>) this style is rendered with
    provider_fallback: str = ""  # where this style's requests go when ComfyUI cannot take them

    def to_dict(self) -> dict[str, str]:
        out = {"pre": self.pre, "post": self.post, "negative": self.negative, "description": self.description}
        out.update({k: v for k, v in (("model", self.model), ("provider_fallback", self.provider_fallback)) if v})
        return out


def load_styles(document: Any, source: str = "styles.json") -> dict[str, Style]:
    """Parse the styles document; `none` is added when the file does not define it."""
    if not isinstance(document, Mapping):
        raise ConfigError(f"{source}: expected an object of style name -> {{pre, post, negative}}")
    out: dict[str, Style] = {NONE: Style(NONE, description="The prompt as written.")}
    for name, raw in document.items():
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{source}: style {name!r} must be an object with pre/post/negative")
        fields = {}
        for key in ("pre", "post", "negative", "description", "model", "provider_fallback"):
            value = raw.get(key, "")
            if not isinstance(value, str):
                raise ConfigError(f"{source}: style {name!r}: {key} must be text")
            fields[key] = value
        out[str(name)] = Style(str(name), **fields)
    return out


def resolve_names(names: Iterable[str], styles: Mapping[str, Style]) -> tuple[Style, ...]:
    """The named styles in order, or BadRequest listing the available ones."""
    picked = []
    for name in names:
        style = styles.get(name)
        if style is None:
            raise BadRequest(f"unknown style {name!r}; available: {', '.join(sorted(styles))}",
                             {"parameter": "style", "allowed": sorted(styles)})
        picked.append(style)
    return tuple(picked)


def _join(parts: Iterable[str], sep: str) -> str:
    return sep.join(p for p in parts if p)


def apply_styles(prompt: str, chosen: Iterable[Style]) -> tuple[str, str]:
    """-> (final prompt, the styles' combined negative prompt)."""
    chosen = tuple(chosen)
    pre = _join((s.pre.strip().lstrip(", ") for s in chosen), " ")
    post = _join((s.post.strip().strip(",").strip() for s in chosen), ", ")
    negative = _join((s.negative.strip().strip(",").strip() for s in chosen), ", ")
    if not pre and not post:
        return prompt, negative
    text = prompt.strip()
    if post:
        text = text.rstrip(", ")
    head = _join((pre, text), " ")
    return _join((head, post), ", "), negative


def combine_negative(user_negative: str, style_negative: str) -> str:
    """The request's (or workflow's) negative prompt followed by the styles' negatives."""
    base = user_negative.strip()
    if not style_negative:
        return user_negative
    return _join((base.rstrip(", "), style_negative), ", ")
