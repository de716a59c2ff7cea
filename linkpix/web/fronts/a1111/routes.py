"""The AUTOMATIC1111 web UI API at `/sdapi/v1/...`, for SillyTavern, Open WebUI and A1111 client libraries.

It sits at the root because its clients overwrite the path of the URL they are given. A txt2img or
img2img body becomes one `GenerationRequest` (A1111's names mapped onto LinkPix's parameters: `cfg_scale`
is `cfg`, `sampler_name` "DPM++ 2M Karras" is sampler `dpmpp_2m` + scheduler `karras`,
`override_settings.sd_model_checkpoint` is `model`...) and goes through the same resolver and generator as
`/prompt`; fields that do not apply are accepted and ignored. Errors have A1111's shape
`{"error", "detail", "body", "errors"}`. The checkpoint set with `POST /sdapi/v1/options` is remembered per
user, so one user switching models does not switch it for everyone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from linkpix.errors import BadRequest, LinkPixError, Unauthorized
from linkpix.model import RenderedJob
from linkpix.pipeline.flight import Cancelled
from linkpix.pipeline.request import parse_json
from linkpix.render.styles import Style, apply_styles
from linkpix.storage.cache import CachedImage
from linkpix.web.fronts.a1111 import names
from linkpix.web.fronts.a1111.fields import check_types
from linkpix.web.fronts.common import (
    backend_info,
    basic_password,
    bearer_key,
    caller,
    generate,
    image_base64,
    require_enabled,
)
from linkpix.web.fronts.state import front_state
from linkpix.web.ratelimits import admit_generations
from linkpix.web.services import services

_TRUE = ("1", "on", "t", "true", "y", "yes")
_FALSE = ("0", "off", "f", "false", "n", "no")
bp = Blueprint("a1111", __name__)

_NO_VAE = ("", "Automatic", "None", None)


@bp.before_request
def _authenticate() -> None:
    require_enabled("a1111")
    g.front_user = caller(basic_password() or bearer_key(), "as the password of HTTP Basic auth")


@bp.errorhandler(LinkPixError)
def _error(exc: LinkPixError) -> Response:
    """A1111's error shape (its api_middleware); 401 asks for HTTP Basic auth like A1111 does."""
    body = {"error": "HTTPException" if exc.status < 500 else type(exc).__name__,
            "detail": exc.message, "body": "", "errors": f"{exc.status}: {exc.message}"}
    if exc.rule:  # a rule no schema states (errors.RULES), by name
        body["rule"] = exc.rule
    resp = jsonify(body)
    resp.status_code = exc.status
    resp.headers["Cache-Control"] = "no-store"
    if isinstance(exc, Unauthorized):
        resp.headers["WWW-Authenticate"] = "Basic"
    info = request.environ.get("linkpix.log")
    if info is not None:
        info["error"] = exc.code
    return resp


OPTIONS_FILE = ("fronts", "a1111_options.json")  # under data_dir: per-user options


def options_path() -> Path:
    return services().config.data_dir.joinpath(*OPTIONS_FILE)


def options_of(user: str) -> dict[str, Any]:
    """The options a user set with POST /sdapi/v1/options (their checkpoint, VAE, clip skip)."""
    doc = services().store.get(options_path(), default={})
    mine = doc.get(user) if isinstance(doc, dict) else None
    return dict(mine) if isinstance(mine, dict) else {}


# ------------------------------------------------------------------------------------------ generation
@bp.post("/sdapi/v1/txt2img")
def txt2img() -> Response:
    """A1111 text-to-image.
    ---
    post:
      summary: "A1111 txt2img: prompt, negative_prompt, seed, steps, cfg_scale, width, height, sampler_name, ..."
      requestBody:
        required: true
        content:
          application/json: {schema: A1111Txt2ImgBody}
      responses:
        200:
          description: "{images: [base64 PNG], parameters, info (a JSON string)}"
          content: {application/json: {schema: A1111Images}}
        400: {description: "a bad field, in A1111's error shape"}
        401: {description: "network_access is on and no valid key was sent as the HTTP Basic password"}
        422: {description: "ComfyUI refused the rendered workflow"}
        429: {description: "too many generations pending, or a rate limit reached; see Retry-After"}
    """
    return _generate(img2img=False)


