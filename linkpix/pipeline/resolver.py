"""Stage 2: merge a GenerationRequest with the shared files into one RenderedJob, by one rule.

Every value is taken from the first of: the request > the workflow's settings
(`workflows/settings/<name>.json`) > the user's preferences (`data/user_preferences.json`) > the value in
the workflow file (or, for a placeholder, the default in `data/placeholders.json` / the YAML sidecar).

The seed: given -> used; `random`/-1 -> a fresh one (reported back); absent -> derived from the values
that land in the graph (final prompt, workflow, every parameter value whatever its source, input images),
so the same URL always gives the same image, and so does a link that states a default explicitly.

Everything derived from the files (parameter registry, styles, compiled templates) is cached against
the store's file stamps, so a request costs a few `os.stat` calls plus one graph copy.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from linkpix.comfy.objectinfo import combo_choices, input_spec
from linkpix.config import LoadedConfig
from linkpix.errors import BackendUnavailable, BadRequest, ConfigError, LinkPixError
from linkpix.imaging.photo import mask_file, with_alpha_mask
from linkpix.model import GenerationRequest, InputImage, RenderedJob, png_input_image, validate_workflow_name
from linkpix.pipeline.checks import (
    check_models,
    check_size,
    check_style_length,
    check_text_length,
    needs_input,
    remote_combo,
)
from linkpix.pipeline.request import parse_styles
from linkpix.pipeline.seeds import choose_seed, seed_of_image
from linkpix.providers.hosted import Providers
from linkpix.render.placeholders import Registry, not_available
from linkpix.render.styles import NONE, Style, apply_styles, combine_negative, load_styles, resolve_names
from linkpix.render.uiformat import is_ui_format
from linkpix.render.workflows import (
    SETTINGS_DIR,
    WorkflowTemplate,
    list_workflows,
    settings_path,
    sidecar_path,
    workflow_path,
)
from linkpix.storage.jsonstore import JsonStore

PLACEHOLDERS_FILE = "placeholders.json"
STYLES_FILE = "styles.json"
PREFERENCES_FILE = "user_preferences.json"
# Names with a meaning outside the workflow graph: never reported as "ignored" for that reason alone.
_SPECIAL = frozenset({"prompt", "seed", "img_format"})


class Resolver:
    """Turns requests into rendered jobs against the current files; see the module docstring."""

    def __init__(self, config: Callable[[], LoadedConfig], store: JsonStore,
                 object_info: Callable[[], dict | None],
                 check_graph: Callable[[dict[str, Any]], None] | None = None,
                 providers: Providers | None = None) -> None:
        self._providers = providers  # hosted APIs: `model=<provider>:<model>` and the fallback
        self._config = config
        self._store = store
        self._object_info = object_info
        self._check_graph = check_graph  # the pool's: a model file no backend has, naming who has what
        self._lock = threading.Lock()
        self._cache: dict[Any, tuple[Any, Any]] = {}  # kind/name -> (stamp, derived object)
        self._watching: LoadedConfig | None = None
        self._last_fingerprint: tuple[object, object] | None = None

    # ----------------------------------------------------------------------------- file access
    def _cached(self, key: Any, stamp: Any, build: Callable[[], Any]) -> Any:
        hit = self._cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = build()
        with self._lock:
            self._cache[key] = (stamp, value)
        return value

    def _info(self) -> dict | None:
        try:
            return self._object_info()
        except LinkPixError:
            return None  # ComfyUI unreachable: skip the checks that need it, ComfyUI will judge later

    def registry(self) -> Registry:
        path = self._config().data_dir / PLACEHOLDERS_FILE
        entry = self._store.load(path)
        return self._cached(("registry", path), entry.stamp, lambda: Registry(entry.value, str(path)))

    def _styles(self) -> dict[str, Style]:
        path = self._config().data_dir / STYLES_FILE
        entry = self._store.load(path, default={})
        return self._cached(("styles", path), entry.stamp, lambda: load_styles(entry.value, str(path)))

    def _preferences(self, user: str) -> Mapping[str, Any]:
        path = self._config().data_dir / PREFERENCES_FILE
        prefs = self._store.get(path, default={})
        mine = prefs.get(user) if isinstance(prefs, Mapping) else None
        return mine if isinstance(mine, Mapping) else {}

    def _settings(self, workflows_dir: Path, name: str) -> Mapping[str, Any]:
        path = settings_path(workflows_dir, name)
        doc = self._store.get(path, default={})
        if not isinstance(doc, Mapping):
            raise ConfigError(f"{path}: workflow settings must be an object of parameter -> value")
        return doc

    def template(self, name: str) -> WorkflowTemplate:
        """The compiled template of workflow `name` (BadRequest listing the workflows if unknown)."""
        cfg = self._config()
        path = workflow_path(cfg.workflows_dir, name)
        registry = self.registry()
        doc = self._store.load(path)
        side = sidecar_path(path)
        side_entry = self._store.load(side) if side is not None else None
        ui = is_ui_format(doc.value)
        info = self._info() if ui else None
        stamp = (doc.stamp, side, side_entry.stamp if side_entry else None, id(registry),
                 id(info) if ui else None)
        return self._cached(("template", path), stamp, lambda: WorkflowTemplate(
            path.name, doc.value, registry, side_entry.value if side_entry else None, info))

    # --------------------------------------------------------------------------------- resolve
    def resolve(self, req: GenerationRequest) -> RenderedJob:
        """Apply the precedence rule, styles, limits and the seed policy; render the graph."""
        cfg = self._config()
        settings = cfg.settings
        prompt = req.prompt
        if not prompt.strip():
            raise BadRequest("the prompt is empty", {"parameter": "prompt"})
        if len(prompt) > settings.max_prompt_chars:
            raise BadRequest(f"the prompt has {len(prompt)} characters; the limit is "
                             f"{settings.max_prompt_chars} (max_prompt_chars)", {"parameter": "prompt"})
        registry = self.registry()
        prefs = self._preferences(req.user)
        name = validate_workflow_name(req.workflow or prefs.get("workflow") or cfg.default_workflow)
        template = self.template(name)
        wf_settings = self._settings(cfg.workflows_dir, template.name)

        style_names = (req.styles or _styles_of(wf_settings, "workflow settings")
                       or _styles_of(prefs, "preferences") or (NONE,))
        chosen = resolve_names(style_names, self._styles())
        check_style_length(chosen, settings.max_prompt_chars)
        final_prompt, style_negative = apply_styles(prompt, chosen)

        requested = _canonical(registry, req.params)
        check_text_length(requested, settings.max_prompt_chars)
        layers = (("request", requested),
                  (f"workflows/{SETTINGS_DIR}/{template.name}", _canonical(registry, _params_of(wf_settings))),
                  (f"user preferences of {req.user}", _canonical(registry, _params_of(prefs))))
        provider = self._providers.named_in(layers, chosen) if self._providers else None
        values: dict[str, Any] = {}
        from_request: set[str] = set()
        for pname, binding in template.params.items():
            if pname in ("prompt", "seed"):
                continue
            values[pname] = binding.default
            for where, layer in layers:
                if pname in layer:
                    values[pname] = _coerce(registry, pname, layer[pname], where, settings.max_pixels)
                    if where == "request":
                        from_request.add(pname)
                    break

        output_format = req.output_format or _first(registry, "img_format", layers) or settings.image_format
        if "img_format" in template.params:
            values["img_format"] = output_format
        negative = _first(registry, "negative_prompt", layers)
        if negative is None:
            negative = template.params["negative_prompt"].default if "negative_prompt" in template.params else ""
        negative = combine_negative(negative or "", style_negative)
        if "negative_prompt" in template.params:
            values["negative_prompt"] = negative

        ignored = [k for k in requested if k not in template.params and k not in _SPECIAL]
        uploads, notes = self._inputs(req, template, values, requested)

        check_size(values, settings.max_pixels)
        fallback = self._providers.fallback_for(wf_settings, chosen, settings.provider_fallback, bool(uploads),
                                                bool(values.get("mask"))) if self._providers else None

        seed, is_random = choose_seed(req, final_prompt, template.name, values, uploads)
        if "seed" in template.params:
            values["seed"] = seed
        graph = template.render({**values, "prompt": final_prompt})
        if provider is None:
            try:
                self._check_backend(template, values, from_request, registry)
                if self._check_graph is not None:
                    self._check_graph(graph)
                info = self._info()
                if info:
                    check_models(graph, template.name, registry, info)
            except (BadRequest, BackendUnavailable):
                if fallback is None:
                    raise
                provider = fallback  # no ComfyUI backend has what it needs: the hosted fallback takes it
        params = {k: v for k, v in values.items() if k != "negative_prompt"}
        params.update(seed=seed, style=",".join(style_names), workflow=template.name)
        return RenderedJob(graph=graph, workflow=template.name, prompt=final_prompt, negative=negative,
                           seed=seed, seed_is_random=is_random, params=params, output_format=output_format,
                           uploads=uploads, ignored=tuple(dict.fromkeys(ignored)), notes=notes,
                           provider=provider, fallback=fallback)

    def resolve_many(self, req: GenerationRequest, count: int) -> list[RenderedJob]:
        """`count` rendered jobs, all resolved now (nothing is accepted that would fail later): image i > 0
        gets seed + i; with a random seed each image draws its own."""
        first = self.resolve(req)
        rendered = [first]
        for i in range(1, count):
            if first.seed_is_random:
                rendered.append(self.resolve(req))
            else:
                rendered.append(self.resolve(dataclasses.replace(req, seed=seed_of_image(first.seed, i),
                                                                 random_seed=False)))
        return rendered

    def _inputs(self, req: GenerationRequest, template: WorkflowTemplate, values: dict[str, Any],
                requested: Mapping[str, Any]) -> tuple[tuple[InputImage, ...], tuple[str, ...]]:
        """Bind the input image to the workflow's image input and the mask to its mask input (a
        LoadImageMask / `%mask%`, or the image's alpha channel); 400 when the workflow has no such input."""
        needs = template.needs()
        if not req.input_images and req.mask is None:
            if needs["image"] and "image" not in requested and not self.image_supplied(req):
                raise needs_input(template.name)
            return (), ()
        if not needs["image"]:
            raise self.lacks_input(template.name, "image")
        if not req.input_images:
            raise BadRequest("a mask needs an image to go with it", {"parameter": "mask"}, rule="image_input")
        images, notes, mask = list(req.input_images), [], req.mask
        if mask is not None:
            if needs["mask"] is None:
                raise self.lacks_input(template.name, "mask")
            if needs["mask"] == "alpha":
                data, note = with_alpha_mask(images[0].data, mask.data)
                images[0] = png_input_image(data)
            else:
                data, note = mask_file(mask.data, images[0].data)
                mask = png_input_image(data)
                images.append(mask)
                values["mask"] = mask.name
            if note:  # resized to the image, or turned with its EXIF orientation
                notes.append(note)
        if "image" not in requested:
            values["image"] = images[0].name
        return tuple(images), tuple(notes)

    def image_supplied(self, req: GenerationRequest) -> bool:
        """Whether a later layer fills the workflow's image input itself (characters' reference pictures)."""
        return False

    def lacks_input(self, workflow: str, what: str) -> BadRequest:
        """The 400 for a workflow without an image (or mask) input, naming the workflows that have one."""
        description = ("image input (LoadImage or %image%)" if what == "image"
                       else "mask input (LoadImageMask, %mask%, or LoadImage's mask)")
        takes = self.workflows_taking(what)
        return BadRequest(f"workflow {workflow} has no {description}; workflows that take "
                          f"{'an image' if what == 'image' else 'a mask'}: {', '.join(takes) or 'none'}",
                          {"parameter": "workflow" if what == "image" else "mask", "allowed": takes},
                          rule="image_input")

    def workflow_needs(self) -> dict[str, dict[str, Any]]:
        """Workflow name -> what it takes besides text ({"image": bool, "mask": "file"|"alpha"|None})."""
        out = {}
        for name in self.workflow_names():
            try:
                out[name] = self.template(name).needs()
            except LinkPixError:
                continue  # a broken file is reported where it is used
        return out

    def workflows_taking(self, what: str) -> list[str]:
        """Workflow names whose graph takes an image (`what="image"`) or a mask."""
        return [name for name, needs in self.workflow_needs().items() if needs[what]]

    def _check_backend(self, template: WorkflowTemplate, values: Mapping[str, Any], names: set[str],
                       registry: Registry) -> None:
        """A model/sampler/LoRA the backend lacks is the client's mistake: say what it has."""
        if not names:
            return
        info = self._info()
        if not info:
            return
        for pname in sorted(names):
            value = values.get(pname)
            for slot in template.params[pname].slots:
                if slot.param != pname:
                    continue
                spec = input_spec(info, slot.class_type, slot.input)
                allowed = combo_choices(spec)
                if spec is None and slot.class_type not in info:
                    allowed = registry.backend_choices(pname, info)
                elif remote_combo(spec):
                    allowed = None  # a remote combo: ComfyUI fetches the list itself
                if allowed is not None and value not in allowed:
                    raise not_available(pname, value, allowed)

    # ---------------------------------------------------------------------------- descriptions
    def workflow_names(self) -> list[str]:
        return list_workflows(self._config().workflows_dir)

    def describe_workflow(self, name: str) -> dict:
        """Parameters, types, defaults, targets and sources of one workflow, plus its settings."""
        template = self.template(name)
        out = template.describe()
        out["settings"] = dict(self._settings(self._config().workflows_dir, template.name))
        side = sidecar_path(self._config().workflows_dir / template.name)
        out["sidecar"] = side.name if side else None
        return out

    def styles(self) -> dict[str, dict]:
        return {name: style.to_dict() for name, style in self._styles().items()}

    def problems(self) -> list[str]:
        """Shared files that currently fail to parse (the last good version is being served)."""
        return [str(p) for p in self._store.problems()]

    def fingerprint(self) -> object:
        """Changes when anything that affects resolution changes: a file the resolver has read, the set
        of workflow and settings files, or the configuration object. A few `os.stat` calls, no reads;
        with inotify (see `storage/watch.py`) one `poll` while nothing changed: `config.json` is watched
        too, so the configuration is looked at again only after it changed.

        object_info is left out on purpose: asking for it may mean a network call (ComfyUI down), and a
        backend that gains or loses a model does not change what an already answered URL maps to.
        """
        stored = self._store.fingerprint()
        last = self._last_fingerprint
        if last is not None and last[0] is stored:  # the store's answer is the same object: nothing moved
            return last[1]
        cfg = self._config()
        if cfg is not self._watching:  # a (re)loaded configuration may name other folders
            wdir = cfg.workflows_dir
            self._store.watch_dirs((wdir, wdir / SETTINGS_DIR, cfg.data_dir))
            self._store.watch_files((cfg.source, cfg.base_dir / ".env"))
            self._watching = cfg
            stored = self._store.fingerprint()
        fingerprint = (stored, id(cfg))
        self._last_fingerprint = (stored, fingerprint)
        return fingerprint


