"""The OpenAI Images API at `/v1/images/...`, for the `openai` library (`base_url=".../v1"`), Open WebUI
and LibreChat.

`model` is a LinkPix workflow (`sd15`) or one of OpenAI's model names, which stand for the default
workflow; `size` "WxH" sets width and height, `style` applies a LinkPix style of that name (OpenAI's
"vivid"/"natural" are ignored unless such a style exists), `n` images get seed + i. Answers
`{created, data: [{url | b64_json, revised_prompt}]}`, and errors in OpenAI's shape
`{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from linkpix.errors import BadRequest, LinkPixError, NotFound, QueueFull
from linkpix.model import SEED_MAX, USER_NAME_RE, make_input_image
from linkpix.pipeline.request import parse_json
from linkpix.web.auth import claims_keyed_user
from linkpix.web.fronts.common import absolute_url, bearer_key, caller, generate, image_base64, require_enabled
from linkpix.web.fronts.openai_stream import partial_count, stream_response
from linkpix.web.ratelimits import admit, admit_generations
from linkpix.web.services import services
from linkpix.web.uploads import max_upload_bytes

bp = Blueprint("openai", __name__)

# OpenAI's image models: each stands for the default workflow (or a1111_workflow when set).
ALIASES = ("dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5")
LISTED_ALIASES = ALIASES[:3]  # what GET /v1/models shows: the names the README documents (all are accepted)
_SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")
_PARAM_NAMES = {"width": "size", "height": "size", "style": "style", "workflow": "model", "images": "image",
                "prompt": "prompt", "seed": "seed", "format": "output_format", "user": "user"}


class ModelNotFound(NotFound):
    code = "model_not_found"


@bp.before_request
def _authenticate() -> None:
    require_enabled("openai")
    g.front_user = caller(bearer_key(), "as 'Authorization: Bearer <key>'")


@bp.errorhandler(LinkPixError)
def _error(exc: LinkPixError) -> Response:
    """OpenAI's error shape and types."""
    resp = jsonify({"error": _error_object(exc)})
    resp.status_code = exc.status
    resp.headers["Cache-Control"] = "no-store"
    if isinstance(exc, QueueFull):
        resp.headers["Retry-After"] = str(exc.retry_after)
    info = request.environ.get("linkpix.log")
    if info is not None:
        info["error"] = exc.code
    return resp


def _error_object(exc: LinkPixError) -> dict[str, Any]:
    """{message, type, param, code} as OpenAI reports an error (also inside a stream's `error` event)."""
    details = exc.details if isinstance(exc.details, dict) else {}
    param = details.get("parameter")
    if exc.status >= 500:
        kind, code = "server_error", None
    elif isinstance(exc, QueueFull):
        kind, code = "rate_limit_error", "rate_limit_exceeded"
    else:
        kind = "invalid_request_error"
        code = {401: "invalid_api_key", 404: exc.code if isinstance(exc, ModelNotFound) else None}.get(exc.status)
        code = code or exc.rule  # a rule no schema states (errors.RULES), by name
    return {"message": exc.message, "type": kind, "param": _PARAM_NAMES.get(param, param), "code": code}


@bp.get("/v1/models")
def models() -> Response:
    """Workflows and aliases usable as `model` for generations. Workflows that edit an input image are left
    out (a generation has none: they would answer 400); /v1/images/edits still takes them by name.
    ---
    get:
      summary: "OpenAI model list: the LinkPix workflows that generate from text, and the OpenAI model names
        that stand for the default one"
      responses:
        200:
          description: "{object: list, data: [{id, object, created, owned_by}]}"
          content: {application/json: {schema: OpenAIModels}}
    """
    needs = services().resolver.workflow_needs()
    ids = [name.removesuffix(".json") for name in services().resolver.workflow_names()
           if not needs.get(name, {}).get("image")] + list(LISTED_ALIASES)
    return jsonify({"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": "linkpix"}
                                               for i in dict.fromkeys(ids)]})


