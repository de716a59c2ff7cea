"""The ComfyUI front's file routes: `GET /view` (an output or an uploaded input) and `POST /upload/image`.

On the ComfyUI front's blueprint (routes.py), so the same key check and error shape apply; outputs are
LinkPix's stored copies, inputs live in the upload service (a folder, or the bucket with `storage: s3`).
"""

from __future__ import annotations

from urllib.parse import unquote

from flask import Response, g, jsonify, request
from werkzeug.wsgi import wrap_file

from linkpix.errors import BadRequest, NotFound
from linkpix.web.disposition import disposition
from linkpix.web.fronts.comfy.routes import bp, comfy_front
from linkpix.web.services import services
from linkpix.web.uploads import max_upload_bytes


@bp.get("/view")
def view() -> Response:
    """An output image (LinkPix's stored copy) or an uploaded input image.
    ---
    get:
      summary: "ComfyUI GET /view?filename=&subfolder=&type=output|input (the query may be sent unencoded)"
      parameters:
        - in: query
          name: filename
          required: true
          description: "a file name: no '/', no '..'"
          schema: {type: string, pattern: '^(\\.?[^/.])*\\.?$'}
        - {in: query, name: subfolder, schema: {type: string}}
        - {in: query, name: type, schema: {type: string, enum: [output, input, temp]}}
      responses:
        200:
          description: the image
          content:
            image/png: {schema: {type: string, format: binary}}
            image/jpeg: {schema: {type: string, format: binary}}
            image/webp: {schema: {type: string, format: binary}}
            image/gif: {schema: {type: string, format: binary}}
        400: {description: "a file name with a folder in it"}
        404: {description: no such file}
    """
    query = raw_query()
    filename = query.get("filename", "")
    kind = query.get("type") or "output"
    for tag in ("output", "input", "temp"):
        if filename.endswith(f" [{tag}]"):
            filename, kind = filename[:-len(tag) - 3], tag
    if not filename:
        raise NotFound("no filename")
    if "/" in filename or ".." in filename:
        raise BadRequest(f"invalid filename {filename!r}")
    user = g.front_user
    if kind == "output":
        image = services().cache.lookup_file(user, filename)
        if not image.local:  # S3: the bytes, not a file
            return Response(image.read(), mimetype=image.content_type,
                            headers={"Content-Disposition": disposition(filename)})
        path, mime = image.path, image.content_type
    elif kind == "input":
        name = filename if not query.get("subfolder") else f"{query['subfolder'].strip('/')}/{filename}"
        upload = comfy_front().files.get(user, name) or comfy_front().files.get(user, name.replace("+", " "))
        if upload is None:
            raise NotFound(f"no input file {name!r}")
        mime = "image/" + ("jpeg" if upload.name.endswith(".jpg") else upload.name.rsplit(".", 1)[1])
        return Response(upload.data, mimetype=mime,  # from the folder or the bucket, whichever holds uploads
                        headers={"Content-Disposition": disposition(filename)})
    else:
        raise NotFound(f"no {kind} file {filename!r}")
    resp = Response(wrap_file(request.environ, open(path, "rb")), mimetype=mime, direct_passthrough=True)
    resp.headers["Content-Disposition"] = disposition(filename)
    return resp


@bp.post("/upload/image")
def upload_image() -> Response:
    """Keep an input image for the caller's graphs (LoadImage names it).
    ---
    post:
      summary: "ComfyUI POST /upload/image (multipart: image, overwrite, type, subfolder)"
      requestBody:
        required: true
        content:
          multipart/form-data: {schema: ComfyUploadForm}
      responses:
        200:
          description: "{name, subfolder, type}"
          content: {application/json: {schema: ComfyUploaded}}
        400: {description: "no image, or not an image"}
        413: {description: "larger than max_upload_mb, or too many pixels to decode safely"}
    """
    file = request.files.get("image")
    if file is None or not file.filename:
        raise BadRequest("send the image as the multipart file field 'image'")
    if request.form.get("type", "input") not in ("input", "temp", "output"):
        raise BadRequest("type must be input, temp or output")
    subfolder = request.form.get("subfolder", "")
    overwrite_text = request.form.get("overwrite", "").lower()
    if overwrite_text not in ("", "true", "false", "1", "0"):
        raise BadRequest(f"overwrite must be true or false (got {overwrite_text[:40]!r})")
    overwrite = overwrite_text in ("true", "1")
    name = comfy_front().files.put(g.front_user, file.filename, file.read(), max_upload_bytes(), subfolder, overwrite)
    return jsonify({"name": name, "subfolder": subfolder, "type": request.form.get("type") or "input"})


def raw_query() -> dict[str, str]:
    """The query, also when a client sent it unencoded (SillyTavern pastes names into it as they are)."""
    out: dict[str, str] = {}
    for part in request.environ.get("QUERY_STRING", "").split("&"):
        key, _, value = part.partition("=")
        if key:
            out.setdefault(unquote(key), unquote(value))
    return out
