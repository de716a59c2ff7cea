"""Read-only JSON routes: health, styles, workflows and the models ComfyUI offers."""

from __future__ import annotations

import itertools
from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..comfy.objectinfo import CHOICE_SOURCES, named_choices
from ..errors import BadRequest, LinkPixError
from .auth import identify, require
from .errors import no_store
from .services import services

bp = Blueprint("info", __name__)



@bp.get("/health")
def health() -> Response:
    """ComfyUI reachability, its queue, and the cache figures.
    ---
    get:
      summary: Health of LinkPix and of the ComfyUI it uses
      description: "With network_access on, the ComfyUI URL and the cache's users are shown only to a
        caller with an API key."
      responses:
        200:
          description: "ComfyUI is reachable"
          content: {application/json: {schema: Health}}
        503:
          description: "ComfyUI is unreachable (error says why)"
          content: {application/json: {schema: Health}}
    """
    svc = services()
    body: dict[str, Any] = {"comfyui_url": svc.client.base_url, "cache": svc.cache.stats(),
                            "pending_generations": svc.generator.pending}
    if svc.config.settings.network_access and not identify().keyed:
        # Open to the network: who uses the cache, and where ComfyUI is, are for key holders only.
        body.pop("comfyui_url")
        body["cache"].pop("users", None)
    try:
        stats = svc.client.system_stats()
        queue = svc.client.queue()
        body.update(status="ok", comfyui="reachable",
                    comfyui_version=stats.get("system", {}).get("comfyui_version"),
                    queue_running=len(queue.get("running", [])),
                    queue_pending=len(queue.get("pending", [])))
        status = 200
    except LinkPixError as exc:
        body.update(status="degraded", comfyui="unreachable", error=exc.message)
        status = 503
    resp = jsonify(body)
    resp.status_code = status
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
        400: {description: "unknown workflow (lists the available ones)"}
    """
    return no_store(jsonify(services().resolver.describe_workflow(name)))


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
        401: {description: "network_access is on and no valid API key was sent"}
    """
    who = require("the request log")  # it shows users' prompts: key holders only, on the network
    try:
        limit = max(1, min(200, int(request.args.get("limit", 50))))
    except ValueError:
        raise BadRequest("limit must be a whole number from 1 to 200", {"parameter": "limit"}) from None
    newest = (entry for entry in reversed(services().recent_requests.copy()) if who.sees(entry.get("user")))
    return no_store(jsonify(list(itertools.islice(newest, limit))))


@bp.get("/api/models")
def models() -> Response:
    """Model files, samplers and schedulers that ComfyUI offers, from its object_info.
    ---
    get:
      summary: Checkpoints, UNETs, LoRAs, VAEs, samplers, schedulers
      responses:
        200:
          description: "lists by kind (checkpoints, unets, vaes, loras, samplers, schedulers, clips, input_images)"
          content: {application/json: {schema: ModelLists}}
        503: {description: "ComfyUI is unreachable"}
    """
    info = services().client.object_info()
    return no_store(jsonify({name: named_choices(info, name) for name in CHOICE_SOURCES}))
