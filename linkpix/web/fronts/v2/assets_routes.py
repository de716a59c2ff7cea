"""The v2 asset routes: POST /api/v2/assets (multipart, blake3-addressed), POST .../from-hash,
HEAD .../by-hash/{hash}, GET .../{id} and .../{id}/content (Range), DELETE .../{id}.

An uploaded asset's bytes go to LinkPix's upload store (content-addressed, so a job carries them to
whichever backend runs it, and the cache key covers them); the asset record names them per user. Only
images are decoded fully by the upload store (what a LoadImage reads). A job's outputs
are assets too (`<job id>.<n>`), served from LinkPix's image cache. Audio and video (a LoadAudio's or
LoadVideo's input) are kept as they came, recognised by their bytes' signature (`storage/media.py`), and
sent to ComfyUI like an image (its `/upload/image` stores any file).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import blake3
from flask import Response, g, jsonify, request
from werkzeug.wsgi import wrap_file

from linkpix.errors import BadRequest, NotFound
from linkpix.storage.media import FILE_TYPES, keep_input
from linkpix.web.disposition import disposition
from linkpix.web.fronts.common import empty_response
from linkpix.web.fronts.v2 import shapes
from linkpix.web.fronts.v2.errors import V2Error, not_found
from linkpix.web.fronts.v2.jobs_routes import base, bp, front
from linkpix.web.fronts.v2.records import AssetRecord
from linkpix.web.uploads import max_upload_bytes

_HASH_PREFIX = "blake3:"


IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}


@bp.post("/assets")
def upload() -> Response:
    """Upload an input asset (multipart: file, file_path, content_type?, expected_hash?, tags*).
    ---
    post:
      summary: "Comfy API v2: upload an asset (multipart); blake3 dedup per user"
      requestBody:
        required: true
        content:
          multipart/form-data: {schema: V2AssetForm}
      responses:
        401: {description: "unauthorized: keys are set and none (or an unknown one) was sent"}
        200:
          description: "the caller already had these bytes (created_new false)"
          content: {application/json: {schema: V2Asset}}
        201: {description: "a new asset", content: {application/json: {schema: V2Asset}}}
        409:
          description: hash_mismatch
          content: {application/json: {schema: V2Error}}
        413:
          description: payload_too_large
          content: {application/json: {schema: V2Error}}
        422:
          description: "invalid_request: no file part, a field given twice, or neither an image nor audio or video"
          content: {application/json: {schema: V2Error}}
    """
    file = request.files.get("file")
    if file is None:
        raise V2Error(422, "invalid_request", "Missing 'file' part (multipart/form-data with file, file_path).")
    for field in ("file_path", "content_type", "expected_hash"):  # one value each (tags may repeat)
        if len(request.form.getlist(field)) + len(request.files.getlist(field)) > 1:
            raise V2Error(422, "invalid_request", f"'{field}' is given more than once; send it once.")
    data = file.read()
    limit = max_upload_bytes()
    if len(data) > limit:
        raise V2Error(413, "payload_too_large", f"the asset is {len(data)} bytes; max_upload_mb allows {limit}")
    digest = _HASH_PREFIX + blake3.blake3(data).hexdigest()
    expected = request.form.get("expected_hash")
    if expected and expected.lower() != digest:
        raise V2Error(409, "hash_mismatch", "Client-declared hash does not match the received bytes.",
                      {"expected": expected, "received": digest})
    user = g.v2_user
    existing = front().asset_by_hash(user, digest)
    if existing is not None:
        return jsonify(shapes.asset_body(base(), existing, front().keep_days, created_new=False))
    try:  # a LoadAudio's or LoadVideo's input is kept as it came, never decoded here
        image = keep_input(front().uploads, data, limit)
    except BadRequest as exc:
        raise V2Error(422, "invalid_request", "LinkPix keeps image assets (PNG, JPEG, WebP, GIF: what a "
                      "LoadImage node reads), audio (FLAC, MP3, Ogg, WAV, M4A: LoadAudio) and video (MP4, "
                      f"WebM, MOV, MKV: LoadVideo) by their bytes' signature: {exc.message}") from None
    file_path = request.form.get("file_path") or file.filename or image.name
    # The kind the bytes are, not the one declared: /content serves it back on LinkPix's origin, and a declared
    # text/html over a GIF/HTML polyglot would be a stored script.
    ext = image.name.rsplit(".", 1)[-1]
    content_type = IMAGE_TYPES.get(ext) or FILE_TYPES[ext]
    record = front().records.add_asset(AssetRecord(str(uuid.uuid4()), user, digest, image.name, len(data),
                                                   content_type, file_path, time.time(),
                                                   request.form.getlist("tags")))
    resp = jsonify(shapes.asset_body(base(), record, front().keep_days, created_new=True))
    resp.status_code = 201
    return resp


@bp.post("/assets/from-hash")
def from_hash() -> Response:
    """An asset over bytes the caller already uploaded, by hash (no upload).
    ---
    post:
      summary: "Comfy API v2: mint an asset from a blake3 hash the caller already has"
      requestBody:
        required: true
        content:
          application/json: {schema: V2FromHash}
      responses:
        200: {description: the asset, content: {application/json: {schema: V2Asset}}}
        401: {description: unauthorized}
        404:
          description: "blob_not_found (also for bytes only another key uploaded)"
          content: {application/json: {schema: V2Error}}
        422: {description: "invalid_request: no blake3:<hex> hash"}
    """
    body = request.get_json(silent=True, force=True)
    digest = body.get("hash") if isinstance(body, dict) else None
    if not isinstance(digest, str) or not digest.startswith(_HASH_PREFIX):
        raise V2Error(422, "invalid_request", "send {\"hash\": \"blake3:<hex>\"}")
    record = front().asset_by_hash(g.v2_user, digest.lower())
    if record is None:
        raise V2Error(404, "blob_not_found", "No blob the caller may mint from.")
    return jsonify(shapes.asset_body(base(), record, front().keep_days, created_new=False))


@bp.route("/assets/by-hash/<digest>", methods=["HEAD"])
def by_hash(digest: str) -> Response:
    """Whether the caller has bytes of this hash (200) or not (404); no body.
    ---
    head:
      summary: "Comfy API v2: existence probe by blake3 hash"
      parameters:
        - {in: path, name: digest, required: true, schema: {type: string}}
      responses:
        401:
          description: "unauthorized: keys are set and none (or an unknown one) was sent"
          content: {application/json: {schema: V2Error}}
        200: {description: the caller has it}
        404:
          description: not the caller's, or unknown
          content: {application/json: {schema: V2Error}}
    """
    found = front().asset_by_hash(g.v2_user, digest.lower())
    if found is not None:
        return empty_response(200)
    return Response(status=404, content_type="application/json")  # a HEAD: the headers a GET's 404 would have


@bp.get("/assets/<asset_id>")
def get_asset(asset_id: str) -> Response:
    """An asset's description with its content URL.
    ---
    get:
      summary: "Comfy API v2: an asset (an upload, or a job's output)"
      parameters:
        - {in: path, name: asset_id, required: true, schema: {type: string}}
      responses:
        401: {description: "unauthorized: keys are set and none (or an unknown one) was sent"}
        200: {description: the asset, content: {application/json: {schema: V2Asset}}}
        404:
          description: not_found
          content: {application/json: {schema: V2Error}}
    """
    v2 = front()
    output = v2.output_asset(g.v2_user, asset_id, g.v2_admin)
    if output is not None:
        job, index, record = output
        body = shapes.asset_body(base(), record, v2.keep_days)
        body.update(job_id=job.id, size_bytes=v2.body(base(), v2.record(g.v2_user, job.id, g.v2_admin), job,
                                                      fetch=False)["outputs"][index]["size_bytes"])
        return jsonify(body)
    record = v2.records.asset(asset_id)
    if record is None or record.user != g.v2_user:
        raise not_found(f"asset {asset_id}")
    return jsonify(shapes.asset_body(base(), record, v2.keep_days))


@bp.get("/assets/<asset_id>/content")
def content(asset_id: str) -> Response:
    """The asset's bytes; a Range request gets 206 with the part asked for.
    ---
    get:
      summary: "Comfy API v2: an asset's bytes (Range supported)"
      parameters:
        - {in: path, name: asset_id, required: true, schema: {type: string}}
      responses:
        401: {description: "unauthorized: keys are set and none (or an unknown one) was sent"}
        200: StoredFile
        206: StoredFileRange
        416: {description: "the range is outside the content"}
        404:
          description: "not_found, or output_unavailable (the cache no longer holds the output)"
          content: {application/json: {schema: V2Error}}
    """
    v2 = front()
    output = v2.output_asset(g.v2_user, asset_id, g.v2_admin)
    if output is not None:
        job, index, record = output
        try:
            stored = v2.output_image(shapes.output_refs(job)[index])
            # a file of this disk is streamed (a video may be large; a player asks for ranges of it)
            body: Any = wrap_file(request.environ, open(stored.path, "rb")) if stored.local else stored.read()
        except (NotFound, OSError):
            raise V2Error(404, "output_unavailable", "LinkPix's cache no longer holds this output. Retrying cannot "
                          "help; submit the workflow again to render it anew.") from None
        size, mime = stored.size, record.content_type
    else:
        record = v2.records.asset(asset_id)
        if record is None or record.user != g.v2_user:
            raise not_found(f"asset {asset_id}")
        try:
            data = v2.uploads.get(record.upload).data
        except BadRequest:
            raise V2Error(404, "output_unavailable", "the bytes of this asset are no longer kept (retention: "
                          "jobs_keep_days); upload it again") from None
        body, size, mime = data, len(data), record.content_type
    resp = Response(body, mimetype=mime, direct_passthrough=True)
    resp.headers["Content-Disposition"] = disposition((record.file_path or record.upload).rsplit("/", 1)[-1])
    resp.headers["X-Content-Type-Options"] = "nosniff"  # the type named is the type read from the bytes
    resp.content_length = size
    return resp.make_conditional(request, accept_ranges=True, complete_length=size)


@bp.delete("/assets/<asset_id>")
def delete_asset(asset_id: str) -> Response:
    """Forget an uploaded asset (its bytes go with retention once nothing uses them).
    ---
    delete:
      summary: "Comfy API v2: delete an uploaded asset"
      parameters:
        - {in: path, name: asset_id, required: true, schema: {type: string}}
      responses:
        401: {description: "unauthorized: keys are set and none (or an unknown one) was sent"}
        204: {description: deleted}
        404:
          description: not_found
          content: {application/json: {schema: V2Error}}
    """
    record = front().records.asset(asset_id)
    if record is None or record.user != g.v2_user:
        raise not_found(f"asset {asset_id}")
    front().records.delete_asset(asset_id)
    return empty_response(204)