@bp.post("/sdapi/v1/img2img")
def img2img() -> Response:
    """A1111 image-to-image.
    ---
    post:
      summary: "A1111 img2img: the txt2img fields plus init_images (base64), denoising_strength, mask"
      requestBody:
        required: true
        content:
          application/json: {schema: A1111Img2ImgBody}
      responses:
        200:
          description: "{images: [base64 PNG], parameters, info}"
          content: {application/json: {schema: A1111Images}}
        400: {description: "a bad field or no init image, in A1111's error shape"}
        401: {description: "no valid key"}
        413: {description: "an init image is larger than max_upload_mb or has too many pixels"}
        422: {description: "ComfyUI refused the rendered workflow"}
        429: {description: "too many generations pending, or a rate limit reached; see Retry-After"}
    """
    return _generate(img2img=True)


def _generate(img2img: bool) -> Response:
    user = g.front_user
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("send the request as a JSON object (Content-Type: application/json)")
    info = backend_info()
    req_fields, count, ignored = _request_fields(body, user, img2img, info)
    jobs = services().resolver.resolve_many(parse_json(req_fields, user), count)
    admit_generations(jobs, user, keyed=user != "default")  # rate limits, the batch whole (web/ratelimits.py)
    runs = front_state().a1111
    run = runs.start(user, count)
    made: list[tuple[RenderedJob, CachedImage]] = []
    try:
        for i, job in enumerate(jobs):
            try:
                outcome = generate(job, user, "a1111", run.on_event, run.next_ticket(i))
            except Cancelled:
                if run.interrupted:
                    break
                continue  # skipped: on with the next image
            made.append((job, outcome.image))
    finally:
        runs.finish(run)
    resp = jsonify({"images": [image_base64(image) for _, image in made],
                    "parameters": _parameters(body, img2img),
                    "info": json.dumps(_info(body, jobs, made, info))})
    shown = sorted(set(ignored) | {i for job in jobs for i in job.ignored})
    if shown:
        resp.headers["X-LinkPix-Ignored"] = ",".join(shown)[:512]
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _request_fields(body: dict[str, Any], user: str, img2img: bool,
                    info: dict[str, Any] | None) -> tuple[dict[str, Any], int, list[str]]:
    """The JSON-API fields for this A1111 body, the number of images, and the fields that do not apply."""
    settings = services().config.settings
    check_types(body)
    override = body.get("override_settings") or {}
    if not isinstance(override, dict):
        raise BadRequest("override_settings must be an object", {"parameter": "override_settings"})
    remembered = options_of(user)
    params: dict[str, Any] = {}
    ignored: list[str] = []
    for a1111, ours in (("negative_prompt", "negative_prompt"), ("steps", "steps"), ("cfg_scale", "cfg"),
                        ("width", "width"), ("height", "height")):
        if body.get(a1111) not in (None, ""):
            params[ours] = body[a1111]
    sampler, scheduler = names.sampler_and_scheduler(body.get("sampler_name") or body.get("sampler_index"),
                                                     body.get("scheduler"), info)
    if sampler:
        params["sampler"] = sampler
    if scheduler:
        params["scheduler"] = scheduler
    model = override.get("sd_model_checkpoint") or remembered.get("sd_model_checkpoint")
    if model:
        params["model"] = names.checkpoint_named(model, info)
    vae = override.get("sd_vae", remembered.get("sd_vae"))
    if vae not in _NO_VAE:
        params["vae"] = vae
    clip_skip = override.get("CLIP_stop_at_last_layers", body.get("clip_skip",
                                                                   remembered.get("CLIP_stop_at_last_layers")))
    if clip_skip is not None and (isinstance(clip_skip, bool) or not isinstance(clip_skip, int)):
        raise BadRequest(f"clip_skip must be a whole number (got {type(clip_skip).__name__})",
                         {"parameter": "clip_skip"})
    if isinstance(clip_skip, int) and clip_skip > 1:
        params["clip_skip"] = clip_skip
    fields: dict[str, Any] = {"prompt": body.get("prompt"), "format": "png", "params": params,
                              "seed": body.get("seed", -1) if body.get("seed") is not None else -1}
    styles = body.get("styles")
    if styles:
        fields["style"] = styles
    if body.get("char") is not None:  # LinkPix's own field: a character profile (docs/characters.md)
        fields["char"] = body["char"]
    masked = img2img and bool(body.get("mask"))
    workflow = body.get("workflow") or (settings.a1111_inpaint_workflow if masked else
                                        settings.a1111_img2img_workflow if img2img else settings.a1111_workflow)
    if workflow:
        fields["workflow"] = workflow
    if img2img:
        images = body.get("init_images")
        if not images or not isinstance(images, list):
            raise BadRequest("img2img needs init_images: a list with a base64-encoded image",
                             {"parameter": "init_images"})
        fields["images"] = images[:1]
        params["denoise"] = body.get("denoising_strength", 0.75)
        if masked:
            fields["mask"] = body["mask"]  # white = change, as in A1111
            if body.get("inpainting_mask_invert"):
                ignored.append("inpainting_mask_invert")
    if body.get("enable_hr"):
        ignored.append("enable_hr")
    return fields, _count(body), ignored


