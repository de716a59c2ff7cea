"""Checks every request passes before any view runs: body size, JSON depth, repeated query parameters,
the API key, and URLs that routing would otherwise answer with an HTML redirect.

They live here, once, rather than in each route, so a route added later (a front, an edit endpoint)
gets them without asking. The WSGI server enforces the same body limit before the app is even called
(`serving.py`); the check here covers any other server and keeps the message in one place.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider

from linkpix.config import LoadedConfig, Settings
from linkpix.errors import BadRequest, PayloadTooLarge
from linkpix.model import USER_NAME_RE
from linkpix.pipeline.request import single_values
from linkpix.web.auth import claims_keyed_user, identify
from linkpix.web.requestinfo import user_from_environ
from linkpix.web.services import services

MIB = 1024 * 1024
# A JSON body of this API is three or four levels deep (a ComfyUI graph five or six); far deeper is an
# attack on the parser or on whatever walks the result later.
MAX_JSON_DEPTH = 64
# Blueprints that check keys themselves, as their clients send them (A1111: HTTP Basic; with network_access
# off they ask for nothing, whatever key a client is made to send).
FRONT_BLUEPRINTS = frozenset({"a1111", "openai", "comfy"})


def body_limit(settings: Settings) -> int:
    """Largest request body in bytes: one input image of `max_upload_mb` sent as base64 (4/3 larger),
    plus 1 MiB for the JSON or multipart framing and the other fields."""
    return int(settings.max_upload_mb * MIB * 4 / 3) + MIB


class GuardedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, with nesting bounded: a body nested 1,100 levels deep is a 400, not a
    RecursionError (500) in the parser or in the code that walks it afterwards."""

    sort_keys = False  # answers keep the order the code wrote them in

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            value = json.loads(s, parse_int=_bounded_int, **kwargs)
        except RecursionError:
            raise _too_deep() from None
        if _depth_exceeds(value, MAX_JSON_DEPTH):
            raise _too_deep()
        return value


MAX_INT_DIGITS = 100  # a seed has 20; Python refuses to parse more than 4300 and the body looked "not JSON"


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadRequest(f"a number in the JSON body has {len(text.lstrip('-'))} digits; at most "
                         f"{MAX_INT_DIGITS} are accepted (a seed has at most 20)")
    return int(text)


def _too_deep() -> BadRequest:
    return BadRequest(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Iterative, so measuring depth cannot itself hit the recursion limit."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def install(app: Flask) -> None:
    """Set the app up; call before the blueprints are registered (routing options apply per rule)."""
    # `/images//etc/passwd` would otherwise answer a 308 HTML redirect; now it is a JSON 404.
    app.url_map.merge_slashes = False
    app.json = GuardedJSONProvider(app)
    svc = services(app)

    def _apply(cfg: LoadedConfig) -> None:
        app.config["MAX_CONTENT_LENGTH"] = body_limit(cfg.settings)

    _apply(svc.config)
    svc.config_holder.subscribe(_apply)
    app.before_request(_check_request)


def _check_request() -> None:
    port = request.environ.get("SERVER_PORT", "")
    if port.isdigit():
        services().own_ports.add(int(port))  # webhooks must never call back into LinkPix
    length = request.content_length
    limit = request.max_content_length
    if length is not None and limit is not None and length > limit:
        raise PayloadTooLarge(f"the request body is {length} bytes; the limit is {limit} bytes (one image of "
                              f"max_upload_mb MiB, base64 included)", {"max_bytes": limit})
    single_values(request.args.items(multi=True))
    if request.blueprint in FRONT_BLUEPRINTS:
        return  # the fronts ask for keys in their own dialect (web/fronts/common.caller)
    who = identify()  # a key that is sent must be valid, on every route
    info = request.environ.get("linkpix.log")
    if info is not None and not who.keyed and request.path.startswith("/prompt/"):
        claimed = user_from_environ(request.environ)
        if USER_NAME_RE.match(claimed) and not claims_keyed_user(claimed):  # never into a keyed user's log
            info["user"] = claimed
