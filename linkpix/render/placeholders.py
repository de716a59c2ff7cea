"""The parameter vocabulary: names, aliases, types, limits and where their choices come from.

The definitions live in `data/placeholders.json` (one place, editable from the dashboard); this module
turns that document into a `Registry` that maps aliases (SillyTavern's `%scale%` is our `cfg`) to
canonical names and converts raw values (URL strings, JSON values) into typed, range-checked ones with
error messages that name the parameter and say what is allowed.

It also owns the placeholder syntax: `%name%` where name is a Python-style identifier. ComfyUI's own
filename tokens (`%date:yyyy-MM-dd%`, `%Empty Latent Image.width%`) never match it.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from linkpix.comfy.objectinfo import ObjectInfo, choices, public_values
from linkpix.errors import BadRequest, ConfigError

PLACEHOLDER_RE = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")
# ComfyUI's own tokens in SaveImage prefixes: skipped whole, so "%date:x%_%Node.seed%" holds no "%_%".
COMFY_TOKEN_RE = re.compile(r"%(?:date:[^%\n]*|[^%\n]*\.[A-Za-z_][A-Za-z0-9_ ]*)%")
TYPES = ("string", "int", "float", "bool")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: how to read it from a request and how to write it into a workflow."""

    name: str
    type: str = "string"
    default: Any = None
    min: float | None = None
    max: float | None = None
    description: str = ""
    aliases: tuple[str, ...] = ()
    choices: tuple[Any, ...] | None = None  # a fixed list (img_format)
    choices_from: tuple[tuple[str, str], ...] = ()  # object_info (class, input) lists (models, samplers)
    render: str = "value"  # "negate": written as -value (clip_skip -> CLIPSetLastLayer.stop_at_clip_layer)
    multiple_of: int | None = None  # ints are rounded down to it (ComfyUI's latent grid is 8 pixels)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "default": self.default, "description": self.description}
        for key in ("min", "max", "multiple_of"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.choices_from:
            out["choices_from"] = [f"{c}.{i}" for c, i in self.choices_from]
        return out


def _spec_from(name: str, raw: Any, source: str) -> ParamSpec:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: parameter {name!r} must be an object")
    kind = raw.get("type", "string")
    if kind not in TYPES:
        raise ConfigError(f"{source}: parameter {name!r} has unknown type {kind!r} (use one of {TYPES})")
    sources = []
    for item in raw.get("choices_from", []) or []:
        cls, _, inp = str(item).partition(".")
        if not cls or not inp:
            raise ConfigError(f"{source}: {name}.choices_from entries look like 'KSampler.sampler_name'")
        sources.append((cls, inp))
    fixed = raw.get("choices")
    render = raw.get("render", "value")
    multiple = raw.get("multiple_of")
    if multiple is not None and (not isinstance(multiple, int) or isinstance(multiple, bool) or multiple < 1):
        raise ConfigError(f"{source}: parameter {name!r}: multiple_of must be a whole number >= 1")
    if render not in ("value", "negate"):
        raise ConfigError(f"{source}: parameter {name!r}: render must be 'value' or 'negate'")
    return ParamSpec(
        name=name, type=kind, default=raw.get("default"), min=raw.get("min"), max=raw.get("max"),
        description=str(raw.get("description", "")), aliases=tuple(raw.get("aliases", []) or ()),
        choices=tuple(fixed) if isinstance(fixed, list) else None, choices_from=tuple(sources),
        render=render, multiple_of=multiple,
    )


class Registry:
    """Parameter definitions by canonical name, with alias lookup and value conversion."""

    def __init__(self, document: Any, source: str = "placeholders.json") -> None:
        params = document.get("parameters") if isinstance(document, Mapping) else None
        if not isinstance(params, Mapping):
            raise ConfigError(f"{source}: expected {{\"parameters\": {{name: definition}}}}")
        self.specs: dict[str, ParamSpec] = {}
        self.aliases: dict[str, str] = {}
        for name, raw in params.items():
            self.specs[name] = _spec_from(name, raw, source)
        for name, spec in self.specs.items():
            for alias in spec.aliases:
                other = self.aliases.get(alias)
                if alias in self.specs or (other and other != name):
                    raise ConfigError(f"{source}: alias {alias!r} of {name!r} is already a parameter or alias")
                self.aliases[alias] = name

    def canonical(self, name: str) -> str:
        """Canonical name for a name or alias; an unknown name is its own (custom placeholder)."""
        return self.aliases.get(name, name)

    def spec(self, name: str) -> ParamSpec | None:
        return self.specs.get(self.canonical(name))

    def known(self, name: str) -> bool:
        return self.canonical(name) in self.specs

    # ------------------------------------------------------------------------------ conversion
    def coerce(self, name: str, value: Any) -> Any:
        """Typed, range-checked value of parameter `name`, or BadRequest saying what is allowed."""
        spec = self.spec(name)
        canonical = self.canonical(name)
        if spec is None:  # a custom placeholder (SillyTavern-style): text, or a JSON scalar as given
            if isinstance(value, str | int | float | bool):
                return value
            raise BadRequest(f"{canonical} must be text or a number", {"parameter": canonical})
        try:  # the type and range are this workflow's own (another declares cfg 0-30, another 1-10)
            typed = _convert(spec, value)
            if spec.render == "negate" and isinstance(typed, int | float):
                typed = abs(typed)  # clip_skip=-2 (ComfyUI's spelling) means the same as clip_skip=2
            _check_range(spec, typed)
        except BadRequest as exc:
            raise exc.broke("workflow_parameter") from None
        if spec.multiple_of and isinstance(typed, int) and not isinstance(typed, bool):
            # What ComfyUI would do anyway (a 300 px high latent decodes to 296 px); doing it here
            # makes the reported size true and lets 300 and 296 share one cached image.
            typed = max(typed // spec.multiple_of * spec.multiple_of, spec.multiple_of)
        if spec.choices is not None and typed not in spec.choices:
            raise BadRequest(f"{spec.name} must be one of {', '.join(map(str, spec.choices))} (got {value!r})",
                             {"parameter": spec.name, "allowed": list(spec.choices)}, rule="workflow_parameter")
        return typed

    def written(self, name: str, value: Any) -> Any:
        """The value as it goes into the workflow (clip_skip 2 -> -2)."""
        spec = self.spec(name)
        if spec is not None and spec.render == "negate" and isinstance(value, int | float):
            return -abs(value)
        return value

    def source_of(self, class_type: Any, input_name: str) -> str | None:
        """The parameter whose choices come from this node input (`model` for
        CheckpointLoaderSimple.ckpt_name), or None."""
        for name, spec in self.specs.items():
            if (class_type, input_name) in spec.choices_from:
                return name
        return None

    def backend_choices(self, name: str, info: ObjectInfo | None) -> list[Any] | None:
        """What the backend offers for this parameter (union of its choices_from lists), None if unknown."""
        spec = self.spec(name)
        if spec is None or not spec.choices_from or not info:
            return None
        out: list[Any] = []
        found = False
        for cls, inp in spec.choices_from:
            listed = choices(info, cls, inp)
            if listed is not None:
                found = True
                out.extend(x for x in listed if x not in out)
        return out if found else None

    def to_dict(self) -> dict[str, Any]:
        return {name: spec.to_dict() for name, spec in self.specs.items()}


def _convert(spec: ParamSpec, value: Any) -> Any:
    name, kind = spec.name, spec.type
    bad = BadRequest(f"{name} must be {_kind_words(kind)} (got {shown(value)})", {"parameter": name, "type": kind})
    if kind == "string":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise bad
        return value if isinstance(value, str) else str(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise bad
    if isinstance(value, bool):
        raise bad
    if kind == "int":
        number = whole_number(value)
        if number is None:
            raise bad
        return number
    # float
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise bad from None
    if not math.isfinite(number):
        raise bad
    return number


def shown(value: Any, limit: int = 40) -> str:
    """A value as an error message quotes it: `width: 1e308` must not echo a 309-digit number."""
    text = f"{value:.6g}" if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and abs(value) >= 10 ** 15 else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def whole_number(value: Any) -> int | None:
    """An integer from a JSON number or from text holding one ("42", "42.0", 42.0); None otherwise.

    One reading for every numeric field, so a number sent as text behaves like the number itself.
    Text goes through Decimal, so a 20-digit seed keeps every digit.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and len(value) <= 64:
        try:
            number = decimal.Decimal(value.strip())
        except decimal.InvalidOperation:
            return None
        if number.is_finite() and number == number.to_integral_value():
            return int(number)
    return None


def _kind_words(kind: str) -> str:
    return {"int": "a whole number", "float": "a number", "bool": "true or false", "string": "text"}[kind]


def _check_range(spec: ParamSpec, value: Any) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    lo, hi = spec.min, spec.max
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "" if lo is None else f"from {lo:g} "
        hi_s = "" if hi is None else f"to {hi:g}"
        raise BadRequest(f"{spec.name} must be {lo_s}{hi_s} (got {shown(value)})".replace("  ", " "),
                         {"parameter": spec.name, "min": lo, "max": hi})


def not_available(name: str, value: Any, available: Iterable[Any]) -> BadRequest:
    """BadRequest for a model/sampler/LoRA the backend does not have, listing what it has."""
    have = public_values(list(available))  # never list users' uploads (comfy/objectinfo.py)
    shown = ", ".join(map(str, have[:50])) + (f" (and {len(have) - 50} more)" if len(have) > 50 else "")
    return BadRequest(f"{name} {value!r} is not available on the ComfyUI server; it has: {shown or 'none'}",
                      {"parameter": name, "allowed": have}, rule="backend_names")


def split_text(text: str) -> tuple[str | Ref, ...] | None:
    """`"a %prompt% b"` -> ("a ", Ref("prompt"), " b"); None if `text` holds no placeholder.

    Scans left to right: a `%` starts a placeholder, a ComfyUI token (skipped whole) or is a literal
    percent sign, so "50% off %prompt%" and "%date:yyyy%_%KSampler.seed%" both read as a person means.
    """
    if "%" not in text:
        return None
    parts: list[str | Ref] = []
    literal_from = 0
    pos = text.find("%")
    while pos != -1:
        m = PLACEHOLDER_RE.match(text, pos)
        if m is not None:
            if pos > literal_from:
                parts.append(text[literal_from:pos])
            parts.append(Ref(m.group(1)))
            literal_from = next_pos = m.end()
        else:
            token = COMFY_TOKEN_RE.match(text, pos)
            next_pos = token.end() if token is not None else pos + 1
        pos = text.find("%", next_pos)
    if not parts:
        return None
    if literal_from < len(text):
        parts.append(text[literal_from:])
    return tuple(parts)


@dataclass(frozen=True)
class Ref:
    """A placeholder reference inside a template string (name as written, before alias mapping)."""

    name: str


def choice_of(info: ObjectInfo | None, class_type: str, input_name: str) -> list[Any] | None:
    """Allowed values of one node input on this backend (None when unknown or not a combo)."""
    return choices(info, class_type, input_name) if info else None