def _count(body: dict[str, Any]) -> int:
    limit = services().config.settings.max_image_count
    values = []
    for name in ("batch_size", "n_iter"):
        value = body.get(name, 1)
        if value is None:
            value = 1
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadRequest(f"{name} must be a whole number of at least 1 (got {value!r})", {"parameter": name})
        values.append(value)
    count = values[0] * values[1]
    if count > limit:
        raise BadRequest(f"batch_size x n_iter is {count}; at most {limit} images per request (max_image_count)",
                         {"parameter": "batch_size"}, rule="image_count")
    return count


def _parameters(body: dict[str, Any], img2img: bool) -> dict[str, Any]:
    """What A1111 echoes as `parameters`: the request with A1111's defaults filled in."""
    echo: dict[str, Any] = {"prompt": "", "negative_prompt": "", "styles": None, "seed": -1, "batch_size": 1,
                            "n_iter": 1, "steps": 50, "cfg_scale": 7.0, "width": 512, "height": 512,
                            "sampler_name": None, "scheduler": None, "denoising_strength": None,
                            "override_settings": {}, "send_images": True, "save_images": False}
    echo.update({k: v for k, v in body.items() if k not in ("url", "auth")})
    if img2img and not body.get("include_init_images"):
        echo["init_images"] = None
        echo["mask"] = None
    return echo


def _info(body: dict[str, Any], jobs: list[RenderedJob], made: list[tuple[RenderedJob, CachedImage]],
          info: dict[str, Any] | None) -> dict[str, Any]:
    """A1111's `info` (Processed.js()): the seeds and settings of what was made."""
    first = made[0][0] if made else jobs[0]
    p = first.params
    seeds = [job.seed for job, _ in made] or [first.seed]
    sampler = names.a1111_name(p.get("sampler", body.get("sampler_name")))
    model = p.get("model")
    infotexts = [_infotext(job, sampler) for job, _ in made]
    return {
        "prompt": body.get("prompt", ""), "all_prompts": [job.prompt for job, _ in made] or [first.prompt],
        "negative_prompt": first.negative, "all_negative_prompts": [job.negative for job, _ in made],
        "seed": seeds[0], "all_seeds": seeds, "subseed": -1, "all_subseeds": [-1] * len(seeds),
        "subseed_strength": 0, "width": p.get("width", body.get("width")),
        "height": p.get("height", body.get("height")), "sampler_name": sampler,
        "cfg_scale": p.get("cfg", body.get("cfg_scale")), "steps": p.get("steps", body.get("steps")),
        "batch_size": body.get("batch_size", 1), "restore_faces": False, "face_restoration_model": None,
        "sd_model_name": names.stem(model) if model else None, "sd_model_hash": None,
        "sd_vae_name": p.get("vae"), "sd_vae_hash": None, "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": p.get("denoise"), "extra_generation_params": {
            "LinkPix workflow": first.workflow, "LinkPix images": [image.url for _, image in made]},
        "index_of_first_image": 0, "infotexts": infotexts, "styles": body.get("styles") or [],
        "job_timestamp": time.strftime("%Y%m%d%H%M%S"), "clip_skip": p.get("clip_skip", 1),
        "is_using_inpainting_conditioning": False, "version": "LinkPix",
    }


