"""Which control the Generate tab shows for each workflow parameter, decided without any UI code.

The workflow's description (`GET /api/workflows/<name>`: type, default, min/max, where it lands, its
per-workflow settings) and the parameter definitions (`data/placeholders.json`: fixed choices and the
object_info lists they come from) become `ControlSpec`s: a dropdown of what ComfyUI has for models,
samplers, schedulers, LoRAs (from `GET /api/models`), a slider where a range is defined, a number, a
checkbox or a text box. The Gradio side only turns specs into components.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from linkpix.comfy.objectinfo import CHOICE_SOURCES
from linkpix.render.placeholders import Registry

# Set by the Generate tab's own fields, never by a per-parameter control.
OWN_FIELDS = frozenset({"prompt", "seed", "img_format"})
SIZE = ("width", "height")
SLIDER_MAX_SPAN = 100_000  # wider ranges (the seed's 0..2^64) get a number box
_LIST_OF = {source: name for name, source in CHOICE_SOURCES.items()}


@dataclass(frozen=True)
class ControlSpec:
    name: str
    kind: str  # "dropdown" | "slider" | "number" | "checkbox" | "text"
    label: str
    value: Any
    info: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    precision: int | None = None
    lines: int = 1


def effective_defaults(description: Mapping[str, Any], registry: Registry) -> dict[str, Any]:
    """parameter -> the value used when a request gives none: workflow settings, else the file's value."""
    params = description.get("parameters", {})
    out = {name: p.get("default") for name, p in params.items()}
    settings = description.get("settings") or {}
    flat = {k: v for k, v in settings.items() if k not in ("params", "style", "styles", "workflow", "seed")}
    if isinstance(settings.get("params"), Mapping):
        flat.update(settings["params"])
    for key, value in flat.items():
        name = registry.canonical(key)
        if name in out:
            out[name] = value
    return out


def backend_choices(name: str, registry: Registry, models: Mapping[str, list[Any]] | None,
                    targets: list[Mapping[str, Any]]) -> list[Any] | None:
    """What ComfyUI offers for this parameter (via /api/models), None when unknown."""
    if not models:
        return None
    sources: list[tuple[str, str]] = []
    spec = registry.spec(name)
    if spec is not None:
        sources.extend(spec.choices_from)
    sources.extend((t.get("class_type", ""), t.get("input", "")) for t in targets)
    found: list[Any] | None = None
    for source in sources:
        listed = models.get(_LIST_OF.get(source, ""))
        if listed is not None and _LIST_OF.get(source):
            found = found or []
            found.extend(x for x in listed if x not in found)
    return found


def control_specs(description: Mapping[str, Any], registry: Registry,
                  models: Mapping[str, list[Any]] | None) -> list[ControlSpec]:
    """Controls for every parameter the workflow accepts except prompt/seed; size first."""
    params: Mapping[str, Mapping[str, Any]] = description.get("parameters", {})
    defaults = effective_defaults(description, registry)
    order = [n for n in SIZE if n in params] + [n for n in params if n not in SIZE and n not in OWN_FIELDS]
    return [_spec_for(name, params[name], defaults.get(name), registry, models) for name in order]


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _spec_for(name: str, param: Mapping[str, Any], value: Any, registry: Registry,
              models: Mapping[str, list[Any]] | None) -> ControlSpec:
    spec = registry.spec(name)
    kind = param.get("type") or (spec.type if spec else "string")
    info = param.get("description") or (spec.description if spec else "")
    if param.get("custom"):
        info = info or "A custom placeholder of this workflow."
    label = _label(name)
    fixed = list(spec.choices) if spec is not None and spec.choices is not None else None
    listed = fixed or backend_choices(name, registry, models, list(param.get("targets", [])))
    if listed is not None:
        choices = list(listed)
        if value is not None and value not in choices:
            choices.insert(0, value)
        return ControlSpec(name, "dropdown", label, value if value is not None else (choices[0] if choices else None),
                           info, tuple(choices))
    if kind == "bool":
        return ControlSpec(name, "checkbox", label, bool(value), info)
    if kind in ("int", "float"):
        lo, hi = param.get("min"), param.get("max")
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if lo is not None and hi is not None and hi - lo <= SLIDER_MAX_SPAN:
            if name in SIZE:
                step: float = 8
            elif kind == "int":
                step = 1
            else:
                span = hi - lo
                step = 0.01 if span <= 2 else 0.1 if span <= 100 else 1
            start = number if number is not None else lo
            return ControlSpec(name, "slider", label, min(max(start, lo), hi), info, minimum=lo, maximum=hi,
                               step=step)
        return ControlSpec(name, "number", label, number, info, minimum=lo, maximum=hi,
                           precision=0 if kind == "int" else None)
    text = "" if value is None else str(value)
    lines = 2 if "negative" in name or len(text) > 60 else 1
    return ControlSpec(name, "text", label, text, info, lines=lines)


def request_params(specs: list[ControlSpec], values: list[Any]) -> dict[str, Any]:
    """The `params` of a job from the controls' values: empty text means "the workflow's default"
    (so the job and its reproducing link agree), numbers keep their type."""
    out: dict[str, Any] = {}
    for spec, value in zip(specs, values, strict=True):
        if value is None or (isinstance(value, str) and value.strip() == ""):
            continue
        if spec.kind in ("slider", "number"):
            if isinstance(value, float) and (spec.precision == 0 or (spec.step is not None
                                                                     and float(spec.step).is_integer())):
                value = int(round(value))
        out[spec.name] = value
    return out
