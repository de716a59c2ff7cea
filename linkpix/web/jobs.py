"""Async jobs routes: POST /generate, GET/DELETE /jobs/<id>, GET /jobs/<id>/events, GET /jobs, POST /uploads.

Translation only: a JSON body becomes rendered workflows (through the same parser and resolver as
/prompt, so a bad field gets the same 400 message at once, before anything is accepted), and the job
manager's answers become JSON or an event stream.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..errors import BadRequest, NotFound, QueueFull, UnsupportedMediaType
from ..jobs.manager import JobManager
from ..jobs.store import STATES
from ..jobs.webhooks import check_url
from ..request import SEED_MAX, GenerationRequest, parse_images, parse_json, validate_user
from ..resolver import RenderedJob
from .auth import caller, keys_required
from .errors import no_store
from .services import services

bp = Blueprint("jobs", __name__)

JOB_FIELDS = ("image_count", "webhook_url", "webhook_secret", "webhook_include_base64", "images", "image")
_JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_UPLOAD_ID_RE = re.compile(r"^linkpix_[0-9a-f]{16}\.(png|jpg|gif|webp)$")
MAX_SECRET_CHARS = 256


def _manager() -> JobManager:
    manager = services().jobs
    if manager is None:
        raise NotFound("the jobs API is not enabled")
    return manager



@bp.post("/generate")
def generate() -> Response:
    """Accept an async job and answer at once with where to follow it.
    ---
    post:
      summary: Submit an async generation job (answers 202 at once)
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [prompt]
              properties:
                prompt: {type: string}
                negative: {type: string}
                width: {type: integer}
                height: {type: integer}
                seed: {description: "an integer, or random / -1"}
                style: {description: "a style name, comma-separated names, or a list"}
                workflow: {type: string}
                params: {type: object, description: "any workflow parameter"}
                format: {type: string, enum: [png, jpeg, webp]}
                image_count: {type: integer, description: "1 to max_image_count; each image its own seed"}
                user: {type: string, description: "ignored when an API key is sent (the key's user wins)"}
                webhook_url: {type: string, description: "POSTed to when the job succeeds or fails"}
                webhook_secret: {type: string, description: "signs the webhook body (X-LinkPix-Signature)"}
                webhook_include_base64: {type: boolean}
                images: {type: array, items: {type: string}, description: "input images: base64 or upload ids"}
      responses:
        202: {description: "accepted: job_id, status_url, events_url"}
        400: {description: "a field (or an upload id) is invalid; the message says which and what is allowed"}
        401: {description: "an API key is needed (network_access on) or the key is unknown"}
        415: {description: "the body is not sent as application/json"}
        429: {description: "too many unfinished jobs (for this user or in total); see Retry-After"}
    """
    user = caller(changes_state=True)
    if not request.is_json:
        raise UnsupportedMediaType(f"send the job as JSON with 'Content-Type: application/json' "
                                   f"(got {request.mimetype or 'no Content-Type'})")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object, e.g. {\"prompt\": \"a red fox\"}")
    settings = services().config.settings
    count = _image_count(body.get("image_count", 1), settings.max_image_count)
    webhook, secret = _webhook(body, settings.webhook_allow)
    req = parse_json({k: v for k, v in body.items() if k not in JOB_FIELDS}, user)
    req = dataclasses.replace(req, input_images=_input_images(body))
    rendered = _render_all(req, count)
    for spec in rendered:  # a model file no backend has: 400 now, not a job that fails later
        services().pool.check_models(spec.graph)
    job = _manager().submit(req.user, rendered, webhook, secret, request.host_url)
    resp = jsonify({"job_id": job.id, "status": job.state, "status_url": f"/jobs/{job.id}",
                    "events_url": f"/jobs/{job.id}/events", "image_count": job.image_count})
    resp.status_code = 202
    resp.headers["Location"] = f"/jobs/{job.id}"
    return no_store(resp)


def _image_count(value: Any, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise BadRequest(f"image_count must be a whole number from 1 to {limit} (got {value!r})",
                         {"parameter": "image_count"})
    return value


def _webhook(body: dict[str, Any], allow: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    url, secret = body.get("webhook_url"), body.get("webhook_secret")
    include = body.get("webhook_include_base64", False)
    if not isinstance(include, bool):
        raise BadRequest("webhook_include_base64 must be true or false", {"parameter": "webhook_include_base64"})
    if secret is not None and (not isinstance(secret, str) or not 0 < len(secret) <= MAX_SECRET_CHARS):
        raise BadRequest(f"webhook_secret must be text of 1 to {MAX_SECRET_CHARS} characters",
                         {"parameter": "webhook_secret"})
    if url in (None, ""):
        if secret is not None:
            raise BadRequest("webhook_secret needs a webhook_url", {"parameter": "webhook_secret"})
        return None, None
    return {"url": check_url(url, allow), "include_base64": include}, secret


def _input_images(body: dict[str, Any]) -> tuple[Any, ...]:
    """Base64 strings and upload ids, checked by the same parser as /prompt's JSON (same messages)."""
    images = body.get("images")
    if images is None and body.get("image") is not None:
        images = [body["image"]]
    if isinstance(images, str):
        images = [images]
    if isinstance(images, list):
        uploads = _manager().uploads
        images = [base64.b64encode(uploads.get(item).data).decode()
                  if isinstance(item, str) and _UPLOAD_ID_RE.match(item) else item for item in images]
    return parse_images(images)


