"""The ComfyUI front's information routes: object_info, system_stats, features, model lists.

They answer from the backend (through `common.backend_info`, the one accessor the pool's merged view
replaces), on the ComfyUI front's blueprint, so the same key check and error shape apply.
"""

from __future__ import annotations

import requests
from flask import Response, jsonify

from linkpix.comfy.objectinfo import choices
from linkpix.web.fronts.comfy.routes import bp, comfy_front, required_info
from linkpix.web.fronts.common import empty_response
from linkpix.web.services import services

# /models: ComfyUI 0.3.64's folder names; the ones LinkPix can list come from object_info.
MODEL_FOLDERS = ("checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
                 "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen",
                 "upscale_models", "custom_nodes", "hypernetworks", "photomaker", "classifiers",
                 "model_patches", "audio_encoders")
FOLDER_SOURCES = {"checkpoints": ("CheckpointLoaderSimple", "ckpt_name"), "loras": ("LoraLoader", "lora_name"),
                  "vae": ("VAELoader", "vae_name"), "diffusion_models": ("UNETLoader", "unet_name"),
                  "text_encoders": ("CLIPLoader", "clip_name"), "upscale_models": ("UpscaleModelLoader", "model_name"),
                  "controlnet": ("ControlNetLoader", "control_net_name"),
                  "clip_vision": ("CLIPVisionLoader", "clip_name"),
                  "style_models": ("StyleModelLoader", "style_model_name")}


@bp.get("/object_info")
def object_info() -> Response:
    """The backend's node definitions.
    ---
    get:
      summary: "ComfyUI GET /object_info"
      responses:
        200:
          description: node definitions
          content: {application/json: {schema: ComfyObjectInfo}}
        503: {description: no backend answers}
    """
    return Response(comfy_front().object_info_bytes(), mimetype="application/json")


@bp.get("/object_info/<node_class>")
def object_info_node(node_class: str) -> Response:
    """One node definition, or {}.
    ---
    get:
      summary: "ComfyUI GET /object_info/<class>"
      parameters:
        - {in: path, name: node_class, required: true, schema: {type: string}}
      responses:
        200:
          description: "{class: definition} or {}"
          content: {application/json: {schema: ComfyObjectInfo}}
    """
    info = required_info()
    return jsonify({node_class: info[node_class]} if node_class in info else {})


@bp.get("/system_stats")
def system_stats() -> Response:
    """The backend's versions and devices.
    ---
    get:
      summary: "ComfyUI GET /system_stats"
      responses:
        200:
          description: system stats
          content: {application/json: {schema: ComfySystemStats}}
        503: {description: no backend answers}
    """
    return jsonify(services().client.system_stats())


@bp.get("/features")
def features() -> Response:
    """Server feature flags.
    ---
    get:
      summary: "ComfyUI GET /features"
      responses:
        200:
          description: flags
          content: {application/json: {schema: {type: object}}}
    """
    return jsonify(comfy_front().features())


@bp.get("/embeddings")
def embeddings() -> Response:
    """Embedding names of the backend.
    ---
    get:
      summary: "ComfyUI GET /embeddings"
      responses:
        200:
          description: names
          content: {application/json: {schema: {type: array, items: {type: string}}}}
    """
    client = services().client
    try:
        answer = requests.get(client.base_url + "/embeddings", timeout=5).json()
    except (requests.RequestException, ValueError):
        answer = []
    return jsonify(answer if isinstance(answer, list) else [])


@bp.get("/models")
def models() -> Response:
    """Model folder names.
    ---
    get:
      summary: "ComfyUI GET /models"
      responses:
        200:
          description: folder names
          content: {application/json: {schema: {type: array, items: {type: string}}}}
    """
    return jsonify(list(MODEL_FOLDERS))


@bp.get("/models/<folder>")
def models_in(folder: str) -> Response:
    """Files of one model folder, as object_info lists them.
    ---
    get:
      summary: "ComfyUI GET /models/<folder>"
      parameters:
        - {in: path, name: folder, required: true, schema: {type: string}}
      responses:
        200:
          description: file names
          content: {application/json: {schema: {type: array, items: {type: string}}}}
        404: {description: "unknown folder (no body, as ComfyUI answers)", content: {}}
    """
    if folder not in MODEL_FOLDERS:
        return empty_response(404)
    source = FOLDER_SOURCES.get(folder)
    if source is None:
        return jsonify([])
    return jsonify(sorted(choices(required_info(), *source) or []))


@bp.get("/extensions")
def extensions() -> Response:
    """No frontend extensions.
    ---
    get:
      summary: "ComfyUI GET /extensions"
      responses:
        200:
          description: "[]"
          content: {application/json: {schema: {type: array, items: {type: string}}}}
    """
    return jsonify([])
