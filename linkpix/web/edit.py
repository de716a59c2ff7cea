"""POST /edit: a photo and an instruction in, the edited photo out — at the photo's full resolution.

A thin route over the one generation path: the body becomes a request through the same parser as the
JSON API, `edit/editor.py` downscales the photo, resolves and runs it like `/prompt` (single-flight, cached)
and finishes it by `method` (auto, lut, direct). `?async=1` or a `webhook_url` makes it a job instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Blueprint, Response, jsonify, request

from linkpix.edit.editor import EditOutcome
from linkpix.edit.finish import CUBE, parse_method
from linkpix.errors import BadRequest, UnsupportedMediaType
from linkpix.imaging.budget import check_pixels
from linkpix.imaging.photo import image_size
from linkpix.model import InputImage, make_input_image
from linkpix.pipeline.request import parse_format, parse_json
from linkpix.web.auth import require
from linkpix.web.errors import no_store
from linkpix.web.jobs import accept, parse_webhook
from linkpix.web.services import services
from linkpix.web.uploads import max_upload_bytes, one_image, upload_store

bp = Blueprint("edit", __name__)

CONTROL_FIELDS = frozenset({"method", "format", "async", "webhook_url", "webhook_secret",
                            "webhook_include_base64", "image", "mask"})
TRUE = ("1", "true", "yes", "on")


def _file_or_field(fields: dict[str, Any], name: str) -> InputImage | None:
    """A multipart file, else the field's value (an upload id or base64)."""
    upload = request.files.get(name)
    if upload is not None and upload.filename is not None:
        data = upload.read()
        if data:
            _within_edit_pixels(data, name)  # before the full decode: a 9000x9000 PNG is 100 KB
            return make_input_image(data, 0, max_upload_bytes(), name)
    return one_image(fields.get(name), name)


def _within_edit_pixels(data: bytes, name: str) -> None:
    """413 for a photo over edit_max_megapixels, read from its header (an unreadable one is left to the
    full check, which says what is wrong with it)."""
    try:
        size = image_size(data)
    except Exception:  # noqa: BLE001 - not an image we can read: make_input_image explains
        return
    check_pixels(size, services().config.settings.edit_max_megapixels, name)


def _read_body() -> tuple[dict[str, Any], InputImage, InputImage | None]:
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        fields: dict[str, Any] = dict(request.form.items())
        include = fields.get("webhook_include_base64")
        if include is not None:
            fields["webhook_include_base64"] = str(include).lower() in TRUE
    elif request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object with image and prompt")
        fields = dict(body)
    else:
        raise UnsupportedMediaType("send the edit as multipart/form-data (file 'image', field 'prompt') or as "
                                   f"JSON (got {request.mimetype or 'no Content-Type'})")
    image = _file_or_field(fields, "image")
    if image is None:
        raise BadRequest("send the photo to edit: multipart file 'image', or 'image' as base64 or an upload id",
                         {"parameter": "image"})
    return fields, image, _file_or_field(fields, "mask")


def _format(value: Any) -> tuple[str | None, bool]:
    """-> (output format or cube or None = the source's, JSON metadata wanted)."""
    text = str(value or "").strip().lower()
    if text == "json":
        return None, True
    if text == CUBE:
        return CUBE, False
    return parse_format(text), False


