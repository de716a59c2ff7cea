"""The A1111 front's options (the checkpoint remembered per user) and the lists its clients ask for.

The lists are built from the backend's object_info (`common.backend_info`), so a client never picks a
model, sampler or VAE the backend lacks. Routes are added to the A1111 blueprint, so its key check and
error shape apply.
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request

from linkpix.errors import BadRequest, LinkPixError
from linkpix.web.fronts.a1111 import names
from linkpix.web.fronts.a1111.routes import bp, options_of, options_path
from linkpix.web.fronts.common import backend_info
from linkpix.web.services import services

REMEMBERED = ("sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers")


@bp.get("/sdapi/v1/options")
def get_options() -> Response:
    """A1111 options (the caller's checkpoint, VAE, clip skip).
    ---
    get:
      summary: "A1111 options: sd_model_checkpoint (this user's), sd_vae, CLIP_stop_at_last_layers, samples_format"
      responses:
        200:
          description: options
          content: {application/json: {schema: A1111Options}}
    """
    mine = {k: v for k, v in options_of(g.front_user).items() if valid(k, v)}  # never echo a bad value
    model = mine.get("sd_model_checkpoint") or _default_model()
    return jsonify({"sd_model_checkpoint": model, "sd_checkpoint_hash": None,
                    "sd_vae": mine.get("sd_vae", "Automatic"),
                    "CLIP_stop_at_last_layers": mine.get("CLIP_stop_at_last_layers", 1),
                    "samples_format": "png", "sd_model_checkpoint_hash": None,
                    "show_progress_every_n_steps": 1, "live_previews_enable": True})


@bp.post("/sdapi/v1/options")
def set_options() -> Response:
    """Set A1111 options: the checkpoint is remembered for this user only.
    ---
    post:
      summary: "Remember sd_model_checkpoint, sd_vae and CLIP_stop_at_last_layers for the caller"
      requestBody:
        required: true
        content:
          application/json: {schema: A1111OptionsBody}
      responses:
        200:
          description: "null, as A1111 answers"
          content: {application/json: {schema: {nullable: true}}}
        400: {description: "a checkpoint the backend does not have (the message lists them)"}
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("send the options as a JSON object")
    info = backend_info()
    changes = {k: body[k] for k in REMEMBERED if k in body}
    check_types(changes)
    if "sd_model_checkpoint" in changes:
        name = names.checkpoint_named(changes["sd_model_checkpoint"], info)
        known = names.checkpoints(info)
        if known and name not in known:
            raise BadRequest(f"model {changes['sd_model_checkpoint']!r} not found; the backend has: "
                             f"{', '.join(known)}", {"parameter": "sd_model_checkpoint", "allowed": known},
                             rule="backend_names")
        changes["sd_model_checkpoint"] = name
    if changes:
        user = g.front_user

        def apply(doc: Any) -> dict[str, Any]:
            doc = doc if isinstance(doc, dict) else {}
            doc[user] = {**(doc.get(user) if isinstance(doc.get(user), dict) else {}), **changes}
            return doc

        services().store.update(options_path(), apply, default={})
    return jsonify(None)


CLIP_SKIP = (1, 12)


def valid(name: str, value: Any) -> bool:
    """Whether a remembered option has the type the schema (A1111Options) promises."""
    if name == "CLIP_stop_at_last_layers":
        return isinstance(value, int) and not isinstance(value, bool) and CLIP_SKIP[0] <= value <= CLIP_SKIP[1]
    return isinstance(value, str) and 0 < len(value) <= 256


def check_types(changes: dict[str, Any]) -> None:
    """400 for an option of the wrong type: what POST stores, GET gives back (`sd_vae: -68239957` and
    `CLIP_stop_at_last_layers: false` were stored as sent and broke GET's schema)."""
    for name, value in changes.items():
        if valid(name, value):
            continue
        if name == "CLIP_stop_at_last_layers":
            raise BadRequest(f"CLIP_stop_at_last_layers must be a whole number from {CLIP_SKIP[0]} to {CLIP_SKIP[1]} "
                             f"(got {value!r:.40})", {"parameter": name})
        raise BadRequest(f"{name} must be a name of 1 to 256 characters (got {value!r:.40})", {"parameter": name})


def _default_model() -> str | None:
    """The checkpoint the A1111 workflow uses when the caller has not chosen one: its settings' model,
    else the one in the workflow file."""
    svc = services()
    settings = svc.config.settings
    try:
        described = svc.resolver.describe_workflow(settings.a1111_workflow or settings.workflow_path)
    except LinkPixError:
        return None
    params = described.get("parameters") if isinstance(described.get("parameters"), dict) else {}
    return (described.get("settings") or {}).get("model") or (params.get("model") or {}).get("default")


# ------------------------------------------------------------------------------------------------ lists
def _list_route(path: str, summary: str, build: Any, schema: str = "A1111Named", kind: str = "a list") -> None:
    def view() -> Response:
        return jsonify(build(backend_info()))
    view.__name__ = "list_" + path.rsplit("/", 1)[1].replace("-", "_")
    view.__doc__ = (f"A1111 list: {summary}.\n---\nget:\n  summary: \"{summary}\"\n  responses:\n"
                    f"    200:\n      description: {kind}\n"
                    f"      content: {{application/json: {{schema: {schema}}}}}\n")
    bp.add_url_rule(path, view_func=view, methods=["GET"])


_list_route("/sdapi/v1/sd-models", "checkpoints and diffusion models the backend has", names.model_items,
            "A1111Models")
_list_route("/sdapi/v1/samplers", "A1111 sampler names the backend's samplers answer to", names.sampler_items)
_list_route("/sdapi/v1/schedulers", "noise schedules", names.scheduler_items)
_list_route("/sdapi/v1/sd-vae", "VAE files", names.vae_items, "A1111Vaes")
_list_route("/sdapi/v1/loras", "LoRA files", names.lora_items)
_list_route("/sdapi/v1/upscalers", "upscalers (None, Lanczos, Nearest and upscale models)", names.upscaler_items)
_list_route("/sdapi/v1/latent-upscale-modes", "latent upscale modes",
            lambda _info: [{"name": n} for n in names.LATENT_UPSCALE_MODES])
_list_route("/sdapi/v1/hypernetworks", "hypernetworks (none)", lambda _info: [], "A1111List")
_list_route("/sdapi/v1/face-restorers", "face restorers (none)", lambda _info: [], "A1111List")
_list_route("/sdapi/v1/realesrgan-models", "RealESRGAN models (none)", lambda _info: [], "A1111List")
_list_route("/sdapi/v1/scripts", "scripts (none)", lambda _info: {"txt2img": [], "img2img": []}, "A1111List")
_list_route("/sdapi/v1/script-info", "script details (none)", lambda _info: [], "A1111List")
_list_route("/sdapi/v1/embeddings", "textual-inversion embeddings (none listed)",
            lambda _info: {"loaded": {}, "skipped": {}}, "A1111List")
_list_route("/sdapi/v1/cmd-flags", "command-line flags (none)", lambda _info: {}, "A1111List")


@bp.get("/sdapi/v1/memory")
def memory() -> Response:
    """The backend's memory in A1111's shape (from ComfyUI's /system_stats).
    ---
    get:
      summary: "A1111 memory: {ram: {free, used, total}, cuda: {system: {free, used, total}, active, allocated,
        reserved, inactive, events} or {error}} of the ComfyUI machine (bytes)"
      responses:
        200:
          description: "ram and cuda; a part that cannot be read is {error: why}, as in A1111"
          content: {application/json: {schema: A1111Memory}}
    """
    try:
        stats = services().client.system_stats()
    except LinkPixError as exc:
        return jsonify({"ram": {"error": exc.message}, "cuda": {"error": exc.message}})
    return jsonify(memory_of(stats))


def memory_of(stats: dict[str, Any]) -> dict[str, Any]:
    """A1111's MemoryResponse from ComfyUI's /system_stats: the machine's RAM, and the first CUDA device.
    ComfyUI reports no peaks or allocator events: the current figures stand for the peaks, events are 0."""
    system = stats.get("system") if isinstance(stats.get("system"), dict) else {}
    total, free = _bytes(system.get("ram_total")), _bytes(system.get("ram_free"))
    ram: dict[str, Any] = {"free": free, "used": total - free, "total": total} if total else \
        {"error": "ComfyUI does not report its RAM"}
    devices = stats.get("devices") if isinstance(stats.get("devices"), list) else []
    gpu = next((d for d in devices if isinstance(d, dict) and d.get("type") == "cuda"), None)
    if gpu is None:
        return {"ram": ram, "cuda": {"error": "unavailable"}}
    vram, vram_free = _bytes(gpu.get("vram_total")), _bytes(gpu.get("vram_free"))
    torch_total, torch_free = _bytes(gpu.get("torch_vram_total")), _bytes(gpu.get("torch_vram_free"))
    held = {"current": torch_total - torch_free, "peak": torch_total - torch_free}
    cuda = {"system": {"free": vram_free, "used": vram - vram_free, "total": vram},
            "active": held, "allocated": held, "reserved": {"current": torch_total, "peak": torch_total},
            "inactive": {"current": torch_free, "peak": torch_free}, "events": {"retries": 0, "oom": 0}}
    return {"ram": ram, "cuda": cuda}


def _bytes(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 0


@bp.post("/sdapi/v1/refresh-checkpoints")
def refresh_checkpoints() -> Response:
    """Accepted: the model lists are read from the backend on every call anyway.
    ---
    post:
      summary: "A1111 refresh-checkpoints (no-op)"
      responses:
        200:
          description: "null"
          content: {application/json: {schema: {nullable: true}}}
    """
    return jsonify(None)
