"""POST /uploads: store an input image once, then name it by id in jobs, links and edits.

The id is content-addressed (`linkpix_<hash>.<ext>`), so uploading the same picture twice gives the same
id, and an id can go into a cache key in place of the bytes.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ..errors import BadRequest
from ..request import parse_images
from .auth import caller
from .errors import no_store
from .jobs import _manager

bp = Blueprint("uploads", __name__)


@bp.post("/uploads")
def upload() -> Response:
    """Store an input image for later jobs.
    ---
    post:
      summary: "Upload an input image: raw body, multipart field 'image', or JSON with a base64 'image'"
      responses:
        201: {description: "id (use it in images of POST /generate) and bytes"}
        400: {description: "not a PNG, JPEG, WebP or GIF image, or too large"}
        401: {description: "network_access is on and no valid API key was sent"}
    """
    caller(changes_state=True)
    if "image" in request.files:
        data = request.files["image"].read()
    elif request.is_json:
        body = request.get_json(silent=True)
        value = body.get("image") if isinstance(body, dict) else None
        data = parse_images([value])[0].data if isinstance(value, str) else b""
    else:
        data = request.get_data()
    if not data:
        raise BadRequest("send the image as the body, as multipart field 'image', or as JSON {\"image\": base64}",
                         {"parameter": "image"})
    image = _manager().uploads.put(data)
    resp = jsonify({"id": image.name, "bytes": len(image.data)})
    resp.status_code = 201
    return no_store(resp)
