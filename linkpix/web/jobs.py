"""Async jobs routes: POST /generate, GET/DELETE /jobs/<id>, GET /jobs/<id>/events, GET /jobs.

Translation only: a JSON body becomes rendered workflows (through the same parser and resolver as
/prompt, so a bad field gets the same 400 message at once, before anything is accepted), and the job
manager's answers become JSON or an event stream.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from linkpix.errors import BadRequest, NotFound, QueueFull, UnsupportedMediaType
from linkpix.jobs.manager import JobManager
from linkpix.jobs.store import STATES, TERMINAL, Job
from linkpix.jobs.webhooks import Targets, check_secret, check_url
from linkpix.model import RenderedJob, validate_user
from linkpix.pipeline.request import check_text, parse_json
from linkpix.render.placeholders import whole_number
from linkpix.web.auth import acting_user, require, visible_job_owner
from linkpix.web.errors import no_store
from linkpix.web.services import services
from linkpix.web.uploads import input_images, one_image

bp = Blueprint("jobs", __name__)

JOB_FIELDS = ("image_count", "webhook_url", "webhook_secret", "webhook_include_base64", "images", "image", "mask")
_JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_UPLOAD_ID_RE = re.compile(r"^linkpix_[0-9a-f]{16}\.(png|jpg|gif|webp)$")
MAX_SECRET_CHARS = 256


def job_manager() -> JobManager:
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
          application/json: {schema: GenerateBody}
      responses:
        202:
          description: "accepted: job_id, status_url, events_url, ignored (fields nothing used)"
          content: {application/json: {schema: JobAccepted}}
        413: {description: "the body is larger than max_upload_mb allows; it was not read"}
        400: {description: "a field (or an upload id) is invalid; the message says which and what is allowed"}
        401: {description: "an API key is needed (network_access on) or the key is unknown"}
        415: {description: "the body is not sent as application/json"}
        429: {description: "too many unfinished jobs (for this user or in total), or a rate limit (jobs) was
          reached; see Retry-After"}
    """
    user = require("submitting a job").user
    if not request.is_json:
        raise UnsupportedMediaType(f"send the job as JSON with 'Content-Type: application/json' "
                                   f"(got {request.mimetype or 'no Content-Type'})")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object, e.g. {\"prompt\": \"a red fox\"}")
    named = body.get("user") if isinstance(body.get("user"), str) else request.headers.get("X-LinkPix-User")
    if named:
        user = acting_user(named)  # a key naming another user: 403 (web/auth.py)
    settings = services().config.settings
    req = parse_json({k: v for k, v in body.items() if k not in JOB_FIELDS}, user)
    count = _image_count(body.get("image_count", 1), settings.max_image_count)
    webhook, secret = parse_webhook(body, services().webhook_targets())
    req = dataclasses.replace(req, input_images=_input_images(body), mask=one_image(body.get("mask"), "mask"))
    rendered = services().resolver.resolve_many(req, count)
    _admit_runs(rendered, req.user)
    return accept(req.user, rendered, webhook, secret, ignored=list(rendered[0].ignored))


def accept(user: str, rendered: list[RenderedJob], webhook: dict[str, Any] | None, secret: str | None,
           **extra: Any) -> Response:
    """Queue a job and answer 202 with where to follow it: the one "job accepted" answer (/jobs, /edit)."""
    job = job_manager().submit(user, rendered, webhook, secret, request.host_url)
    resp = jsonify({"job_id": job.id, "status": job.state, "status_url": f"/jobs/{job.id}",
                    "events_url": f"/jobs/{job.id}/events", "image_count": job.image_count, **extra})
    resp.status_code = 202
    resp.headers["Location"] = f"/jobs/{job.id}"
    return no_store(resp)


def _admit_runs(rendered: list[Any], user: str) -> None:
    """A job that would start a run answers 429 now when the user's GPU-seconds quota is used up."""
    svc = services()
    admit = svc.generator.admit_run
    if admit is not None and any(r.seed_is_random or svc.cache.get(user, svc.generator.key_for(r)) is None
                                 for r in rendered):
        admit(user)