def _infotext(job: RenderedJob, sampler: str) -> str:
    p = job.params
    parts = [f"Steps: {p.get('steps', '')}", f"Sampler: {sampler}", f"CFG scale: {p.get('cfg', '')}",
             f"Seed: {job.seed}", f"Size: {p.get('width', '')}x{p.get('height', '')}"]
    if p.get("scheduler"):
        parts.insert(2, f"Schedule type: {p['scheduler']}")
    if p.get("model"):
        parts.append(f"Model: {names.stem(p['model'])}")
    text = job.prompt + (f"\nNegative prompt: {job.negative}" if job.negative else "")
    return f"{text}\n{', '.join(parts)}"


@bp.get("/sdapi/v1/prompt-styles")
def prompt_styles() -> Response:
    """LinkPix's styles as A1111 prompt styles.
    ---
    get:
      summary: "Styles: name, prompt (with {prompt} where the text goes), negative_prompt"
      responses:
        200:
          description: a list
          content: {application/json: {schema: A1111PromptStyles}}
    """
    out = []
    for name, style in services().resolver.styles().items():
        # the text LinkPix itself makes of a prompt with this style ("pre prompt, post"), with {prompt} in it
        prompt, negative = apply_styles("{prompt}", [Style(name, style.get("pre", ""), style.get("post", ""),
                                                           style.get("negative", ""))])
        out.append({"name": name, "prompt": prompt, "negative_prompt": negative})
    return jsonify(out)


@bp.get("/sdapi/v1/progress")
def progress() -> Response:
    """Progress of the caller's runs, with a preview image.
    ---
    get:
      summary: "A1111 progress of this user's runs: progress 0..1, eta, state (job_count...), current_image"
      parameters:
        - {in: query, name: skip_current_image, schema: {type: boolean}}
      responses:
        200:
          description: progress
          content: {application/json: {schema: A1111Progress}}
    """
    raw = request.args.get("skip_current_image", "false").lower()
    if raw not in _TRUE + _FALSE:  # what A1111's FastAPI (pydantic) takes for a boolean
        raise BadRequest(f"skip_current_image must be a boolean ({', '.join(_TRUE + _FALSE)}); got {raw[:40]!r}",
                         {"parameter": "skip_current_image"})
    skip = raw in _TRUE
    resp = jsonify(front_state().a1111.progress(g.front_user, with_image=not skip))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/sdapi/v1/interrupt")
def interrupt() -> Response:
    """Stop the caller's runs.
    ---
    post:
      summary: "Interrupt this user's runs (a run other requests share goes on for them)"
      responses:
        200:
          description: "{}"
          content: {application/json: {schema: {type: object}}}
    """
    front_state().a1111.interrupt(g.front_user)
    return jsonify({})


@bp.post("/sdapi/v1/skip")
def skip() -> Response:
    """Skip the image being made in each of the caller's runs.
    ---
    post:
      summary: "Skip the current image of this user's runs; their batches go on"
      responses:
        200:
          description: "null"
          content: {application/json: {schema: {nullable: true}}}
    """
    front_state().a1111.skip(g.front_user)
    return jsonify(None)
