"""Image routes: GET /prompt/<text> (a link that becomes an image) and GET /images/<user>/<file>."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.routing import PathConverter
from werkzeug.wsgi import wrap_file

from linkpix.comfy.transport import display_url
from linkpix.errors import Unauthorized
from linkpix.model import RenderedJob
from linkpix.pipeline.generator import Outcome
from linkpix.pipeline.request import parse_query
from linkpix.storage.cache import CachedImage
from linkpix.storage.media import is_picture
from linkpix.web import live, parked
from linkpix.web.auth import acting_user, identify
from linkpix.web.characters import character_owner
from linkpix.web.conditional import not_modified, not_modified_headers
from linkpix.web.memo import MemoEntry
from linkpix.web.middleware import http_date
from linkpix.web.ratelimits import admit_generation
from linkpix.web.requestinfo import (
    prompt_from_environ,
    query_params,
    raw_path_and_query,
    raw_uri,
    user_from_environ,
    wants_json,
)
from linkpix.web.services import services
from linkpix.web.signing import verify
from linkpix.web.uploads import link_inputs


class AnyPath(PathConverter):
    """`path`, but a prompt may hold any character, a newline (`%0A`) included: Werkzeug's `path` stops
    at one (its `.` does not match `\\n`) and the link would answer 404. It replaces the app's `path`
    converter, so the rule keeps its name (`/prompt/<path:text>`, which the metrics use as a label)."""

    regex = r"[^/][\s\S]*?"


bp = Blueprint("images", __name__)
# Registered before the routes below (deferred functions run in the order recorded); this blueprint is
# registered first, before any other rule with a `path` part.
bp.record_once(lambda state: state.app.url_map.converters.update(path=AnyPath))

IMMUTABLE = "public, max-age=31536000, immutable"
# Parameters that steer the response rather than the picture.
CONTROL_PARAMS = ("user", "sig", "live")
MAX_IGNORED_SHOWN = 20  # keep the header short whatever a link carries


@bp.get("/prompt/<path:text>")
def prompt(text: str) -> Response:
    """Render the workflow with the prompt in the path and return the image.
    ---
    get:
      summary: Generate (or fetch from the cache) the image for a prompt
      parameters:
        - in: path
          name: text
          required: true
          description: "the prompt; + or %20 for spaces (so not only those)"
          schema: {type: string, pattern: '^[^\\x00]*[^\\s\\x00+][^\\x00]*$'}
        - {in: query, name: width, schema: {type: integer, minimum: 16, maximum: 8192}}
        - {in: query, name: height, schema: {type: integer, minimum: 16, maximum: 8192}}
        - {in: query, name: style, schema: {type: string, x-linkpix-names: style-list},
           description: "one style or several, comma-separated"}
        - in: query
          name: seed
          schema: {type: string, pattern: '^\\s*(-1|[0-9]{1,19}|1[0-7][0-9]{18}|[Rr][Aa][Nn][Dd][Oo][Mm])?\\s*$'}
          description: "0 to 18446744073709551615, or random / -1; empty: derived from the request"
        - {in: query, name: workflow, schema: {type: string, x-linkpix-names: workflows}}
        - {in: query, name: model, schema: {type: string, pattern: '^[^\\x00]*$'}}
        - {in: query, name: negative, schema: {type: string, pattern: '^[^\\x00]*$'}}
        - {in: query, name: steps, schema: {type: integer, minimum: 1}}
        - {in: query, name: cfg, schema: {type: number}}
        - {in: query, name: sampler, schema: {type: string, pattern: '^[^\\x00]*$'}}
        - {in: query, name: scheduler, schema: {type: string, pattern: '^[^\\x00]*$'}}
        - {in: query, name: format, schema: {type: string, enum: ["", png, jpeg, webp, json]}}
        - {in: query, name: user, schema: {type: string, pattern: "^[A-Za-z0-9_-]{0,64}$"}}
        - {in: query, name: sig, schema: {type: string}, description: "HMAC signature of a signed link"}
        - {in: query, name: image, schema: {type: string, pattern: '^[^\\x00]*$'},
           description: "an input image: an upload id"}
        - in: query
          name: mask
          schema: {type: string, pattern: "^(linkpix_[0-9a-f]{16}[.](png|jpg|gif|webp))?$"}
          description: "an inpainting mask: an upload id"
        - {in: query, name: live, schema: {type: string, enum: ["1", "0", "true", "false", "yes", "no", "on", "off"]},
           description: "1: a new link answers multipart/x-mixed-replace (status card, previews, the image)"}
      responses:
        200:
          description: "the image (or JSON metadata with format=json; with live=1 on a new link, a
            multipart/x-mixed-replace stream ending with the image); a workflow whose first output is a video
            or a sound answers that file, as it was saved"
          headers:
            X-LinkPix-Cache: {schema: {type: string, enum: [hit, miss]}}
            X-LinkPix-Seed: {schema: {type: string}}
            X-LinkPix-Workflow: {schema: {type: string}}
            X-LinkPix-GPU-Seconds: {description: "its run's seconds in ComfyUI", schema: {type: string}}
          content:
            image/png: {schema: {type: string, format: binary}}
            image/jpeg: {schema: {type: string, format: binary}}
            image/webp: {schema: {type: string, format: binary}}
            video/mp4: {schema: {type: string, format: binary}}
            video/webm: {schema: {type: string, format: binary}}
            image/gif: {schema: {type: string, format: binary}}
            audio/flac: {schema: {type: string, format: binary}}
            audio/mpeg: {schema: {type: string, format: binary}}
            audio/ogg: {schema: {type: string, format: binary}}
            application/octet-stream: {schema: {type: string, format: binary}}
            application/json: {schema: ImageMeta}
            multipart/x-mixed-replace: {schema: {type: string, format: binary}}
        206: StoredFileRange
        304: {description: "not modified (If-None-Match, weak comparison; or If-Modified-Since)"}
        416: {description: "a Range outside a video's or sound's bytes"}
        401: {description: "a signed link's signature is wrong, or an API key that is sent is unknown"}
        400: {description: "a parameter is invalid; the message says which and what is allowed"}
        404: {description: "image= or mask= names an upload that is not one of yours"}
        422: {description: "ComfyUI refused the rendered workflow"}
        429: {description: "too many generations pending, or a rate limit reached; see Retry-After"}
        502: {description: "the run failed in ComfyUI"}
        503: {description: "ComfyUI is unreachable"}
        504: {description: "the run timed out and was stopped"}
    """
    svc = services()
    env = request.environ
    raw_user = user_from_environ(env)
    user = acting_user(raw_user)  # a key's user is the user (403 for a key naming another)
    who = identify()
    _check_signature(env)
    fingerprint = svc.fingerprint()
    json_mode = wants_json(env)
    query = {k: v for k, v in query_params(env).items() if k not in CONTROL_PARAMS}
    if query.get("format") == "json":
        del query["format"]
    req = link_inputs(parse_query(prompt_from_environ(env), query, user))
    if req.char is not None or "char:" in req.prompt:
        req = dataclasses.replace(req, char_owner=character_owner())
    job = svc.resolver.resolve(req)
    admit_generation(job, user)  # rate limits: a new picture or a cached one (web/ratelimits.py)
    if svc.live is not None and not json_mode and live.wanted(env, svc.config.settings):
        streamed = live.respond(svc.live, svc.config.settings, job, user, env)
        if streamed is not None:  # a new link: previews as it is drawn (web/live.py)
            return streamed
    if not json_mode and parked.wanted(svc, env, job, user):  # the threads for waiting links are taken
        handed = parked.park(svc, job, user, env, lambda image: _image_headers(image, job, False))
        if handed is not None:
            return handed
    outcome = svc.generator.generate(job, user)
    env["linkpix.log"].update(user=user, cache="hit" if outcome.cache_hit else "miss",
                              key=outcome.image.key[:12])
    if json_mode:
        resp = _json_response(outcome, job)
    else:
        headers = _image_headers(outcome.image, job, outcome.cache_hit)
        keyed_char = req.char_owner not in (None, raw_user)  # a key's character: not for the keyless memo path
        if not job.seed_is_random and outcome.image.local and not keyed_char and not who.keyed:  # keyless only
            svc.memo.put(raw_uri(env), raw_user, fingerprint, _memo_entry(outcome.image, job))
        resp = _file_response(outcome.image, headers)
    if outcome.gpu_seconds is not None:  # this answer ran something: what it took in ComfyUI
        resp.headers["X-LinkPix-GPU-Seconds"] = f"{outcome.gpu_seconds:.3f}"
    return resp


@bp.get("/images/<user>/<filename>")
def stored_image(user: str, filename: str) -> Response:
    """Serve an image stored in the cache.
    ---
    get:
      summary: A stored image (or video, sound...), by the URL that /prompt?format=json or a job reported
      parameters:
        - {in: path, name: user, required: true, schema: {type: string}}
        - {in: path, name: filename, required: true, schema: {type: string}}
      responses:
        200: StoredFile
        206: StoredFileRange
        304: {description: not modified}
        404: {description: no such image}
        416: {description: "a Range outside a video's or sound's bytes"}
        429: {description: "a rate limit (hits) was reached; see Retry-After"}
    """
    image = services().cache.lookup_file(user, filename)
    headers = [("Content-Type", image.content_type), ("ETag", image.etag),
               ("Last-Modified", http_date(image.mtime)), ("Cache-Control", IMMUTABLE)]
    return _file_response(image, headers)


def _check_signature(env: dict[str, Any]) -> None:
    settings = services().config.settings
    if not settings.signing_keys:
        return
    path, query = raw_path_and_query(env)
    if verify(settings.signing_keys, path, query):
        return
    if settings.require_signature or "sig=" in query:
        raise Unauthorized("this link needs a valid signature (sig parameter); "
                           "sign it with: python -m linkpix.web.signing KEY URL")


def _image_headers(image: CachedImage, job: RenderedJob, hit: bool) -> list[tuple[str, str]]:
    headers = [("Content-Type", image.content_type), ("ETag", image.etag),
               ("Last-Modified", http_date(image.mtime)),
               ("Cache-Control", "no-store" if job.seed_is_random else IMMUTABLE),
               ("X-LinkPix-Cache", "hit" if hit else "miss"), ("X-LinkPix-Seed", str(job.seed)),
               ("X-LinkPix-Workflow", job.workflow), ("X-LinkPix-Image-Url", image.url)]
    backend = str(image.meta.get("backend") or "")
    if backend:  # a name; images stored before names existed recorded a URL: never show its password
        headers.append(("X-LinkPix-Backend", display_url(backend) if "://" in backend else backend))
    if job.ignored:
        shown = job.ignored[:MAX_IGNORED_SHOWN]
        more = len(job.ignored) - len(shown)
        headers.append(("X-LinkPix-Ignored", ",".join(shown) + (f",...(+{more} more)" if more else "")))
    if job.notes:
        headers.append(("X-LinkPix-Notes", "; ".join(job.notes)))
    return headers


def _memo_entry(image: CachedImage, job: RenderedJob) -> MemoEntry:
    headers = tuple((k, "hit" if k == "X-LinkPix-Cache" else v) for k, v in _image_headers(image, job, True))
    return MemoEntry(image.path, image.etag, headers, image.size, image.mtime, image.user, image.key)


def _file_response(image: CachedImage, headers: list[tuple[str, str]]) -> Response:
    if not_modified(request.environ, image.etag, image.mtime):
        return Response(status=304, headers=not_modified_headers(headers))
    if not image.local:  # S3 (storage/s3.py): a redirect to a presigned URL, or the bytes streamed
        if services().config.settings.s3_redirect:
            kept = [(k, v) for k, v in headers if k.startswith("X-LinkPix-")]
            resp = Response(status=302, headers=[*kept, ("Location", image.presigned_url()),  # type: ignore[attr-defined]
                                                 ("Cache-Control", "private, max-age=60")])
            return resp
        resp = Response(image.chunks(), headers=headers, direct_passthrough=True)  # type: ignore[attr-defined]
        resp.content_length = image.size
        return resp
    resp = Response(wrap_file(request.environ, open(image.path, "rb")), headers=headers,
                    direct_passthrough=True)
    resp.content_length = image.size
    # waitress dates a response from when the request started; a picture made since would then be
    # Last-Modified after its Date. Date it now, which is after the file was written.
    resp.headers["Date"] = http_date(max(time.time(), image.mtime))
    if not is_picture(image.fmt):  # a video or a sound: players ask for ranges (Safari will not play without)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp = resp.make_conditional(request, accept_ranges=True, complete_length=image.size)
    return resp


def _json_response(outcome: Outcome, job: RenderedJob) -> Response:
    image = outcome.image
    meta = image.meta
    return jsonify({
        "url": image.url, "cache": "hit" if outcome.cache_hit else "miss", "prompt": job.prompt,
        "negative": job.negative, "seed": job.seed, "seed_is_random": job.seed_is_random,
        "workflow": job.workflow, "format": image.fmt, "width": meta.get("width"),
        "height": meta.get("height"), "bytes": image.size, "params": job.params,
        "ignored": list(job.ignored), "notes": list(job.notes), "generation_ms": meta.get("generation_ms"),
    })
