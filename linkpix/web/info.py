"""Read-only JSON routes: health, styles, workflows and the models ComfyUI offers."""

from __future__ import annotations

import itertools
from typing import Any

from flask import Blueprint, Response, jsonify, request

from linkpix.comfy.objectinfo import CHOICE_SOURCES, named_choices, public_values
from linkpix.errors import BackendUnavailable, BadRequest, NotFound
from linkpix.web.auth import identify, require
from linkpix.web.errors import no_store
from linkpix.web.services import services

bp = Blueprint("info", __name__)



@bp.get("/health")
def health() -> Response:
    """ComfyUI reachability per backend, their queues, and the cache figures.
    ---
    get:
      summary: Health of LinkPix and of each ComfyUI backend it uses (never waits on a frozen one)
      description: "With network_access on, the ComfyUI URLs, errors and the cache's users are shown only to
        a caller with an API key."
      responses:
        200:
          description: "at least one ComfyUI backend answers"
          content: {application/json: {schema: Health}}
        503:
          description: "no ComfyUI backend answers (the body says why, per backend)"
          content: {application/json: {schema: Health}}
    """
    body, status = health_body()
    if services().config.settings.network_access and not identify().keyed:
        # Open to the network: who uses the cache, and where ComfyUI is, are for key holders only.
        body = _redacted(body)
    resp = jsonify(body)
    resp.status_code = status
    return no_store(resp)


def health_body() -> tuple[dict[str, Any], int]:
    """The whole /health document and its status, built in one place (what a caller may see of it is
    decided by the route). Read from what the pool's keepers last learnt: it never waits on ComfyUI."""
    svc = services()
    svc.config_holder.get()  # a changed config.json is applied (backends, cache limits) before reporting
    pool = svc.pool.health()
    rows = pool["backends"]
    live = [r for r in rows if not r["retiring"]]
    up = [r for r in live if r["state"] == "up"]
    first = (up or live or rows)[0]
    body: dict[str, Any] = {"status": "ok" if up else "degraded",
                            "comfyui": "reachable" if up else "unreachable",
                            "comfyui_url": first["url"], "comfyui_version": first["version"],
                            "queue_running": sum(1 for r in up if r["queue"]),
                            "queue_pending": sum(max(0, (r["queue"] or 0) - 1) for r in up),
                            "backends_up": len(up), "backends": rows,
                            "cache": svc.cache.stats(), "pending_generations": svc.generator.pending,
                            "fair_queue": svc.generator.queue.snapshot()}
    if not up:
        body["error"] = "; ".join(f"{r['name']}: {r['last_error'] or r['state']}" for r in live)
    body["providers"] = [{"name": p.name, "kind": p.kind, "models": p.models, "priority": p.priority,
                          "features": p.features} for p in svc.config.settings.providers]  # never keys or URLs
    body["replica"] = svc.replica_name
    if svc.replica is not None:  # several replicas: the Redis they share (new work needs it; hits do not)
        body["redis"] = svc.replica.health()
        if body["redis"]["state"] != "up":
            body["status"] = "degraded"
    return body, 200 if up else 503


def _redacted(body: dict[str, Any]) -> dict[str, Any]:
    """/health without ComfyUI's addresses (errors name them too) and without the cache's users."""
    body = {k: v for k, v in body.items() if k not in ("comfyui_url", "error")}
    body["cache"] = {k: v for k, v in body["cache"].items() if k != "users"}
    body["fair_queue"] = {k: v for k, v in body["fair_queue"].items() if k != "users"}  # who waits: key holders
    body["backends"] = [{k: v for k, v in row.items() if k not in ("url", "last_error")}
                        for row in body["backends"]]
    if "redis" in body:
        body["redis"] = {k: v for k, v in body["redis"].items() if k not in ("url", "error")}
    return body


