"""POST /edit: a photo and an instruction in, the edited photo out — at the photo's full resolution.

A thin route over the one generation path: the body becomes a request through the same parser as the
JSON API, `edit/editor.py` downscales the photo, resolves and runs it like `/prompt` (single-flight, cached)
and finishes it by `method` (auto, lut, region, direct). `?async=1` or a `webhook_url` makes it a job instead.
The query string is read like every other route's: its names join the body's (a name in both, or twice,
is a 400), names no one uses are listed in `X-LinkPix-Ignored`, bad values are a 400.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Blueprint, Response, jsonify, request

from linkpix.edit.editor import EditOutcome
from linkpix.edit.finish import CUBE, MASK, parse_method
from linkpix.errors import BadRequest, UnsupportedMediaType
from linkpix.imaging.budget import check_pixels
from linkpix.imaging.photo import image_size
from linkpix.model import InputImage, make_input_image
from linkpix.pipeline.request import parse_format, parse_json, single_values
from linkpix.web.auth import require
from linkpix.web.errors import no_store
from linkpix.web.jobs import accept, parse_webhook
from linkpix.web.services import services
from linkpix.web.uploads import max_upload_bytes, one_image, upload_store

bp = Blueprint("edit", __name__)

CONTROL_FIELDS = frozenset({"method", "format", "async", "webhook_url", "webhook_secret",
                            "webhook_include_base64", "image", "mask"})
TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")
MAX_IGNORED_SHOWN = 20


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
    for name, value in single_values(request.args.items(multi=True)).items():
        if name in fields:
            raise BadRequest(f"{name!r} is given both in the query string and in the body; give it once",
                             {"parameter": name})
        fields[name] = value
    image = _file_or_field(fields, "image")
    if image is None:
        raise BadRequest("send the photo to edit: multipart file 'image', or 'image' as base64 or an upload id",
                         {"parameter": "image"})
    return fields, image, _file_or_field(fields, "mask")


def _format(value: Any) -> tuple[str | None, bool]:
    """-> (output format, cube, mask or None = the source's; JSON metadata wanted)."""
    text = str(value or "").strip().lower()
    if text == "json":
        return None, True
    if text in (CUBE, MASK):
        return text, False
    try:
        return parse_format(text), False
    except BadRequest:
        raise BadRequest(f"unknown format {value!r}: use png, jpeg, webp, json, cube or mask",
                         {"parameter": "format", "allowed": ["png", "jpeg", "webp", "json", "cube", "mask"]}) from None


def _flag(value: Any, name: str) -> bool:
    text = str(value if value is not None else "").strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise BadRequest(f"{name} must be 1 or 0 (true/false), not {value!r}", {"parameter": name})


@bp.post("/edit")
def edit() -> Response:
    """Edit a photo by instruction; the result comes back at the photo's full resolution.
    ---
    post:
      summary: "Image-to-image, inpainting and instruction edits at full resolution"
      description: "method auto (default) measures how well a 3D colour table alone reproduces the model's
        output (CIEDE2000) and applies it to the original for a colour edit, or returns the model's output for
        a spatial one only the region the model changed, taken into the untouched photo (region); lut, region
        and direct force one. format=cube returns the table as an Adobe .cube file, format=mask the region."
      parameters:
        - in: query
          name: async
          schema: {type: string, enum: ["", "0", "1", "true", "false", "yes", "no", "on", "off"]}
          description: "1: answer 202 with a job instead"
      requestBody:
        required: true
        content:
          multipart/form-data: {schema: EditForm}
          application/json: {schema: EditJson}
      responses:
        200:
          description: "the edited image (X-LinkPix-Edit-Method, X-LinkPix-Edit-Fit), JSON, or a .cube"
          headers:
            X-LinkPix-Edit-Method: {schema: {type: string, enum: [lut, region, direct]}}
            X-LinkPix-Region-Share: {schema: {type: string}, description: "region: share of the picture changed"}
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
    if _flag(fields.get("async"), "async") or fields.get("webhook_url"):
        if fmt == MASK:
            raise BadRequest("format=mask is answered directly; ask for it without async or webhook_url",
                             {"parameter": "format"}, rule="direct_answer")
        return _submit(fields, req, image, method, fmt)
    done = editor.run(req, image, method, fmt, want_mask=json_mode)
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
    if done.region_share is not None:
        headers["X-LinkPix-Region-Share"] = f"{done.region_share:.4f}"
    if done.mask is not None:
        headers["X-LinkPix-Mask-Url"] = done.mask.url
    if done.method == "direct" and done.image is not None:
        headers["X-LinkPix-Model-Output-Size"] = f"{done.image.meta.get('width')}x{done.image.meta.get('height')}"
    notes = (*job.notes, *done.notes)
    if notes:
        headers["X-LinkPix-Notes"] = "; ".join(notes)
    if job.ignored:
        shown = job.ignored[:MAX_IGNORED_SHOWN]
        more = len(job.ignored) - len(shown)
        headers["X-LinkPix-Ignored"] = ",".join(shown) + (f",...(+{more} more)" if more else "")
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
            "prompt": job.prompt, "seed": job.seed, "region_share": done.region_share,
            "mask_url": done.mask.url if done.mask is not None else None, "ignored": list(job.ignored),
            "workflow": job.workflow, "params": job.params, "notes": [*job.notes, *done.notes]}