def _image_count(value: Any, limit: int) -> int:
    count = whole_number(value)
    if count is None or not 1 <= count <= limit:
        raise BadRequest(f"image_count must be a whole number from 1 to {limit} (got {value!r})",
                         {"parameter": "image_count"})
    return count


def parse_webhook(body: dict[str, Any], targets: Targets) -> tuple[dict[str, Any] | None, str | None]:
    url, secret = body.get("webhook_url"), body.get("webhook_secret")
    include = body.get("webhook_include_base64", False)
    if not isinstance(include, bool):
        raise BadRequest("webhook_include_base64 must be true or false", {"parameter": "webhook_include_base64"})
    if secret is not None and (not isinstance(secret, str) or not 0 < len(secret) <= MAX_SECRET_CHARS):
        raise BadRequest(f"webhook_secret must be text of 1 to {MAX_SECRET_CHARS} characters",
                         {"parameter": "webhook_secret"})
    if secret is not None:
        check_text(secret, "webhook_secret")
        check_secret(secret)
    if isinstance(url, str):
        check_text(url, "webhook_url")
    if url in (None, ""):
        if secret is not None:
            raise BadRequest("webhook_secret needs a webhook_url", {"parameter": "webhook_secret"})
        return None, None
    return {"url": check_url(url, targets), "include_base64": include}, secret


def _input_images(body: dict[str, Any]) -> tuple[Any, ...]:
    """Base64 strings and upload ids, checked like every input image (same messages everywhere)."""
    images = body.get("images")
    if images is None and body.get("image") is not None:
        images = [body["image"]]
    return input_images(images)


def _job_id(job_id: str) -> str:
    if not _JOB_ID_RE.match(job_id):
        raise NotFound(f"no job {job_id!r}")
    return job_id


def _visible_job(job_id: str, what: str) -> Job:
    """The job, if this caller may see it: with network_access on, only with the job's key (or an
    admin key); a key always sees only its own user's jobs."""
    who = require(what)
    job = job_manager().store.get(_job_id(job_id))
    visible_job_owner(job.user, job_id, who)
    return job


