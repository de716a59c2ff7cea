"""API keys: who is calling, and whether they may change state.

With `network_access` on, LinkPix is reachable from the network, so every route that changes state
(`POST /generate`, `DELETE /jobs/<id>`, `POST /uploads`) needs a key from `api_keys`
(`Authorization: Bearer <key>` or `X-API-Key: <key>`). A key names a user; that user replaces any `user`
field the body carries, so one key cannot act for another user. On loopback only, keys are optional (a
key that is given must still be valid). GET routes never change state and never need a key to exist.
"""

from __future__ import annotations

import hmac

from flask import request

from ..errors import Unauthorized
from ..request import validate_user
from .services import services

ANONYMOUS = "default"


def presented_key() -> str | None:
    """The key the request carries, if any."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.headers.get("X-API-Key", "").strip() or None


def keys_required() -> bool:
    return services().config.settings.network_access


def caller(*, changes_state: bool) -> str:
    """The user behind the request: the key's user, or "default" for an allowed anonymous caller.

    401 for an unknown key, and for a missing key on a state-changing route when network_access is on.
    """
    settings = services().config.settings
    key = presented_key()
    if key is not None:
        user = None
        for known, name in settings.api_keys.items():
            if hmac.compare_digest(known.encode(), key.encode()):
                user = name
        if user is None:
            raise Unauthorized("unknown API key")
        return validate_user(user)
    if changes_state and settings.network_access:
        hint = "" if settings.api_keys else " (none are configured: add some to api_keys)"
        raise Unauthorized("this route changes state and LinkPix is open to the network: send an API key "
                           f"from api_keys as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'{hint}")
    return ANONYMOUS
