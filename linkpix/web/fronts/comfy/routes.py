"""ComfyUI's own API, at the root and under `/comfy/` (and `/comfy/k/<key>/`), over LinkPix's pipeline.

SillyTavern throws the path of its ComfyUI URL away (it calls `/system_stats`, `/object_info`,
`POST /prompt`, `GET /history` and `/view` at the host's root); Open WebUI and scripts keep a base path.
The routes do not clash with LinkPix's: `POST /prompt` and `GET /prompt` (queue info) are ComfyUI's,
`GET /prompt/<text>` stays the link. A client's graph runs whole, through the generator (cache and
single-flight keyed on the graph), on whichever backend LinkPix picks; a graph it already ran answers at
once. Information routes (`object_info`, `system_stats`, model lists) come from the backend.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from linkpix.errors import BackendUnavailable, BadRequest, LinkPixError, QueueFull
from linkpix.model import RenderedJob
from linkpix.pipeline.graphjob import job_from_graph
from linkpix.pipeline.secrets import KEY_FIELD, PARTNER_KEY_RE, scope_graph
from linkpix.web.fronts import upgrade
from linkpix.web.fronts.comfy.graphcheck import check_body, check_size
from linkpix.web.fronts.comfy.runs import rejection_body
from linkpix.web.fronts.comfy.ws import Client, serve_socket
from linkpix.web.fronts.common import FRONT_KEY, backend_info, bearer_key, caller, empty_response, require_enabled
from linkpix.web.fronts.state import front_state
from linkpix.web.ratelimits import admit_generation
from linkpix.web.services import services
from linkpix.web.uploads import max_upload_bytes

bp = Blueprint("comfy", __name__)
_WHOLE = re.compile(r"^-?[0-9]{1,11}\Z")  # as documented: |n| < 10^11
_WS_KEY = re.compile(r"^[A-Za-z0-9+/]{21}[AQgw]==\Z")

@bp.before_request
def _authenticate() -> None:
    require_enabled("comfy")
    key = request.environ.get(FRONT_KEY) or bearer_key()
    g.front_user = caller(key, "as 'Authorization: Bearer <key>' or in the path (/comfy/k/<key>/)")


@bp.errorhandler(LinkPixError)
def _error(exc: LinkPixError) -> Response:
    """ComfyUI's error shape: `{"error": {type, message, details, extra_info}, "node_errors": {}}`."""
    body, status = rejection_body(exc)
    resp = jsonify(body)
    resp.status_code = status
    if isinstance(exc, QueueFull):
        resp.headers["Retry-After"] = str(exc.retry_after)
    info = request.environ.get("linkpix.log")
    if info is not None:
        info["error"] = exc.code
    return resp


def comfy_front() -> Any:
    return front_state().comfy


# ---------------------------------------------------------------------------------------- running
@bp.post("/prompt")
def post_prompt() -> Response:
    """Queue a whole API-format graph, as ComfyUI does (also when sent as text/plain).
    ---
    post:
      summary: "ComfyUI POST /prompt: {prompt: graph, client_id?, prompt_id?, extra_data?}"
      requestBody:
        required: true
        content:
          application/json: {schema: ComfyPromptBody}
      responses:
        200:
          description: "{prompt_id, number, node_errors}"
          content: {application/json: {schema: ComfyQueued}}
        400: {description: "ComfyUI's own validation error body (error, node_errors)"}
        401: {description: "no valid key (network_access on, address not in fronts_allow)"}
        429: {description: "too many generations pending, or a rate limit reached; see Retry-After"}
        503: {description: "no backend answers"}
    """
    limits = services().config.settings
    check_body(request.content_length, limits.front_max_graph_mb)  # 413 before the body is read
    try:  # whatever the Content-Type (SillyTavern sends text/plain); through the app's JSON limits
        body = request.get_json(force=True, silent=False, cache=False) if request.content_length != 0 else None
    except HTTPException:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict) or "prompt" not in body:
        return _comfy_error(400, "no_prompt", "No prompt provided", "No prompt provided")
    graph = body["prompt"]
    if not isinstance(graph, dict):
        return _comfy_error(400, "invalid_prompt", "Cannot execute because the prompt is not an object of nodes.",
                            f"got {type(graph).__name__}")
    check_size(graph, limits.front_max_nodes)
    user = g.front_user
    front = comfy_front()
    bound, uploads = front.files.bind(user, graph, max_upload_bytes())
    job = job_from_graph(bound, uploads, lora_files=services().resolver.lora_files)  # <lora:...> tags
    admit_generation(job, user, keyed=user != "default")  # rate limits (web/ratelimits.py)
    client_id = body.get("client_id") if isinstance(body.get("client_id"), str) else None
    extra = dict(body["extra_data"]) if isinstance(body.get("extra_data"), dict) else {}
    job = _partner_scoped(job, extra)
    prompt_id = body.get("prompt_id")
    fp = front.runs.submit(user, graph, job, client_id, str(prompt_id) if prompt_id else None, extra)
    info = request.environ.get("linkpix.log")
    if info is not None:
        info.update(user=user, front="comfy", prompt_id=fp.prompt_id[:8])
    if fp.rejection is not None:
        answer, status = rejection_body(fp.rejection)
        resp = jsonify(answer)
        resp.status_code = status
        return resp
    return jsonify({"prompt_id": fp.prompt_id, "number": fp.number, "node_errors": {}})


