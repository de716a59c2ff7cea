"""POST /uploads: store an input image once, then name it by id in jobs, links and edits.

The id is content-addressed (`linkpix_<hash>.<ext>`), so uploading the same picture twice gives the same
id, and an id can go into a cache key in place of the bytes. An upload is accepted only when it decodes
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
from linkpix.storage.uploads import Uploads
from linkpix.web.auth import caller
from linkpix.web.errors import no_store
from linkpix.web.services import services

bp = Blueprint("uploads", __name__)

UPLOAD_ID_RE = re.compile(r"^linkpix_[0-9a-f]{16}\.(png|jpg|gif|webp)$")


def max_upload_bytes() -> int:
    return int(services().config.settings.max_upload_mb * 1024 * 1024)


def upload_store() -> Uploads:
    return services().uploads


def input_images(items: Any, parameter: str = "images") -> tuple[InputImage, ...]:
    """Upload ids and base64 strings (a list, or one) -> checked InputImages."""
    if items in (None, "", []):
        return ()
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list):
        raise BadRequest(f"{parameter} must be a list of base64 strings or upload ids", {"parameter": parameter})
    stored = {i: upload_store().get(item, parameter) for i, item in enumerate(items)
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
            image = upload_store().get(value, name)
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
    caller(changes_state=True)
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
    image = upload_store().put(data, limit)
    resp = jsonify({"id": image.name, "bytes": len(image.data)})
    resp.status_code = 201
    return no_store(resp)
