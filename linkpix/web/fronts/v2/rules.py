"""What a v2 request may carry, checked with the contract's rules and codes: the POST /jobs body
(`workflow`, `metadata` labels, `extra_data`), the Idempotency-Key header, and GET /jobs's query
(`status`, `limit`, `cursor`, `metadata[<key>]` filters)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from linkpix.pipeline.secrets import PARTNER_KEY_RE
from linkpix.web.fronts.v2.errors import V2Error

MAX_LABELS = 16
MAX_FILTERS = 3
MAX_KEY_CHARS = 255
DEFAULT_LIMIT, MAX_LIMIT = 50, 100
STATUSES = ("queued", "running", "succeeded", "canceling", "canceled", "failed", "expired")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,40}$")
_BAD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_KEY_CHARS = re.compile(r"^[\x21-\x7e]+$")
# What GET /jobs' docstring documents for `cursor` (make_cursor writes it): the time a job was made, then its id.
_CURSOR = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,20})?~[A-Za-z0-9_-]{1,64}\Z")
_USER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Submission:
    workflow: Any
    metadata: dict[str, str]
    fingerprint: str  # of the whole body: what an idempotency record is about
    partner_key: str | None = field(default=None, repr=False)  # extra_data.api_key_comfy_org: never shown


@dataclass(frozen=True)
class ListQuery:
    statuses: frozenset[str] | None
    limit: int
    before: tuple[float, str] | None
    labels: dict[str, str]
    user: str | None = None  # `user=`: an admin key's listing narrowed to one user (ignored for other keys)


def submission(body: Any) -> Submission:
    if not isinstance(body, dict):
        raise V2Error(400, "invalid_request", "the body must be a JSON object: {\"workflow\": {...API-format "
                      "graph...}, \"metadata\"?: {label: value}}")
    if body.get("webhook_url") is not None or body.get("inputs") is not None:
        raise V2Error(422, "invalid_workflow", "'webhook_url' and 'inputs' are reserved and not accepted.")
    partner_key = _extra_data(body.get("extra_data"))
    kept = {k: v for k, v in body.items() if k != "extra_data"}  # the contract leaves it out of the comparison
    fingerprint = hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()
    return Submission(body.get("workflow"), labels(body.get("metadata")), fingerprint, partner_key)


def _extra_data(extra: Any) -> str | None:
    """The contract's closed `extra_data`: only `api_key_comfy_org`, the caller's partner-node key (for
    that job's run only: pipeline/secrets.py). The messages never repeat the value."""
    if extra is None:
        return None
    if not isinstance(extra, dict) or set(extra) - {"api_key_comfy_org"}:
        raise V2Error(400, "invalid_request", "'extra_data' accepts only the 'api_key_comfy_org' field.")
    key = extra.get("api_key_comfy_org")
    if key is None:
        return None
    if not isinstance(key, str) or not PARTNER_KEY_RE.match(key):
        raise V2Error(400, "invalid_request", "'extra_data.api_key_comfy_org' must be a Comfy API key: 1-512 "
                      "printable ASCII characters without spaces.")
    return key


def labels(raw: Any) -> dict[str, str]:
    """`metadata`: at most 16 string labels; a key 1-40 of A-Z a-z 0-9 _ - . ; a value ≤ 256 UTF-8 bytes."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise V2Error(422, "metadata_invalid", "'metadata' must be an object of string labels, e.g. "
                      "{\"client\": \"acme\"}")
    if len(raw) > MAX_LABELS:
        raise V2Error(422, "metadata_invalid", f"'metadata' has {len(raw)} labels; at most {MAX_LABELS} are allowed")
    for key, value in raw.items():
        if not _LABEL_KEY.match(key):
            raise V2Error(422, "metadata_invalid", f"metadata key {key[:60]!r}: 1 to 40 characters from "
                          "A-Z a-z 0-9 _ - .", {"key": key[:60]})
        if not isinstance(value, str) or len(value.encode()) > 256 or _BAD_CHARS.search(value):
            raise V2Error(422, "metadata_invalid", f"metadata value of {key!r}: a string of at most 256 UTF-8 "
                          "bytes without control or bidirectional formatting characters", {"key": key})
    return dict(raw)


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not value or len(value) > MAX_KEY_CHARS or not _KEY_CHARS.match(value):
        raise V2Error(400, "invalid_request", f"Idempotency-Key must be 1-{MAX_KEY_CHARS} printable ASCII "
                      "characters.")
    return value


def list_query(args: Mapping[str, str]) -> ListQuery:
    raw_limit = args.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw_limit)
    except ValueError:
        raise V2Error(400, "invalid_request", "'limit' must be a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise V2Error(400, "invalid_request", f"'limit' must be between 1 and {MAX_LIMIT}.")
    statuses = None
    if args.get("status"):
        statuses = frozenset(s.strip() for s in args["status"].split(",") if s.strip())
        bad = sorted(statuses - set(STATUSES))
        if bad:
            raise V2Error(400, "invalid_request", f"Unknown status filter value(s): {', '.join(bad)} (allowed: "
                          f"{', '.join(STATUSES)}).")
    filters = {k[9:-1]: v for k, v in args.items() if k.startswith("metadata[") and k.endswith("]")}
    if len(filters) > MAX_FILTERS or any(not _LABEL_KEY.match(k) or _BAD_CHARS.search(v) for k, v in filters.items()):
        raise V2Error(400, "invalid_metadata_filter", f"at most {MAX_FILTERS} metadata[<key>]=<value> filters, "
                      "keys of 1 to 40 characters from A-Z a-z 0-9 _ - . and values without control characters")
    user = args.get("user") or None
    if user is not None and not _USER.match(user):
        raise V2Error(400, "invalid_request", "'user' is a user name: 1-64 of A-Z a-z 0-9 _ -")
    return ListQuery(statuses, limit, _cursor(args.get("cursor")), filters, user)


def make_cursor(created: float, job_id: str) -> str:
    """`<created>~<job id>`: readable, and every string of CURSOR_PATTERN is a position in the list (a made-up
    one too), so the documented pattern is exactly what the route takes (the base64 JSON before was not)."""
    return f"{created!r}~{job_id}"


def _cursor(raw: str | None) -> tuple[float, str] | None:
    if not raw:
        return None
    if not _CURSOR.match(raw):
        raise V2Error(400, "invalid_cursor", "this cursor was not issued by GET /api/v2/jobs (it is "
                      "'<created>~<job id>', the next_cursor of a page); start again without one")
    created, job_id = raw.split("~", 1)
    return float(created), job_id
