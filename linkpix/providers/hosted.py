"""The hosted providers as one service: which provider takes a request, and one run on it.

Routing (the Flux Generator plan's router, kept small): a request names a provider model
(`model=<provider>:<model>`, from the link, the workflow's settings or a style) and goes there; or it names
none and goes to ComfyUI, unless no ComfyUI backend can run it and a fallback is configured
(`provider_fallback`: a `<provider>:<model>`, or just `<provider>`, or `auto` for the best-priority
provider that has the features the request needs). The choice is made before the cache key is computed, so
a picture from a hosted model never stands in for the ComfyUI picture of the same link.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import requests

from linkpix.errors import BackendUnavailable, BadRequest, ExecutionFailed
from linkpix.imaging.encode import image_size
from linkpix.providers import bfl, openai_images
from linkpix.providers.calls import Caller
from linkpix.providers.request import HostedRequest
from linkpix.providers.spec import ProviderSpec, split_ref

CostObserver = Callable[[str, str, float, float], None]  # user, provider, cost, seconds
AUTO = "auto"


class Providers:
    """`route(...)` picks a provider model; `run(ref, req, user)` makes the picture there."""

    def __init__(self, specs: Callable[[], Sequence[ProviderSpec]]) -> None:
        self._specs = specs
        self._sessions: dict[str, requests.Session] = {}
        self._lock = threading.Lock()
        self.on_cost: CostObserver | None = None

    def names(self) -> list[str]:
        return [s.name for s in self._specs()]

    def spec(self, name: str) -> ProviderSpec | None:
        return next((s for s in self._specs() if s.name == name), None)

    def explicit(self, value: object) -> str | None:
        """`provider:model` when `value` names a configured provider (else None: a checkpoint name);
        a configured provider with a model it does not list is a 400 naming the models it has."""
        parts = split_ref(value)
        if parts is None:
            return None
        spec = self.spec(parts[0])
        if spec is None:
            return None
        if parts[1] not in spec.models:
            raise BadRequest(f"provider {spec.name!r} has no model {parts[1]!r}; it has: {', '.join(spec.models)}",
                             {"parameter": "model", "allowed": [f"{spec.name}:{m}" for m in spec.models]})
        return f"{spec.name}:{parts[1]}"

    def fallback(self, setting: str, feature: str) -> str | None:
        """Where a request goes when ComfyUI cannot take it: the setting's provider model if it has the
        feature, or with `auto` / a bare provider name the best-priority model that has it; None: nowhere."""
        setting = setting.strip()
        if not setting:
            return None
        parts = split_ref(setting)
        candidates = sorted(self._specs(), key=lambda s: s.priority)
        if parts is not None:
            spec = self.spec(parts[0])
            return setting if spec is not None and feature in spec.features and parts[1] in spec.models else None
        for spec in candidates:
            if (setting == AUTO or spec.name == setting) and feature in spec.features:
                return f"{spec.name}:{spec.models[0]}"
        return None

    def named_in(self, layers: Iterable[tuple[str, dict[str, Any]]], styles: Iterable[Any]) -> str | None:
        """The provider model a request's `model=` names (request, workflow settings, preferences: the
        resolver's layers, first wins) or a chosen style's `model`; the value is taken out of the layers so
        it never lands in the graph's checkpoint input."""
        layers = list(layers)
        found = next((ref for _w, layer in layers if (ref := self.explicit(layer.get("model"))) is not None), None)
        if found is not None:
            for _w, layer in layers:
                if self.explicit(layer.get("model")) is not None:
                    layer.pop("model")
            return found
        return next((ref for s in styles if (ref := self.explicit(getattr(s, "model", ""))) is not None), None)

    def fallback_for(self, wf_settings: Mapping[str, Any], styles: Iterable[Any], default: str, has_image: bool,
                     has_mask: bool) -> str | None:
        """The provider model a request falls back to: workflow settings > a style > the global setting."""
        setting = str(wf_settings.get("provider_fallback") or next(
            (s.provider_fallback for s in styles if getattr(s, "provider_fallback", "")), "") or default)
        return self.fallback(setting, "inpainting" if has_mask else "img2img" if has_image else "txt2img")

    def run(self, ref: str, req: HostedRequest, user: str) -> bytes:
        """The picture's bytes, from the provider `ref` names; counts its cost for `user`."""
        name, _, _model = ref.partition(":")
        spec = self.spec(name)
        if spec is None:
            raise BackendUnavailable(f"provider {name!r} is no longer configured (configured: "
                                     f"{', '.join(self.names()) or 'none'})")
        if req.feature not in spec.features:
            raise BadRequest(f"provider {spec.name!r} does not do {req.feature} (it does: "
                             f"{', '.join(spec.features)})", {"parameter": "model"})
        started = time.monotonic()
        caller = Caller(spec, self._session(spec.name), started + spec.timeout)
        data = (bfl.run if spec.kind == "bfl" else openai_images.run)(caller, req)
        try:
            width, height = image_size(data)
        except (OSError, ValueError):
            raise ExecutionFailed(f"provider {spec.name!r} sent something that is not a picture",
                                  {"provider": spec.name}) from None
        if self.on_cost is not None:  # counted on the picture as delivered, whatever size was asked
            self.on_cost(user, spec.name, spec.cost(width, height), time.monotonic() - started)
        return data

    def _session(self, name: str) -> requests.Session:
        with self._lock:
            session = self._sessions.get(name)
            if session is None:
                session = self._sessions[name] = requests.Session()
            return session

    def close(self) -> None:
        with self._lock:
            for session in self._sessions.values():
                session.close()
            self._sessions.clear()