@bp.get("/jobs")
def list_jobs() -> Response:
    """List jobs, newest first.
    ---
    get:
      summary: List jobs by user and state (with network_access on, only the API key's user)
      parameters:
        - {in: query, name: user, schema: {type: string, pattern: "^[A-Za-z0-9_-]{0,64}$"}, description: "empty: all"}
        - in: query
          name: state
          schema: {type: string, enum: ["", queued, running, succeeded, failed, cancelled]}
          description: "empty: any"
        - {in: query, name: limit, schema: {type: integer, default: 100, minimum: 1, maximum: 1000}}
      responses:
        200:
          description: "jobs: [...] (each as GET /jobs/<id> shows it, without the queue position)"
          content: {application/json: {schema: JobList}}
        400: {description: "an invalid user, state or limit"}
        401: {description: "network_access is on and no valid API key was sent"}
    """
    args = request.args
    who = require("listing jobs")
    user = args.get("user") or None
    if who.keyed and not who.admin:
        user = who.user  # a key lists its own user's jobs, whatever ?user says
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
    manager = job_manager()
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
        200:
          description: "status, queue_position, progress {step, total, node}, images, error, webhook"
          content: {application/json: {schema: Job}}
        401: {description: "network_access is on and no valid API key was sent"}
        404: {description: "no such job (or not this key's)"}
    """
    manager = job_manager()
    body = manager.describe(manager.settled(_visible_job(job_id, "reading a job")))
    return no_store(jsonify(body))


@bp.delete("/jobs/<job_id>")
def cancel_job(job_id: str) -> Response:
    """Cancel a queued or running job.
    ---
    delete:
      summary: Cancel a job (dequeues or interrupts its ComfyUI prompt unless another request shares it)
      parameters:
        - {in: path, name: job_id, required: true, schema: {type: string}}
      responses:
        200:
          description: "the job, now cancelled"
          content: {application/json: {schema: Job}}
        401: {description: "network_access is on and no valid API key was sent"}
        404: {description: "no such job (or not this key's)"}
        409: {description: "the job has already ended"}
    """
    job = _visible_job(job_id, "cancelling a job")
    manager = job_manager()
    return no_store(jsonify(manager.describe(manager.cancel(job.id), with_queue=False)))


@bp.get("/jobs/<job_id>/events")
def job_events(job_id: str) -> Response:
    """Follow a job live as Server-Sent Events.
    ---
    get:
      summary: "Event stream: queued, started, progress, preview, image, then succeeded / failed / cancelled"
      description: "The current state comes first; the stream ends when the job ends, with keep-alive
        comments meanwhile and a time limit (events_max_seconds) after which the client reconnects.
        Milestones (queued, started, image, the end) carry an id; a client that reconnects with
        Last-Event-ID (or ?last_event_id=) gets the milestones after it, then what happens next."
      parameters:
        - {in: path, name: job_id, required: true, schema: {type: string}}
        - {in: header, name: Last-Event-ID, schema: {type: integer}, description: "resume after this event"}
        - {in: query, name: last_event_id, schema: {type: integer}, description: "the same, for clients that
            cannot set headers"}
      responses:
        200:
          description: "the events (event: name, data: the job as GET /jobs/<id> shows it, or the progress)"
          content:
            text/event-stream: {schema: SseEvent}
        204: {description: "resumed after the job's last event: nothing more will come (EventSource stops)"}
        400: {description: "last_event_id is not a whole number"}
        401: {description: "network_access is on and no valid API key was sent"}
        404: {description: "no such job (or not this key's)"}
        429: {description: "too many event streams are open; see Retry-After"}
    """
    manager = job_manager()
    job = _visible_job(job_id, "following a job")
    last_id = _last_event_id()
    if last_id is not None and job.state in TERMINAL and manager.events.latest(job.id) <= last_id:
        ended = no_store(Response(status=204))  # the client has the end; a 204 stops an EventSource
        del ended.headers["Content-Type"]  # no body, so no type (Flask's default says text/html)
        return ended
    settings = services().config.settings
    if not manager.acquire_stream(job.user):
        raise QueueFull(f"{settings.events_max_streams} event streams are already open, or this user's share "
                        f"(events_max_streams_per_user); poll /jobs/{job_id} or retry shortly", retry_after=5)
    try:
        stream = manager.stream(job_id, settings.events_heartbeat, settings.events_max_seconds, last_id)
        resp = Response(stream, mimetype="text/event-stream")
    except BaseException:
        manager.release_stream(job.user)
        raise
    resp.call_on_close(lambda: manager.release_stream(job.user))
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp


@bp.get("/jobs/<job_id>/preview")
def job_preview(job_id: str) -> Response:
    """The newest preview frame of a running job (the URL its `preview` events carry).
    ---
    get:
      summary: "The job's newest preview frame, as ComfyUI sent it (JPEG, up to 512 px)"
      parameters:
        - {in: path, name: job_id, required: true, schema: {type: string}}
        - {in: query, name: frame, schema: {type: integer}, description: "the frame number the event named
            (ignored: the newest is served; it only keeps URLs of different frames apart)"}
      responses:
        200:
          description: the frame
          content:
            image/jpeg: {schema: {type: string, format: binary}}
            image/png: {schema: {type: string, format: binary}}
        401: {description: "network_access is on and no valid API key was sent"}
        404: {description: "no such job (or not this key's), or no preview of it (yet, or any more)"}
    """
    job = _visible_job(job_id, "reading a job")
    newest = job_manager().progress.frames.get(job.id)
    if newest is None:
        raise NotFound(f"job {job_id} has no preview frame (yet, or any more): they come while ComfyUI samples")
    number, data = newest
    mime = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    resp = Response(data, mimetype=mime)
    resp.headers["X-LinkPix-Frame"] = str(number)
    return no_store(resp)


def _last_event_id() -> int | None:
    """Where a reconnecting client left off: the Last-Event-ID header its EventSource sends (ignored
    when it is not one of our numbers), or ?last_event_id= (400 when it is not a whole number)."""
    query = request.args.get("last_event_id")
    if query is not None:
        if not query.isdigit():
            raise BadRequest("last_event_id must be a whole number (the id of the last event received)",
                             {"parameter": "last_event_id"})
        return int(query)
    header = request.headers.get("Last-Event-ID", "").strip()
    return int(header) if header.isdigit() and len(header) < 16 else None