# --------------------------------------------------------------------------------------- helpers
def _styles_of(doc: Mapping[str, Any], where: str) -> tuple[str, ...] | None:
    value = doc.get("style", doc.get("styles"))
    try:
        return parse_styles(value)
    except BadRequest as exc:
        raise ConfigError(f"{where}: {exc.message}") from None


def _params_of(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """Settings and preferences hold parameters at the top level or under "params"."""
    nested = doc.get("params")
    flat = {k: v for k, v in doc.items()
            if k not in ("params", "style", "styles", "workflow", "seed", "provider_fallback")}
    if isinstance(nested, Mapping):
        flat.update(nested)
    return flat


def _canonical(registry: Registry, params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw, value in params.items():
        name = registry.canonical(raw)
        if name in out and out[name] != value:
            raise BadRequest(f"{name} is given twice (as {raw!r} and another alias)", {"parameter": name})
        out[name] = value
    return out


def _coerce(registry: Registry, name: str, value: Any, where: str, max_pixels: int | None = None) -> Any:
    try:
        return registry.coerce(name, value)
    except BadRequest as exc:
        if where == "request":
            if name in ("width", "height") and max_pixels:
                exc.message += f"; width x height may be at most {max_pixels} pixels (max_pixels)"
                exc.args = (exc.message,)
            raise
        raise ConfigError(f"{where}: {exc.message}", exc.details) from None


def _first(registry: Registry, name: str, layers: tuple[tuple[str, Mapping[str, Any]], ...]) -> Any:
    for where, layer in layers:
        if name in layer:
            return _coerce(registry, name, layer[name], where)
    return None