def _render_all(req: GenerationRequest, count: int) -> list[RenderedJob]:
    """Resolve every image's request now, so nothing is accepted that would fail validation later.
    Image i > 0 gets seed + i; with a random seed each image draws its own."""
    resolver = services().resolver
    first = resolver.resolve(req)
    rendered = [first]
    for i in range(1, count):
        if first.seed_is_random:
            rendered.append(resolver.resolve(req))
        else:
            rendered.append(resolver.resolve(dataclasses.replace(
                req, seed=(first.seed + i) % (SEED_MAX + 1), random_seed=False)))
    return rendered


def _job_id(job_id: str) -> str:
    if not _JOB_ID_RE.match(job_id):
        raise NotFound(f"no job {job_id!r}")
    return job_id


@bp.get("/jobs")
def list_jobs() -> Response:
    """List jobs, newest first.
    ---
    get:
      summary: List jobs by user and state (with network_access on, only the API key's user)
      parameters:
        - {in: query, name: user, schema: {type: string}}
        - {in: query, name: state, schema: {type: string, enum: [queued, running, succeeded, failed, cancelled]}}
        - {in: query, name: limit, schema: {type: integer, default: 100, maximum: 1000}}
      responses:
        200: {description: "jobs: [...]"}
        400: {description: "an invalid user, state or limit"}
        401: {description: "network_access is on and no valid API key was sent"}
    """
    args = request.args
    user = args.get("user") or None
    if keys_required():
        user = caller(changes_state=True)  # on the network, a caller sees only its own jobs
    elif user is not None:
        user = validate_user(user)
    state = args.get("state") or None
    if state is not None and state not in STATES:
        raise BadRequest(f"unknown state {state!r}; use one of: {', '.join(STATES)}", {"parameter": "state"})
    try:
        limit = int(args.get("limit", 100))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        raise BadRequest("limit must be a whole number from 1 to 1000", {"parameter": "limit"})
    manager = _manager()
    jobs = [manager.describe(job, with_queue=False) for job in manager.store.list(user, state, limit)]
    return no_store(jsonify({"jobs": jobs}))


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    """A job's state, queue position, progress, images and error.
    ---
    get:
      summary: Poll one job
      parameters:
        - {in: path, name: job_id, required: true, schema: {type: string}}
      responses:
        200: {description: "status, queue_position, progress {step, total, node}, images, error, webhook"}
        404: {description: "no such job"}
    """
    manager = _manager()
    return no_store(jsonify(manager.describe(manager.store.get(_job_id(job_id)))))


@bp.delete("/jobs/<job_id>")
def cancel_job(job_id: str) -> Response:
    """Cancel a queued or running job.
    ---
    delete:
      summary: Cancel a job (dequeues or interrupts its ComfyUI prompt unless another request shares it)
      parameters:
        - {in: path, name: job_id, required: true, schema: {type: string}}
      responses:
        200: {description: "the job, now cancelled"}
        401: {description: "network_access is on and no valid API key was sent"}
        404: {description: "no such job (or not this key's)"}
        409: {description: "the job has already ended"}
    """
    user = caller(changes_state=True)
    manager = _manager()
    job = manager.store.get(_job_id(job_id))
    if keys_required() and job.user != user:
        raise NotFound(f"no job {job_id!r}")
    return no_store(jsonify(manager.describe(manager.cancel(job.id), with_queue=False)))


@bp.get("/jobs/<job_id>/events")
def job_events(job_id: str) -> Response:
    """Follow a job live as Server-Sent Events.
    ---
    get:
      summary: "Event stream: queued, started, progress, preview, image, then succeeded / failed / cancelled"
      description: "The current state comes first; the stream ends when the job ends, with keep-alive
        comments meanwhile and a time limit (events_max_seconds) after which the client reconnects."
      parameters:
        - {in: path, name: job_id, required: true, schema: {type: string}}
      responses:
        200: {description: "text/event-stream"}
        404: {description: "no such job"}
        429: {description: "too many event streams are open; see Retry-After"}
    """
    manager = _manager()
    manager.store.get(_job_id(job_id))
    settings = services().config.settings
    if not manager.acquire_stream():
        raise QueueFull(f"{settings.events_max_streams} event streams are already open; poll "
                        f"/jobs/{job_id} or retry shortly", retry_after=5)
    try:
        stream = manager.stream(job_id, settings.events_heartbeat, settings.events_max_seconds)
        resp = Response(stream, mimetype="text/event-stream")
    except BaseException:
        manager.release_stream()
        raise
    resp.call_on_close(manager.release_stream)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp


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