@bp.get("/prompt")
def get_prompt() -> Response:
    """How many of the caller's prompts are unfinished.
    ---
    get:
      summary: "ComfyUI GET /prompt: {exec_info: {queue_remaining}}"
      responses:
        200:
          description: queue info
          content: {application/json: {schema: ComfyQueueInfo}}
    """
    return jsonify({"exec_info": {"queue_remaining": comfy_front().runs.remaining(g.front_user)}})


@bp.get("/queue")
def get_queue() -> Response:
    """The caller's running and pending prompts.
    ---
    get:
      summary: "ComfyUI GET /queue: {queue_running, queue_pending} of this user's prompts"
      responses:
        200:
          description: queue
          content: {application/json: {schema: ComfyQueue}}
    """
    return jsonify(comfy_front().runs.queue(g.front_user))


@bp.post("/queue")
def post_queue() -> Response:
    """Remove pending prompts (`delete` ids, or `clear`).
    ---
    post:
      summary: "ComfyUI POST /queue: {delete: [ids]} or {clear: true} for this user's pending prompts"
      requestBody:
        content:
          application/json: {schema: ComfyDeleteBody}
      responses:
        200: {description: empty}
    """
    body = _json_body({"delete": list, "clear": bool})
    runs = comfy_front().runs
    if body.get("clear"):
        runs.cancel(g.front_user, None, running=False)
    if isinstance(body.get("delete"), list):
        runs.cancel(g.front_user, [str(i) for i in body["delete"]], running=False)
    return empty_response()


@bp.post("/interrupt")
def interrupt() -> Response:
    """Stop the caller's running prompt(s); a run other requests share goes on for them.
    ---
    post:
      summary: "ComfyUI POST /interrupt: {prompt_id?}"
      requestBody:
        content:
          application/json: {schema: ComfyInterruptBody}
      responses:
        200: {description: empty}
    """
    body = _json_body({"prompt_id": str})
    ids = [body["prompt_id"]] if body.get("prompt_id") else None
    comfy_front().runs.cancel(g.front_user, ids, running=True)
    return empty_response()


@bp.post("/free")
def free() -> Response:
    """Accepted and ignored: the backends manage their own memory.
    ---
    post:
      summary: "ComfyUI POST /free (no-op)"
      requestBody:
        content:
          application/json: {schema: ComfyFreeBody}
      responses:
        200: {description: empty}
    """
    _json_body({"unload_models": bool, "free_memory": bool})
    return empty_response()


@bp.get("/history")
def history() -> Response:
    """The caller's finished prompts.
    ---
    get:
      summary: "ComfyUI GET /history: {prompt_id: entry}, oldest first; max_items, offset"
      parameters:
        - {in: query, name: max_items, schema: {type: integer, minimum: -99999999999, maximum: 99999999999}}
        - {in: query, name: offset, schema: {type: integer, minimum: -99999999999, maximum: 99999999999}}
      responses:
        200:
          description: history
          content: {application/json: {schema: ComfyHistory}}
    """
    runs = comfy_front().runs
    if not request.args:
        return Response(runs.history_bytes(g.front_user), mimetype="application/json")
    max_items = _int_arg("max_items")
    return jsonify(runs.history(g.front_user, max_items=max_items, offset=_int_arg("offset") or 0))


@bp.get("/history/<prompt_id>")
def history_entry(prompt_id: str) -> Response:
    """One finished prompt, or {} while it runs or when unknown.
    ---
    get:
      summary: "ComfyUI GET /history/<id>"
      parameters:
        - {in: path, name: prompt_id, required: true, schema: {type: string}}
      responses:
        200:
          description: "{prompt_id: entry} or {}"
          content: {application/json: {schema: ComfyHistory}}
    """
    return jsonify(comfy_front().runs.history(g.front_user, prompt_id))


@bp.post("/history")
def post_history() -> Response:
    """Forget finished prompts (`delete` ids, or `clear`).
    ---
    post:
      summary: "ComfyUI POST /history"
      requestBody:
        content:
          application/json: {schema: ComfyDeleteBody}
      responses:
        200: {description: empty}
    """
    body = _json_body({"delete": list, "clear": bool})
    runs = comfy_front().runs
    if body.get("clear"):
        runs.delete_history(g.front_user, None)
    if isinstance(body.get("delete"), list):
        runs.delete_history(g.front_user, [str(i) for i in body["delete"]])
    return empty_response()