@bp.post("/v1/images/generations")
def generations() -> Response:
    """OpenAI image generation.
    ---
    post:
      summary: "OpenAI images.generate: prompt, model (workflow or alias), n, size WxH, response_format, style"
      requestBody:
        required: true
        content:
          application/json: {schema: OpenAIGenerationBody}
      responses:
        200:
          description: "{created, data: [{url | b64_json, revised_prompt}]}; with stream: true, Server-Sent
            Events (image_generation.partial_image, then image_generation.completed or error)"
          content:
            application/json: {schema: OpenAIImages}
            text/event-stream: {schema: SseEvent}
        400: {description: "a bad field, in OpenAI's error shape"}
        401: {description: "no valid key (network_access on)"}
        404: {description: "unknown model"}
        422: {description: "ComfyUI refused the rendered workflow"}
        429: {description: "too many generations pending, or a rate limit reached; see Retry-After"}
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object with at least 'prompt' (Content-Type: application/json)")
    return _answer(body)


@bp.post("/v1/images/edits")
def edits() -> Response:
    """OpenAI image edit (multipart: image, mask, prompt), through LinkPix's edit path.
    ---
    post:
      summary: "OpenAI images.edit: image (or image[]), prompt, mask, model, n, response_format"
      requestBody:
        required: true
        content:
          multipart/form-data: {schema: OpenAIEditForm}
      responses:
        200:
          description: "{created, data: [...]}: the edit at the photo's full resolution"
          content: {application/json: {schema: OpenAIImages}}
        400: {description: "no image or a bad field, in OpenAI's error shape"}
        401: {description: "no valid key"}
        404: {description: "unknown model"}
        413: {description: "the photo is larger than max_upload_mb or has too many pixels"}
        422: {description: "ComfyUI refused the rendered workflow"}
        429: {description: "too many generations pending, or a rate limit reached; see Retry-After"}
    """
    files = request.files.getlist("image") + request.files.getlist("image[]")
    if not files:
        raise BadRequest("send the image to edit as the multipart file field 'image'", {"parameter": "image"})
    limit = max_upload_bytes()
    source = make_input_image(files[0].read(), 0, limit, "image")
    mask_file = request.files.get("mask")
    mask = make_input_image(mask_file.read(), 0, limit, "mask") if mask_file else None
    body: dict[str, Any] = dict(request.form.items())
    count, fmt = _count_and_format(body)
    _output_format(body)  # before any work
    settings = services().config.settings
    fields: dict[str, Any] = {"prompt": body.get("prompt"), "seed": body.get("seed"), "char": body.get("char"),
                              "workflow": _workflow(body.get("model"), "inpaint" if mask else "edit")
                              or settings.edit_workflow,
                              "params": {"negative_prompt": body["negative_prompt"]} if body.get("negative_prompt")
                              else {}}
    req = dataclasses.replace(parse_json(fields, _user(body), limit), mask=mask, char_owner=g.front_user)
    admit("jobs", req.user, keyed=g.front_user != "default", cost=count)  # an edit counts as a job
    editor = services().editor
    if editor is None:
        raise NotFound("the edit path is not enabled")
    data, first_seed = [], 0
    for i in range(count):  # image i gets seed + i (a random seed: each draws its own)
        this = req if i == 0 or req.random_seed else dataclasses.replace(
            req, seed=(first_seed + i) % (SEED_MAX + 1), random_seed=False)
        done = editor.run(this, source, "auto", _output_format(body))
        first_seed = done.job.seed if i == 0 else first_seed
        assert done.image is not None
        data.append(_item(done.image, done.job.prompt, fmt))
    info = request.environ.get("linkpix.log")
    if info is not None:
        info.update(user=req.user, front="openai", cache="hit" if done.cache_hit else "miss")
    resp = jsonify({"created": int(time.time()), "data": data})
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-LinkPix-Workflow"] = done.job.workflow
    return resp


def _output_format(body: dict[str, Any]) -> str:
    """`output_format` (png, jpeg, webp): anything else is a 400, not a KeyError deep in the edit."""
    fmt = body.get("output_format", "png")
    if fmt not in ("png", "jpeg", "webp"):
        raise BadRequest(f"output_format must be png, jpeg or webp (got {str(fmt)[:40]!r})",
                         {"parameter": "output_format"})
    return str(fmt)


_TEXT_FIELDS = ("model", "size", "style", "quality", "background", "user", "negative_prompt", "output_format",
                "response_format", "moderation")


def _count_and_format(body: dict[str, Any]) -> tuple[int, str]:
    """`n` (1..max_image_count) and `response_format` (url, or b64_json for gpt-image models)."""
    limit = services().config.settings.max_image_count
    count = body.get("n", 1)
    if isinstance(count, str):
        count = _int(count, "n")
    if count is None:
        count = 1
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= limit:
        raise BadRequest(f"n must be a whole number from 1 to {limit} (got {count!r})", {"parameter": "n"})
    for name in _TEXT_FIELDS:  # what OpenAI's API takes as strings: a number or a list there is a 400 too
        if body.get(name) is not None and not isinstance(body[name], str):
            raise BadRequest(f"{name} must be a string (got {type(body[name]).__name__})", {"parameter": name})
    fmt = body.get("response_format")
    if fmt is None:
        fmt = "b64_json" if str(body.get("model", "")).startswith("gpt-image") else "url"
    if fmt not in ("url", "b64_json"):
        raise BadRequest(f"response_format must be 'url' or 'b64_json' (got {fmt!r})",
                         {"parameter": "response_format"})
    return count, fmt


def _user(body: dict[str, Any]) -> str:
    """The key's user; without a key, OpenAI's `user` field when it is a valid LinkPix user name."""
    user = g.front_user
    if user == "default" and isinstance(body.get("user"), str) and USER_NAME_RE.match(body["user"]) \
            and not claims_keyed_user(body["user"]):  # never a user with a key (web/auth.py)
        return body["user"]
    return user


def _item(image: Any, revised_prompt: str, fmt: str) -> dict[str, Any]:
    item: dict[str, Any] = {"revised_prompt": revised_prompt}
    if fmt == "url":
        item["url"] = absolute_url(image)
    else:
        item["b64_json"] = image_base64(image)
    return item


def _answer(body: dict[str, Any]) -> Response:
    count, fmt = _count_and_format(body)
    fields: dict[str, Any] = {"prompt": body.get("prompt"), "params": _size(body.get("size")),
                              "seed": body.get("seed"), "char": body.get("char")}
    workflow = _workflow(body.get("model"), None)
    if workflow:
        fields["workflow"] = workflow
    if body.get("negative_prompt"):
        fields["params"]["negative_prompt"] = body["negative_prompt"]
    style = body.get("style")
    if isinstance(style, str) and style in services().resolver.styles():
        fields["style"] = style
    fields["format"] = _output_format(body)
    req = dataclasses.replace(parse_json(fields, _user(body)), char_owner=g.front_user)  # the key's characters
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise BadRequest("stream must be true or false", {"parameter": "stream"})
    stream = body.get("stream") is True
    partials = partial_count(body)  # checked with or without a stream, as OpenAI checks it
    partials = partials if stream else 0
    if stream and count != 1:
        raise BadRequest("stream supports n=1 only", {"parameter": "n"})
    jobs = services().resolver.resolve_many(req, count)
    admit_generations(jobs, req.user, keyed=g.front_user != "default")  # rate limits (web/ratelimits.py)
    if stream:  # Server-Sent Events with partial images (fronts/openai_stream.py)
        return stream_response(jobs[0], req.user, partials, str(body.get("quality") or "auto"),
                               str(body.get("background") or "auto"), _error_object)
    data = [_item(generate(job, req.user, "openai").image, job.prompt, fmt) for job in jobs]
    resp = jsonify({"created": int(time.time()), "data": data})
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-LinkPix-Workflow"] = jobs[0].workflow
    return resp


def _workflow(model: Any, kind: str | None) -> str | None:
    """The workflow `model` names; OpenAI's own names stand for the A1111 front's workflow of the kind."""
    settings = services().config.settings
    if model in (None, "") or model in ALIASES:
        return {"inpaint": settings.a1111_inpaint_workflow, "edit": settings.edit_workflow}.get(
            kind or "", settings.a1111_workflow) or None
    if not isinstance(model, str):
        raise BadRequest("model must be a name", {"parameter": "workflow"})
    known = {n.removesuffix(".json") for n in services().resolver.workflow_names()}
    if model.removesuffix(".json") not in known:
        raise ModelNotFound(f"The model '{model}' does not exist: use a LinkPix workflow "
                            f"({', '.join(sorted(known))}) or one of {', '.join(ALIASES)}",
                            {"parameter": "workflow"})
    return model


def _size(value: Any) -> dict[str, int]:
    if value in (None, "", "auto"):
        return {}
    match = _SIZE_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise BadRequest(f"size must be WIDTHxHEIGHT, e.g. '1024x1024' (got {value!r})", {"parameter": "width"})
    return {"width": int(match.group(1)), "height": int(match.group(2))}


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number (got {value!r})", {"parameter": name}) from None

