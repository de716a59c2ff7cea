"""What the three fronts share: who is calling, whether a front is on, and the one way to make pictures.

Every front turns its dialect into a `GenerationRequest` and hands it to `render` and `generate` here,
which are the same resolver and generator `/prompt` uses: styles, the cache, single-flight, limits and
the request log apply to every tool alike. `backend_info` is the one place the fronts read ComfyUI's
object_info, so switching to the pool's merged view is a change of one line.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
from typing import Any

from flask import Response, request

from linkpix.comfy.objectinfo import without_uploads
from linkpix.errors import BadRequest, LinkPixError, NotFound, Unauthorized
from linkpix.model import RenderedJob, validate_user
from linkpix.pipeline.backends import EventCallback
from linkpix.pipeline.flight import Ticket
from linkpix.pipeline.generator import Outcome
from linkpix.pipeline.media import require_picture
from linkpix.storage.cache import CachedImage
from linkpix.web.services import Services, services

log = logging.getLogger(__name__)

GPU_SECONDS = "linkpix.gpu_seconds"  # environ: the seconds in ComfyUI this request's runs took

ANONYMOUS = "default"
FRONT_KEY = "linkpix.front_key"  # environ: the key of a /comfy/k/<key>/ path


def backend_info(svc: Services | None = None) -> dict[str, Any] | None:
    """ComfyUI's object_info as the fronts present it (None when no backend answers), without users'
    uploads among LoadImage's files (comfy/objectinfo.without_uploads)."""
    svc = svc or services()
    try:
        info = svc.pool.object_info()  # every backend's together; never waits on a frozen one
    except LinkPixError:
        return None
    return without_uploads(info) if info is not None else None


def require_enabled(name: str) -> None:
    """404 (in the caller's dialect, through its error handler) when the front is turned off."""
    if name not in services().config.settings.fronts:
        raise NotFound(f"the {name} front is turned off (the 'fronts' setting)")


def bearer_key() -> str | None:
    """`Authorization: Bearer <key>` or `X-API-Key`; the empty `Bearer ` some clients send is no key."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.headers.get("X-API-Key", "").strip() or None


def basic_password() -> str | None:
    """The password of `Authorization: Basic` (A1111's --api-auth user:password); empty means none."""
    auth = request.headers.get("Authorization", "")
    if auth[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None
    password = decoded.partition(":")[2] if ":" in decoded else decoded
    return password.strip() or None


def caller(key: str | None, how: str) -> str:
    """The user behind a front request.

    A known key names its user, always. With network_access off nothing is asked for: a missing or
    unknown key is the anonymous user. With it on, a key is needed, except from the addresses in
    `fronts_allow` (clients such as SillyTavern's ComfyUI source cannot send one).
    """
    settings = services().config.settings
    if key is not None:
        for known, name in settings.api_keys.items():
            if hmac.compare_digest(known.encode(), key.encode()):
                return validate_user(name)
    if not settings.network_access or _allowed(request.remote_addr, settings.fronts_allow):
        return ANONYMOUS
    if key is not None:
        raise Unauthorized("unknown API key")
    raise Unauthorized(f"LinkPix is open to the network: send an API key from api_keys {how}, or list "
                       "this client's address in fronts_allow")


def _allowed(addr: str | None, networks: list[str]) -> bool:
    if not addr or not networks:
        return False
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)


def generate(job: RenderedJob, user: str, front: str, on_event: EventCallback | None = None,
             ticket: Ticket | None = None) -> Outcome:
    """Run (or fetch from the cache) one job through the shared generator, and note it in the request log.
    The fronts that call this (A1111's base64 `images`, OpenAI's `b64_json`/`url`) carry pictures only: a
    workflow whose output is a video or a sound is refused naming the node and the file (422
    `unsupported_output`); the file is stored all the same, for the link and the Comfy API v2."""
    outcome = services().generator.generate(job, user, on_event, ticket=ticket)
    if outcome.gpu_seconds is not None:  # this request ran something: the answer says what (gpu_seconds_header)
        request.environ[GPU_SECONDS] = request.environ.get(GPU_SECONDS, 0.0) + outcome.gpu_seconds
    info = request.environ.get("linkpix.log")
    if info is not None:
        hit = "hit" if outcome.cache_hit else "miss"
        previous = info.get("cache")
        info.update(user=user, front=front, key=outcome.image.key[:12],
                    cache=hit if previous in (None, hit) else "mixed")
    require_picture(outcome.image)
    return outcome


def gpu_seconds_header(resp: Response) -> Response:
    """`X-LinkPix-GPU-Seconds` on a front's answer whose request ran something in ComfyUI (the sum over a
    batch), as `/prompt` answers say it: a caller counting its GPU time needs no second request. Absent
    when every image came from the cache or joined another request's run."""
    seconds = request.environ.get(GPU_SECONDS)
    if seconds is not None and "X-LinkPix-GPU-Seconds" not in resp.headers:
        resp.headers["X-LinkPix-GPU-Seconds"] = f"{seconds:.3f}"
    return resp


def empty_response(status: int = 200) -> Response:
    """ComfyUI's bare `web.Response(status=...)`: no body, and no Content-Type claiming one (Flask's
    default would say text/html)."""
    resp = Response(status=status)
    del resp.headers["Content-Type"]
    return resp


def image_base64(image: CachedImage) -> str:
    return base64.b64encode(image.read()).decode("ascii")


def absolute_url(image: CachedImage) -> str:
    return request.host_url.rstrip("/") + image.url


def decode_base64_image(value: Any, what: str) -> bytes:
    """Base64 text or a data: URL (as A1111 and OpenAI clients send images) -> bytes."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{what} must be a base64-encoded image", {"parameter": what})
    payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{what} is not valid base64", {"parameter": what}) from None