@bp.get("/ready")
def ready() -> Response:
    """Whether a load balancer should send work here.
    ---
    get:
      summary: Readiness for load balancers (never waits on a frozen ComfyUI)
      responses:
        200:
          description: "some ComfyUI backend answers and its queue is not full"
          content: {application/json: {schema: Ready}}
        503:
          description: "no backend answers, every backend's queue is at its max_queue, or Redis does not
            answer (Retry-After)"
          content: {application/json: {schema: Ready}}
    """
    svc = services()
    ok, reason = svc.pool.ready()
    if ok and svc.replica is not None and svc.replica.health()["state"] != "up":  # new work would be refused
        ok, reason = False, "Redis, which the replicas share their work through, does not answer"
    resp = jsonify({"ready": ok, "reason": reason})
    resp.status_code = 200 if ok else 503
    if not ok:
        resp.headers["Retry-After"] = "5"
    return no_store(resp)


@bp.get("/api/styles")
def styles() -> Response:
    """The styles a link may name with ?style=.
    ---
    get:
      summary: Available styles (pre, post, negative)
      responses:
        200:
          description: "name -> style"
          content: {application/json: {schema: Styles}}
    """
    return no_store(jsonify(services().resolver.styles()))


@bp.get("/api/workflows")
def workflows() -> Response:
    """Workflow names, and which one is the default.
    ---
    get:
      summary: Available workflows
      responses:
        200:
          description: "names, the default, the default of POST /edit, and what each needs (image, mask)"
          content: {application/json: {schema: WorkflowList}}
    """
    svc = services()
    return no_store(jsonify({"workflows": svc.resolver.workflow_names(),
                              "default": svc.config.default_workflow,
                              "edit_default": svc.config.settings.edit_workflow,
                              "needs": svc.resolver.workflow_needs()}))


@bp.get("/api/workflows/<name>")
def workflow(name: str) -> Response:
    """The parameters a workflow accepts and the node inputs each one sets.
    ---
    get:
      summary: Describe one workflow's parameters and where they land
      parameters:
        - {in: path, name: name, required: true, schema: {type: string}}
      responses:
        200:
          description: "parameters, types, defaults, targets"
          content: {application/json: {schema: WorkflowDescription}}
        404: {description: "unknown workflow (lists the available ones)"}
    """
    try:
        described = services().resolver.describe_workflow(name)
    except BadRequest as exc:  # a name in the path that names nothing: 404, with the list
        if not isinstance(exc.details, dict) or exc.details.get("parameter") != "workflow":
            raise
        raise NotFound(exc.message, exc.details) from None
    return no_store(jsonify(described))


@bp.get("/api/requests")
def recent_requests() -> Response:
    """The newest image and job requests, newest first (what the dashboard's Monitor lists).
    ---
    get:
      summary: Recent requests with their outcome (status, cache hit or miss, user, milliseconds)
      parameters:
        - {in: query, name: limit, schema: {type: integer, default: 50, minimum: 1, maximum: 200}}
      responses:
        200:
          description: "a list of requests (a key that is not in admin_keys sees its own user's only)"
          content: {application/json: {schema: RequestLog}}
        400: {description: "limit is not a whole number from 1 to 200"}
        401: {description: "network_access is on and no valid API key was sent"}
    """
    who = require("the request log")  # it shows users' prompts: key holders only, on the network
    try:
        limit = int(request.args.get("limit", 50))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 200:  # as documented: out of range is a 400, not quietly another number
        raise BadRequest("limit must be a whole number from 1 to 200", {"parameter": "limit"})
    newest = (entry for entry in reversed(services().recent_requests.copy()) if who.sees(entry.get("user")))
    return no_store(jsonify(list(itertools.islice(newest, limit))))


@bp.get("/api/models")
def models() -> Response:
    """Model files, samplers and schedulers that ComfyUI offers, from its object_info.
    ---
    get:
      summary: Checkpoints, UNETs, LoRAs, VAEs, samplers, schedulers (of every backend together)
      responses:
        200:
          description: "lists by kind (checkpoints, unets, vaes, loras, samplers, schedulers, clips, input_images)"
          content: {application/json: {schema: ModelLists}}
        503: {description: "ComfyUI is unreachable"}
    """
    info = services().pool.object_info()
    if info is None:
        raise BackendUnavailable("no ComfyUI backend has answered yet, so its models are unknown; see /health")
    lists = {name: named_choices(info, name) for name in CHOICE_SOURCES}
    if not identify().admin:  # users' uploads are theirs: only an admin key sees them listed
        lists["input_images"] = public_values(lists["input_images"])
    return no_store(jsonify(lists))
