"""`GET /api/usage`: GPU-seconds per user and day, as the usage book (ops/usage.py) keeps them.

A key sees its own user's figures only; a key in `admin_keys` (and, with `network_access` off, a caller
without a key) sees every user's, or one user's with `?user=`. Asking for another user's figures with an
ordinary key answers 404, as for anything else of theirs.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from linkpix.errors import NotFound
from linkpix.pipeline.request import validate_user
from linkpix.web.auth import require
from linkpix.web.errors import no_store
from linkpix.web.services import services

bp = Blueprint("usage", __name__)


@bp.get("/api/usage")
def usage() -> Response:
    """GPU-seconds per user and day (and the hosted providers' cost).
    ---
    get:
      summary: GPU-seconds used, per user and UTC day (a key sees its own user; an admin key everyone)
      parameters:
        - in: query
          name: user
          schema: {type: string, pattern: "^[A-Za-z0-9_-]{1,64}$"}
          description: "one user only"
      responses:
        200:
          description: "rows of user, day (UTC), gpu_seconds, runs, provider_cost, provider_runs; and each
            user's total GPU-seconds"
          content: {application/json: {schema: Usage}}
        401: {description: "LinkPix is open to the network (network_access) and no API key was sent"}
        404: {description: "another user's figures asked for with an ordinary key"}
    """
    who = require("reading GPU usage")
    asked = request.args.get("user")
    if asked is not None:
        asked = validate_user(asked)
    if who.keyed and not who.admin:
        if asked is not None and asked != who.user:
            raise NotFound(f"no usage for user {asked!r}")
        asked = who.user
    book = services().usage
    rows = book.rows(asked) if book is not None else []
    totals: dict[str, Any] = {}
    for row in rows:
        totals[row["user"]] = round(totals.get(row["user"], 0.0) + row["gpu_seconds"], 3)
    return no_store(jsonify({"days": rows, "totals": totals}))
