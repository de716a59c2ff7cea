"""API keys: who is calling, what they may change, and whose requests and jobs they may see.

A key from `api_keys` (`Authorization: Bearer <key>` or `X-API-Key: <key>`) names a user. A key that is
sent must be valid on every route, `/prompt` included (401 otherwise): a client that sends a wrong key
is told so instead of being served as someone else. With `network_access` on, LinkPix is reachable from
the network, so the routes that change state or show what users asked for (submitting, cancelling and
reading jobs, uploads, the request log) need a key.

What a key sees: its own user's jobs and requests only, so one user cannot read another's prompts,
images or webhooks. A key listed in `admin_keys` sees everyone's (the dashboard uses one). Without a
key (allowed only with `network_access` off, where every caller is on this machine) everything is shown,
as before keys existed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from flask import request

from linkpix.errors import Forbidden, NotFound, Unauthorized
from linkpix.model import validate_user
from linkpix.web.services import services

ANONYMOUS = "default"
_ENVIRON_KEY = "linkpix.caller"


@dataclass(frozen=True)
class Caller:
    """The authenticated identity of one request."""

    user: str  # the key's user; "default" without a key
    keyed: bool  # a valid key was sent
    admin: bool = False  # the key is in admin_keys

    def sees(self, owner: str | None) -> bool:
        """Whether this caller may see a job or request of user `owner`."""
        return self.admin or not self.keyed or owner == self.user


def presented_key() -> str | None:
    """The key the request carries, if any."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.headers.get("X-API-Key", "").strip() or None


def keys_required() -> bool:
    return services().config.settings.network_access


def identify() -> Caller:
    """Who sent this request (computed once per request); 401 for a key that is not in api_keys."""
    known = request.environ.get(_ENVIRON_KEY)
    if known is not None:
        return known
    settings = services().config.settings
    key = presented_key()
    if key is not None:
        user = None
        for candidate, name in settings.api_keys.items():
            if hmac.compare_digest(candidate.encode(), key.encode()):
                user = name
        if user is None:
            raise Unauthorized("the API key sent is not one of api_keys; check it, or send none on a link")
        found = Caller(validate_user(user), True, key in settings.admin_keys)
    else:
        found = Caller(ANONYMOUS, False)
    request.environ[_ENVIRON_KEY] = found
    info = request.environ.get("linkpix.log")
    if found.keyed and info is not None:
        info["user"] = found.user
    return found


def require(what: str) -> Caller:
    """The caller of a route that needs a key on the network; `what` names the route's purpose for the
    401 message ("listing jobs", "cancelling a job")."""
    who = identify()
    settings = services().config.settings
    if not who.keyed and settings.network_access:
        hint = "" if settings.api_keys else " (none are configured: add some to api_keys)"
        raise Unauthorized(f"{what} needs an API key, because LinkPix is open to the network (network_access "
                           f"is on): send a key from api_keys as 'Authorization: Bearer <key>' or "
                           f"'X-API-Key: <key>'{hint}", {"needs": "api_key"})
    return who


def caller(*, changes_state: bool, what: str = "this route") -> str:
    """The user behind the request (the key's user, or "default"); kept for routes written against it.

    401 for an unknown key, and for a missing key on a state-changing route when network_access is on.
    """
    return require(what).user if changes_state else identify().user


def visible_job_owner(owner: str, job_id: str, who: Caller) -> None:
    """404 (not 403: whether the id exists is nobody else's business) for another user's job."""
    if not who.sees(owner):
        raise NotFound(f"no job {job_id!r}")


def acting_user(claimed: str | None) -> str:
    """The user a request acts as, given the user it names (`?user=`, X-LinkPix-User; None or "default":
    none). A key's user is the user: a key naming another user is a 403 on a shared LinkPix (an admin key
    may act as anyone), and a request without a key may not name a user that has one. With network_access
    off every caller is on this machine and a named user is taken as it is, as before keys existed; a key
    naming a user without a key stays its own user."""
    who = identify()
    settings = services().config.settings
    named = None if claimed in (None, "", ANONYMOUS) else claimed
    if named is None:
        return who.user
    if who.keyed and named != who.user and settings.network_access and not who.admin:
        if named not in settings.api_keys.values():
            return who.user  # a name without a key: the key's user it stays, as before
        raise Forbidden(f"this API key belongs to user {who.user!r}; it may not act as {named!r} (leave user "
                        f"out, or use that user's key)", {"parameter": "user"})
    if not who.keyed and settings.network_access and named in settings.api_keys.values():
        raise Forbidden(f"user {named!r} has an API key: send it to act as that user", {"parameter": "user"})
    return validate_user(named)


def claims_keyed_user(claimed: str) -> bool:
    """Whether a request without a key names a user that has one, on a shared LinkPix (refused later)."""
    settings = services().config.settings
    return settings.network_access and claimed in settings.api_keys.values()
