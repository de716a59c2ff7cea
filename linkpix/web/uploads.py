"""POST /uploads: store an input image once, then name it by id in jobs, links and edits.

The id is a keyed hash of the uploader and the bytes (`linkpix_<hash>.<ext>`, storage/owners.py): the same
picture uploaded twice by one user gives the same id, another user's id is a 404 here as everywhere,
and nobody can tell from a photo whether it was uploaded. An upload is accepted only when it decodes
completely (see `edit/photo.py`); over `max_upload_mb`, or past Pillow's decompression-bomb limit, it is 413.
The helpers below turn ids or base64 in a link, a job or an edit into input images, one way for all.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from linkpix.errors import BadRequest
from linkpix.model import GenerationRequest, InputImage
from linkpix.pipeline.request import parse_images
from linkpix.storage.owners import content_named, is_owner
from linkpix.storage.uploads import Uploads, missing
from linkpix.web.auth import Caller, caller, identify
from linkpix.web.errors import no_store
from linkpix.web.services import services

bp = Blueprint("uploads", __name__)

UPLOAD_ID_RE = re.compile(r"^linkpix_[0-9a-f]{16}\.(png|jpg|gif|webp)$")


def max_upload_bytes() -> int:
    return int(services().config.settings.max_upload_mb * 1024 * 1024)


def upload_store() -> Uploads:
    return services().uploads


def may_use(image: InputImage, who: Caller) -> bool:
    """An admin key uses any upload; so does a keyless caller on this machine alone (network_access off,
    as before uploads had owners); everyone else only their own (storage/owners.py)."""
    if who.admin or (not who.keyed and not services().config.settings.network_access):
        return True
    return is_owner(upload_store().secret(), who.user, image)


def owned_upload(upload_id: str, parameter: str) -> InputImage:
    """The upload behind `upload_id` if the caller may use it; the same 404 as a missing id otherwise."""
    image = upload_store().get(upload_id, parameter)
    if not may_use(image, identify()):
        raise missing(upload_id, parameter)
    return content_named(image)  # runs name pictures by their bytes (the cache, the seed, working copies)


def input_images(items: Any, parameter: str = "images") -> tuple[InputImage, ...]:
    """Upload ids and base64 strings (a list, or one) -> checked InputImages."""
    if items in (None, "", []):
        return ()
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list):
        raise BadRequest(f"{parameter} must be a list of base64 strings or upload ids", {"parameter": parameter})
    stored = {i: owned_upload(item, parameter) for i, item in enumerate(items)
              if isinstance(item, str) and UPLOAD_ID_RE.match(item)}
    inline = parse_images([item for i, item in enumerate(items) if i not in stored], max_upload_bytes(), parameter)
    it = iter(inline)
    return tuple(stored[i] if i in stored else next(it) for i in range(len(items)))


def one_image(value: Any, parameter: str) -> InputImage | None:
    images = input_images(value, parameter)
    if len(images) > 1:
        raise BadRequest(f"{parameter} is one image", {"parameter": parameter})
    return images[0] if images else None


def link_inputs(req: GenerationRequest) -> GenerationRequest:
    """A link's `image=` / `mask=` upload ids become its input image and mask (other values of `image`
    stay what they were: a file name in ComfyUI's input folder)."""
    params = dict(req.params)
    changes: dict[str, Any] = {}
    for name in ("image", "mask"):
        value = params.get(name)
        if isinstance(value, str) and UPLOAD_ID_RE.match(value):
            del params[name]
            image = owned_upload(value, name)
            changes["input_images" if name == "image" else "mask"] = (image,) if name == "image" else image
        elif name == "mask" and value not in (None, ""):
            raise BadRequest("mask must be an upload id from POST /uploads", {"parameter": "mask"})
    if not changes:
        return req
    return dataclasses.replace(req, params=params, **changes)


@bp.post("/uploads")
def upload() -> Response:
    """Store an input image for later jobs.
    ---
    post:
      summary: "Upload an input image: raw body, multipart field 'image', or JSON with a base64 'image'"
      requestBody:
        required: true
        content:
          image/png: {schema: {type: string, format: binary}}
          image/jpeg: {schema: {type: string, format: binary}}
          image/webp: {schema: {type: string, format: binary}}
          image/gif: {schema: {type: string, format: binary}}
          multipart/form-data: {schema: UploadForm}
          application/json: {schema: UploadJson}
      responses:
        201:
          description: "id (use it in images of POST /generate, image= or mask= of a link, POST /edit) and bytes"
          content: {application/json: {schema: Upload}}
        400: {description: "not a PNG, JPEG, WebP or GIF image that decodes completely"}
        401: {description: "network_access is on and no valid API key was sent"}
        413: {description: "larger than max_upload_mb, or too many pixels to decode safely"}
        429: {description: "a rate limit (uploads) was reached; see Retry-After and RateLimit"}
    """
    owner = caller(changes_state=True)
    limit = max_upload_bytes()
    if "image" in request.files:
        data = request.files["image"].read()
    elif request.is_json:
        body = request.get_json(silent=True)
        value = body.get("image") if isinstance(body, dict) else None
        data = parse_images([value], limit, "image")[0].data if isinstance(value, str) else b""
    else:
        data = request.get_data()
    if not data:
        raise BadRequest("send the image as the body, as multipart field 'image', or as JSON {\"image\": base64}",
                         {"parameter": "image"})
    image = upload_store().put(data, limit, owner=owner)
    resp = jsonify({"id": image.name, "bytes": len(image.data)})
    resp.status_code = 201
    return no_store(resp)