@bp.get("/ws", websocket=True)  # werkzeug refuses an upgrade request on a plain rule
def websocket() -> Response:
    """The caller's prompts' events over a websocket, in ComfyUI's message order.
    ---
    get:
      summary: "ComfyUI websocket: /ws?clientId=ID (status, executing, progress, executed, previews...)"
      parameters:
        - {in: query, name: clientId, schema: {type: string}}
        - {in: header, name: Upgrade, required: true, schema: {type: string, enum: [websocket]}}
        - {in: header, name: Connection, required: true, schema: {type: string, enum: [Upgrade]}}
        - {in: header, name: Sec-WebSocket-Version, required: true, schema: {type: string, enum: ["13"]}}
        - in: header
          name: Sec-WebSocket-Key
          required: true
          description: "16 random bytes, base64"
          schema: {type: string, pattern: "^[A-Za-z0-9+/]{21}[AQgw]==$"}
      responses:
        101: {description: switching protocols}
        400: {description: "not a websocket upgrade: the message says what to send"}
        429: {description: too many sockets open}
    """
    take = upgrade.taker(request.environ)
    if take is None or not _handshake_ok(request.headers):
        _not_a_websocket()
    front = comfy_front()
    if not front.hub.try_slot(g.front_user):
        raise QueueFull("too many websockets are open (events_max_streams); poll /history instead", retry_after=5)
    try:
        client_id = request.args.get("clientId") or uuid.uuid4().hex
        user = g.front_user
        hello = {"status": {"exec_info": {"queue_remaining": front.runs.remaining(user)}}, "sid": client_id}
        serve_socket(take(), request.environ, front.hub, Client(user, client_id), hello, front.features())
    finally:
        front.hub.release_slot(g.front_user)
    return Response(status=101)


@bp.get("/ws")  # the same path without an upgrade: werkzeug would answer its own vague 400
def websocket_needed() -> Response:
    _not_a_websocket()


def _handshake_ok(headers: Any) -> bool:
    """An RFC 6455 opening handshake: wsproto would otherwise fail on the socket, after the 400 could be sent."""
    return (headers.get("Upgrade", "").lower() == "websocket"
            and "upgrade" in [t.strip().lower() for t in headers.get("Connection", "").split(",")]
            and headers.get("Sec-WebSocket-Version", "") == "13"
            and bool(_WS_KEY.match(headers.get("Sec-WebSocket-Key", ""))))


def _not_a_websocket() -> None:
    raise BadRequest("GET /ws is ComfyUI's websocket: connect with a websocket client to /ws?clientId=<id> "
                     "(headers Upgrade: websocket, Connection: Upgrade, Sec-WebSocket-Version: 13 and a "
                     "Sec-WebSocket-Key of 16 bytes in base64)")


# ------------------------------------------------------------------------------------------ helpers
def required_info() -> dict[str, Any]:
    info = backend_info()
    if info is None:
        raise BackendUnavailable("no ComfyUI backend answers")
    return info


def _json_body(fields: dict[str, type]) -> dict[str, Any]:
    """The body as an object; none is `{}`, and a body that is not JSON is a 400 rather than ignored. A known
    field of the wrong type is a 400 too (ComfyUI's clients send these types; a `delete` list holds ids)."""
    try:
        body = json.loads(request.get_data(cache=False) or b"{}")
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    names = {bool: "true or false", str: "a string", list: "a list of prompt ids (strings)"}
    for name, kind in fields.items():
        value = body.get(name)
        if name in body and (not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool)
                             or (kind is list and not all(isinstance(i, str) for i in value))):
            raise BadRequest(f"'{name}' must be {names[kind]}")
    return body


def _int_arg(name: str) -> int | None:
    value = request.args.get(name)
    if value is None:
        return None
    if not _WHOLE.match(value):
        raise BadRequest(f"{name} must be a whole number (got {value[:40]!r})")
    return int(value)


def _partner_scoped(job: RenderedJob, extra: dict[str, Any]) -> RenderedJob:
    """Take the Comfy account's secrets out of `extra` (it is kept and shown in `/queue` and `/history`): an
    `api_key_comfy_org` goes to ComfyUI with this prompt's run only, as on the v2 front (pipeline/secrets.py:
    a run of its own, never joined nor cached for others, the key in memory until the run ends);
    `auth_token_comfy_org`, a browser session's token, is not forwarded."""
    key = extra.pop(KEY_FIELD, None)
    extra.pop("auth_token_comfy_org", None)
    if key is None:
        return job
    if not isinstance(key, str) or not PARTNER_KEY_RE.match(key):
        raise BadRequest(f"extra_data.{KEY_FIELD} must be a Comfy API key: 1-512 printable ASCII characters "
                         "without spaces", {"parameter": f"extra_data.{KEY_FIELD}"})
    graph, scope = scope_graph(job.graph, backend_info())
    services().generator.secrets.put(scope, key)  # dropped by the generator when the run ends
    return dataclasses.replace(job, graph=graph)


def _comfy_error(status: int, kind: str, message: str, details: str) -> Response:
    resp = jsonify({"error": {"type": kind, "message": message, "details": details, "extra_info": {}},
                    "node_errors": {}})
    resp.status_code = status
    return resp