@bp.post("/edit")
def edit() -> Response:
    """Edit a photo by instruction; the result comes back at the photo's full resolution.
    ---
    post:
      summary: "Image-to-image, inpainting and instruction edits at full resolution"
      description: "method auto (default) measures how well a 3D colour table alone reproduces the model's
        output (CIEDE2000) and applies it to the original for a colour edit, or returns the model's output for
        a spatial one; lut and direct force either. format=cube returns the table as an Adobe .cube file."
      parameters:
        - {in: query, name: async, schema: {type: string, enum: ["0", "1", "true", "false"]},
           description: "1: answer 202 with a job instead"}
      requestBody:
        required: true
        content:
          multipart/form-data: {schema: EditForm}
          application/json: {schema: EditJson}
      responses:
        200:
          description: "the edited image (X-LinkPix-Edit-Method, X-LinkPix-Edit-Fit), JSON, or a .cube"
          headers:
            X-LinkPix-Edit-Method: {schema: {type: string, enum: [lut, direct]}}
          content:
            image/png: {schema: {type: string, format: binary}}
            image/jpeg: {schema: {type: string, format: binary}}
            image/webp: {schema: {type: string, format: binary}}
            text/plain: {schema: {type: string}, description: "format=cube: an Adobe .cube colour table"}
            application/json: {schema: EditMeta}
        202:
          description: "accepted as a job (async=1 or webhook_url)"
          content: {application/json: {schema: JobAccepted}}
        400: {description: "not an image, a bad field, or a workflow without an image (or mask) input"}
        401: {description: "network_access is on and no valid API key was sent"}
        413: {description: "the photo is larger than max_upload_mb or has too many pixels"}
        415: {description: "neither multipart/form-data nor JSON"}
        429: {description: "a rate limit (jobs) was reached; see Retry-After and RateLimit"}
    """
    user = require("editing a photo").user
    svc = services()
    fields, image, mask = _read_body()
    method = parse_method(fields.get("method"))
    fmt, json_mode = _format(fields.get("format"))
    params = {k: v for k, v in fields.items() if k not in CONTROL_FIELDS}
    params["workflow"] = params.get("workflow") or svc.config.settings.edit_workflow
    req = dataclasses.replace(parse_json(params, user, max_upload_bytes()), mask=mask)
    editor = svc.editor
    assert editor is not None
    if str(request.args.get("async", fields.get("async", ""))).lower() in TRUE or fields.get("webhook_url"):
        return _submit(fields, req, image, method, fmt)
    done = editor.run(req, image, method, fmt)
    if json_mode:
        return no_store(jsonify(_describe(done)))
    return _response(done)


def _submit(fields: dict[str, Any], req: Any, image: InputImage, method: str, fmt: str | None) -> Response:
    editor = services().editor
    assert editor is not None
    webhook, secret = parse_webhook(fields, services().webhook_targets())
    job, _prep = editor.resolve(req, image)
    spec = editor.job_spec(job, image, method, fmt, req.mask)
    upload_store().keep(image)
    if req.mask is not None:
        upload_store().keep(req.mask)
    return accept(req.user, [spec], webhook, secret)


def _headers(done: EditOutcome) -> dict[str, str]:
    job = done.job
    headers = {"X-LinkPix-Edit-Method": done.method, "X-LinkPix-Seed": str(job.seed),
               "X-LinkPix-Workflow": job.workflow, "X-LinkPix-Model-Output-Url": done.model_output.url,
               "Cache-Control": "no-store"}
    backend = str(done.model_output.meta.get("backend") or "")
    if backend and "://" not in backend:  # a backend name or a hosted <provider>:<model>, never a URL
        headers["X-LinkPix-Backend"] = backend
    if done.fit is not None:
        headers["X-LinkPix-Edit-Fit"] = f"{done.fit['mean']:.2f}"
    if job.notes:
        headers["X-LinkPix-Notes"] = "; ".join(job.notes)
    return headers


def _response(done: EditOutcome) -> Response:
    headers = _headers(done)
    if done.cube is not None:
        headers["Content-Disposition"] = 'attachment; filename="linkpix-edit.cube"'
        return Response(done.cube, mimetype="text/plain", headers=headers)
    image = done.image
    assert image is not None
    headers.update({"ETag": image.etag, "X-LinkPix-Cache": "hit" if done.cache_hit else "miss",
                    "X-LinkPix-Image-Url": image.url})
    return Response(image.read(), mimetype=image.content_type, headers=headers)


def _describe(done: EditOutcome) -> dict[str, Any]:
    job, image = done.job, done.image
    meta = image.meta if image is not None else {}
    return {"url": image.url if image else None, "cache": "hit" if done.cache_hit else "miss",
            "method": done.method, "fit": done.fit, "format": image.fmt if image else CUBE,
            "width": meta.get("width"), "height": meta.get("height"), "bytes": image.size if image else None,
            "model_output": done.model_output.url, "generation_ms": done.model_output.meta.get("generation_ms"),
            "prompt": job.prompt, "seed": job.seed,
            "workflow": job.workflow, "params": job.params, "notes": list(job.notes)}
