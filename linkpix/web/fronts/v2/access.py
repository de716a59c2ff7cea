"""Who calls the v2 front. A key of `api_keys` (`Authorization: Bearer <key>`, as the SDK sends its
`api_key`) acts as that key's user: jobs, assets and listings are that user's own. Once keys are
configured (or LinkPix is open to the network) a request without a key is refused with `unauthorized`,
and an unknown key always is - never served as someone else. A key of `admin_keys` also reads (and
cancels) every user's jobs and their outputs, and lists them all."""

from __future__ import annotations

import hmac

from flask import g

from linkpix.pipeline.request import validate_user
from linkpix.web.fronts.common import ANONYMOUS, bearer_key, require_enabled
from linkpix.web.fronts.v2.errors import V2Error
from linkpix.web.services import services


def authenticate() -> str:
    """The calling user (also kept in `g.v2_user`); 404 when the front is off, 401 without a good key."""
    require_enabled("v2")
    settings = services().config.settings
    key = bearer_key()
    user = None
    if key is not None:
        for known, name in settings.api_keys.items():
            if hmac.compare_digest(known.encode(), key.encode()):
                user = validate_user(name)
        if user is None:
            raise V2Error(401, "unauthorized", "the API key sent is not one of LinkPix's api_keys")
    elif settings.api_keys:
        raise V2Error(401, "unauthorized", "send an API key from api_keys as 'Authorization: Bearer <key>' "
                      "(the SDK: Comfy(api_key=...) or COMFY_API_KEY)")
    elif settings.network_access:
        raise V2Error(401, "unauthorized", "LinkPix is open to the network (network_access) and no api_keys are "
                      "configured: add keys to api_keys, then send one as 'Authorization: Bearer <key>'")
    g.v2_user = user or ANONYMOUS
    # An admin key reads every user's jobs and outputs, as on the other routes (docs/isolation.md); what it
    # submits and uploads is still its own user's.
    g.v2_admin = user is not None and key in settings.admin_keys
    return g.v2_user
