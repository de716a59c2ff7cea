"""The HTTP API: `create_app()` builds a Flask app with its services, blueprints and WSGI layers."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from flask_cors import CORS

from linkpix.config import ConfigHolder
from linkpix.web import characters, edit, fronts, guards, images, info, jobs, openapi, ops, uploads, usage
from linkpix.web.errors import register_error_handlers
from linkpix.web.middleware import HitPath, RequestLog
from linkpix.web.services import EXTENSION, Services, build_services

JSON_ROUTES = r"^/(api/.*|health|ready|openapi\.json|generate|jobs.*|uploads|edit)$"


def create_app(config_path: str | os.PathLike[str] = "config.json", *,
               overrides: dict[str, Any] | None = None, use_env: bool = True) -> Flask:
    """Build the API. Tests pass `overrides` and `use_env=False`."""
    holder = ConfigHolder(config_path, overrides, use_env)
    settings = holder.get().settings
    settings.check_rules()
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    svc: Services = build_services(holder)
    app.extensions[EXTENSION] = svc
    guards.install(app)  # before the blueprints: routing options apply as each rule is added
    if settings.cors_origins:
        CORS(app, resources={JSON_ROUTES: {"origins": settings.cors_origins}})
    for blueprint in (images.bp, info.bp, jobs.bp, uploads.bp, edit.bp, characters.bp, openapi.bp, usage.bp):
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    fronts.register(app, svc)  # A1111, OpenAI Images and ComfyUI dialects (web/fronts/)
    running = ops.install(app, svc)  # metrics, the last hour's figures, rate limits (web/ops.py)
    hits = HitPath(app.wsgi_app, svc.memo, svc.fingerprint, lambda: svc.cache.record(hit=True))
    app.wsgi_app = RequestLog(app.wsgi_app, svc.recent_requests, hits,  # type: ignore[method-assign]
                              observe=running.observe_request,
                              use_hits=lambda: not running.limiter.limits_hits)  # limited: through Flask
    return app
