"""The fronts: LinkPix answering in the dialects tools already speak (A1111, OpenAI Images, ComfyUI, and
the Comfy API v2 of Comfy Cloud and its SDKs).

Each is a thin translation onto the same request -> resolver -> generator path as `/prompt`
(`common.render` / `common.generate`), with errors in the dialect's own shape from one handler per
dialect. `register` adds them to an app built by `create_app`.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask

from linkpix.errors import BackendUnavailable
from linkpix.ops.slots import per_user_cap
from linkpix.web.fronts import openai  # noqa: F401 - adds routes
from linkpix.web.fronts.a1111 import options as a1111_options  # noqa: F401 - adds routes
from linkpix.web.fronts.a1111 import routes as a1111
from linkpix.web.fronts.a1111.runs import A1111Runs
from linkpix.web.fronts.comfy import fileroutes as comfy_files  # noqa: F401 - adds routes
from linkpix.web.fronts.comfy import info as comfy_info  # noqa: F401 - adds routes
from linkpix.web.fronts.comfy import routes as comfy
from linkpix.web.fronts.comfy.files import InputFiles
from linkpix.web.fronts.comfy.runs import ComfyFront
from linkpix.web.fronts.comfy.ws import SocketHub
from linkpix.web.fronts.common import backend_info, gpu_seconds_header
from linkpix.web.fronts.paths import FrontPaths
from linkpix.web.fronts.state import EXTENSION, FrontState
from linkpix.web.fronts.v2 import register as register_v2
from linkpix.web.services import Services

JSON_ROUTES = r"^/(sdapi/v1/.*|v1/.*)$"


class ComfyState:
    """The ComfyUI front's parts: prompts and history, sockets, uploaded inputs."""

    def __init__(self, svc: Services) -> None:
        s = svc.config.settings
        self._svc = svc
        self.hub = SocketHub(s.stream_slots, lambda: per_user_cap(svc.config.settings))
        self.runs = ComfyFront(svc.generator, self.hub, lambda: backend_info(svc))
        self.files = InputFiles(svc.uploads)
        self._info_cache: tuple[int, bytes] | None = None

    def features(self) -> dict[str, Any]:
        mb = self._svc.config.settings.max_upload_mb
        return {"supports_preview_metadata": True, "max_upload_size": int(mb * 1024 * 1024)}

    def object_info_bytes(self) -> bytes:
        """object_info serialised once per version the backend client holds (it is half a megabyte)."""
        info = backend_info(self._svc)
        if info is None:
            raise BackendUnavailable("no ComfyUI backend answers")
        cached = self._info_cache
        if cached is None or cached[0] != id(info):
            cached = self._info_cache = (id(info), json.dumps(info).encode())
        return cached[1]


def register(app: Flask, svc: Services) -> None:
    """Add the fronts' routes, state and path mapping to `app` (before its outer WSGI layers)."""
    state = FrontState(a1111=A1111Runs(), comfy=ComfyState(svc))
    app.extensions[EXTENSION] = state
    for blueprint in (a1111.bp, openai.bp, comfy.bp):
        app.register_blueprint(blueprint)
    app.after_request(gpu_seconds_header)  # on the answers whose request ran something through fronts.common
    svc.closers.append(state.comfy.hub.close)
    register_v2(app, svc)
    app.wsgi_app = FrontPaths(app.wsgi_app)  # type: ignore[method-assign]
