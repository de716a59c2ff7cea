"""The Comfy API v2 front (`/api/v2/`): the contract Comfy Cloud, `comfy-api-proxy` and the official
SDKs (`comfy-sdk`, `@comfyorg/sdk`) speak, translated onto LinkPix's jobs manager, so a program written
for Comfy Cloud runs on LinkPix's pool, cache and keys by pointing `COMFY_BASE_URL` at it.

Modules: `jobs_routes` / `assets_routes` (HTTP), `front` (the logic), `graph` (asset references and
early workflow checks), `rules` (request rules and codes), `shapes` (response shapes), `events` (SSE),
`access` (keys), `errors` (the error envelope), `records` + `sqlite_records` / `redis_records` (what the
contract adds to a LinkPix job: labels, idempotency keys, asset records).
"""

from __future__ import annotations

from flask import Flask

from linkpix.web.fronts.v2 import assets_routes  # noqa: F401 - adds routes
from linkpix.web.fronts.v2.front import V2Front
from linkpix.web.fronts.v2.jobs_routes import EXTENSION, bp
from linkpix.web.fronts.v2.records import V2Records
from linkpix.web.fronts.v2.sqlite_records import SqliteRecords
from linkpix.web.services import Services

DB_FILE = "v2.sqlite3"


def register(app: Flask, svc: Services) -> None:
    """Add the v2 routes and their records (Redis with `redis_url`, else SQLite in the data folder)."""
    if svc.replica is not None:  # imported only with redis_url: the embedded default never loads redis
        from linkpix.web.fronts.v2.redis_records import RedisRecords

        records: V2Records = RedisRecords(svc.replica.shared)
    else:
        records = SqliteRecords(svc.config.data_dir / DB_FILE)
    app.extensions[EXTENSION] = V2Front(svc, records)
    app.register_blueprint(bp)
    svc.closers.append(records.close)
