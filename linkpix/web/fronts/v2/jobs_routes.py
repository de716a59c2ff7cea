"""The v2 jobs routes: POST/GET /api/v2/jobs, GET /api/v2/jobs/{id}, .../cancel, .../events,
.../workflow, and GET /api/v2/health. Translation only; the logic is in `front.py`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from linkpix.errors import LinkPixError
from linkpix.pipeline.secrets import unscoped
from linkpix.web.fronts.common import empty_response
from linkpix.web.fronts.v2 import events, rules
from linkpix.web.fronts.v2.access import authenticate
from linkpix.web.fronts.v2.errors import V2Error, error_response
from linkpix.web.fronts.v2.front import V2Front
from linkpix.web.ratelimits import admit_generation
from linkpix.web.services import services

bp = Blueprint("comfy_v2", __name__, url_prefix="/api/v2")
EXTENSION = "linkpix.v2"


def front() -> V2Front:
    return current_app.extensions[EXTENSION]


@bp.before_request
def _authenticate() -> None:
    if request.endpoint != "comfy_v2.health":
        authenticate()


@bp.errorhandler(LinkPixError)
def _error(exc: LinkPixError) -> Response:
    info = request.environ.get("linkpix.log")
    resp = error_response(exc)
    if info is not None:
        info["error"] = resp.get_json()["error"]["code"]
    return resp


def base() -> str:
    return request.host_url.rstrip("/")


@bp.get("/health")
def health() -> Response:
    """The Comfy API v2 health probe (no key needed).
    ---
    get:
      summary: "Comfy API v2: health"
      responses:
        200:
          description: "{status: healthy, backends}"
          content: {application/json: {schema: V2Health}}
    """
    return jsonify({"status": "healthy", "backends": len(services().pool.members())})


@bp.post("/jobs")
def submit() -> Response:
    """Submit an API-format workflow (Comfy API v2); answers 201 with the Job.
    ---
    post:
      summary: "Comfy API v2: submit a job {workflow, metadata?, extra_data?}; Idempotency-Key header"
      parameters:
        - {in: header, name: Idempotency-Key, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/json: {schema: V2JobBody}
      responses:
        201:
          description: the job
          content: {application/json: {schema: V2Job}}
        400:
          description: "invalid_request"
          content: {application/json: {schema: V2Error}}
        401:
          description: "unauthorized"
          content: {application/json: {schema: V2Error}}
        422: {description: "invalid_workflow, workflow_format_ui, missing_asset, idempotency_key_reuse,
          metadata_invalid", content: {application/json: {schema: V2Error}}}
        429:
          description: "queue_full, with Retry-After"
          content: {application/json: {schema: V2Error}}
        503: {description: "upstream_unreachable: no backend, or Redis, answers"}
    """
    body = request.get_json(silent=True, force=True)
    sub = rules.submission(body)
    key = rules.idempotency_key(request.headers.get("Idempotency-Key"))
    user = g.v2_user
    rendered = front().prepare(user, sub)
    admit_generation(rendered, user, keyed=user != "default")
    job = front().submit(user, rendered, sub, key, request.host_url)
    info = request.environ.get("linkpix.log")
    if info is not None:
        info.update(user=user, front="v2", job=job.id[:8])
    record = front().record(user, job.id)
    resp = jsonify(front().body(base(), record))
    resp.status_code = 201
    return resp


@bp.get("/jobs")
def list_jobs() -> Response:
    """The caller's jobs, newest first.
    ---
    get:
      summary: "Comfy API v2: list the caller's jobs (status, limit, cursor, metadata[<key>] filters)"
      parameters:
        - {in: query, name: status, schema: V2StatusFilter, description: "statuses, comma-separated"}
        - {in: query, name: limit, schema: {type: integer, minimum: 1, maximum: 100}}
        - {in: query, name: cursor, schema: V2Cursor, description: "next_cursor of the page before"}
      responses:
        401: {description: "unauthorized: keys are set and none (or an unknown one) was sent"}
        200:
          description: "{jobs: [...], next_cursor?}"
          content: {application/json: {schema: V2JobList}}
        400:
          description: "invalid_request, invalid_cursor, invalid_metadata_filter"
          content: {application/json: {schema: V2Error}}
    """
    return jsonify(front().list(base(), g.v2_user, rules.list_query(request.args), g.v2_admin))


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    """One of the caller's jobs (the authoritative state).
    ---
    get:
      summary: "Comfy API v2: a job"
      parameters:
        - {in: path, name: job_id, required: true, schema: {type: string}}
      responses:
        401: {description: "unauthorized: keys are set and none (or an unknown one) was sent"}
        200:
          description: the job
          content: {application/json: {schema: V2Job}}
        404:
          description: "not_found (also another key's job)"
          content: {application/json: {schema: V2Error}}
    """
    return jsonify(front().body(base(), front().record(g.v2_user, job_id, g.v2_admin)))


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str) -> Response:
    """Cancel a job (idempotent: an ended job is returned as it is).
    ---
    post:
      summary: "Comfy API v2: cancel a job"
      parameters:
        - {in: path, name: job_id, required: true, schema: {type: string}}
      responses:
        401: {description: "unauthorized: keys are set and none (or an unknown one) was sent"}
        200:
          description: the job
          content: {application/json: {schema: V2Job}}
        404:
          description: not_found
          content: {application/json: {schema: V2Error}}
    """
    record, job = front().cancel(g.v2_user, job_id, g.v2_admin)
    return jsonify(front().body(base(), record, job, fetch=False))


@bp.get("/jobs/<job_id>/workflow")
def workflow(job_id: str) -> Response:
    """The API-format graph the job ran (asset references resolved).
    ---
    get:
      summary: "Comfy API v2: a job's workflow {workflow, format: api}"
      parameters:
        - {in: path, name: job_id, required: true, schema: {type: string}}
      responses:
        401: {description: "unauthorized: keys are set and none (or an unknown one) was sent"}
        200:
          description: "{workflow, format}"
          content: {application/json: {schema: V2Workflow}}
        404:
          description: not_found
          content: {application/json: {schema: V2Error}}
    """
    record = front().record(g.v2_user, job_id, g.v2_admin)
    job = front().job_of(record)
    if job is None or not job.spec:
        raise V2Error(404, "not_found", f"the workflow of job {job_id} is no longer kept")
    return jsonify({"workflow": unscoped(job.spec[0].get("graph", {})), "format": "api"})


@bp.get("/jobs/<job_id>/logs")
def logs(job_id: str) -> Response:
    """No captured log: LinkPix keeps none, and the contract asks such a surface to answer 204.
    ---
    get:
      summary: "Comfy API v2: a job's log (LinkPix captures none: 204)"
      parameters:
        - {in: path, name: job_id, required: true, schema: {type: string}}
      responses:
        401: {description: "unauthorized: keys are set and none (or an unknown one) was sent"}
        204: {description: no log}
        404:
          description: not_found
          content: {application/json: {schema: V2Error}}
    """
    front().record(g.v2_user, job_id, g.v2_admin)
    return empty_response(204)


@bp.get("/jobs/<job_id>/events")
def job_events(job_id: str) -> Response:
    """Live events: status, progress, preview, output; ends at the terminal status.
    ---
    get:
      summary: "Comfy API v2: server-sent events of a job (status, progress, preview, output)"
      parameters:
        - {in: path, name: job_id, required: true, schema: {type: string}}
      responses:
        401: {description: "unauthorized: keys are set and none (or an unknown one) was sent"}
        200:
          description: the event stream
          content:
            text/event-stream: {schema: SseEvent}
        404:
          description: not_found
          content: {application/json: {schema: V2Error}}
        429:
          description: "too_many_streams, with Retry-After"
          content: {application/json: {schema: V2Error}}
    """
    v2 = front()
    record = v2.record(g.v2_user, job_id, g.v2_admin)
    manager = v2.manager
    if v2.job_of(record) is None:
        raise V2Error(404, "not_found", f"job {job_id} has expired")
    settings = services().config.settings
    if not manager.acquire_stream():
        raise V2Error(429, "too_many_streams", f"{settings.events_max_streams} event streams are already open; "
                      f"poll GET /api/v2/jobs/{job_id} instead", retry_after=5)
    host = base()
    try:
        frames = events.stream(manager, job_id, lambda job: _body(v2, host, record, job),
                               settings.events_heartbeat, settings.events_max_seconds)
        resp = Response(frames, mimetype="text/event-stream")
    except BaseException:
        manager.release_stream()
        raise
    resp.call_on_close(manager.release_stream)
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp


def _body(v2: V2Front, host: str, record: Any, job: Any) -> dict[str, Any]:
    return v2.body(host, record, job, fetch=False)
