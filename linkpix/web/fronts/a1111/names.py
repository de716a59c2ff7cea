"""A1111's names for samplers, schedulers and models, and how they map onto ComfyUI's.

A1111 names a sampler and its noise schedule together ("DPM++ 2M Karras") or, since 1.9, apart
(`sampler_name: "DPM++ 2M"`, `scheduler: "Karras"`); ComfyUI always names them apart (`dpmpp_2m`, `karras`).
The lists A1111 clients ask for are built from what the backend's object_info offers, so a client never
picks a sampler the backend lacks. ComfyUI's own names are accepted as they are.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from linkpix.comfy.objectinfo import named_choices
from linkpix.errors import BadRequest

# A1111 sampler -> ComfyUI sampler (A1111 1.10's list, minus those ComfyUI has no equivalent for).
SAMPLERS: dict[str, str] = {
    "DPM++ 2M": "dpmpp_2m", "DPM++ SDE": "dpmpp_sde", "DPM++ 2M SDE": "dpmpp_2m_sde",
    "DPM++ 2M SDE Heun": "dpmpp_2m_sde", "DPM++ 2S a": "dpmpp_2s_ancestral", "DPM++ 3M SDE": "dpmpp_3m_sde",
    "Euler a": "euler_ancestral", "Euler": "euler", "LMS": "lms", "Heun": "heun", "DPM2": "dpm_2",
    "DPM2 a": "dpm_2_ancestral", "DPM fast": "dpm_fast", "DPM adaptive": "dpm_adaptive", "Restart": "restart",
    "DDIM": "ddim", "DDIM CFG++": "ddim", "UniPC": "uni_pc", "LCM": "lcm", "DDPM": "ddpm",
    "Euler CFG++": "euler_cfg_pp", "Euler a CFG++": "euler_ancestral_cfg_pp", "IPNDM": "ipndm",
    "IPNDM_V": "ipndm_v", "DEIS": "deis",
}
# Older combined names: sampler + schedule in one.
_SUFFIXES = {" Karras": "karras", " Exponential": "exponential", " SGM Uniform": "sgm_uniform"}
# A1111 scheduler label -> ComfyUI scheduler; "Automatic" leaves the workflow's own.
SCHEDULERS: dict[str, str] = {
    "Uniform": "normal", "Karras": "karras", "Exponential": "exponential", "SGM Uniform": "sgm_uniform",
    "KL Optimal": "kl_optimal", "Simple": "simple", "Normal": "normal", "DDIM": "ddim_uniform",
    "Beta": "beta", "Align Your Steps": "align_your_steps",
}
AUTOMATIC = "Automatic"
LATENT_UPSCALE_MODES = ("Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
                        "Latent (nearest)", "Latent (nearest-exact)")
_HASH_SUFFIX = re.compile(r"\s+\[[0-9a-fA-F]{6,64}\]$")


def sampler_names() -> list[str]:
    """Every A1111 sampler name LinkPix knows, alone and with each scheduler suffix ("DPM++ 2M Karras")."""
    return [*SAMPLERS, *(name + suffix for name in SAMPLERS for suffix in _SUFFIXES)]


def sampler_and_scheduler(name: Any, scheduler: Any, info: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """(ComfyUI sampler, ComfyUI scheduler) for A1111's `sampler_name` / `scheduler`; None = keep."""
    comfy_sampler: str | None = None
    comfy_scheduler: str | None = None
    if isinstance(name, str) and name.strip():
        name = name.strip()
        base = name
        for suffix, sched in _SUFFIXES.items():
            if name.endswith(suffix) and name[:-len(suffix)] in SAMPLERS:
                base, comfy_scheduler = name[:-len(suffix)], sched
        known = named_choices(info, "samplers") if info else []
        if base in SAMPLERS:
            comfy_sampler = SAMPLERS[base]
        elif base in known or not known:
            comfy_sampler = base  # ComfyUI's own name (checked by the resolver against the backend)
        else:
            raise BadRequest(f"unknown sampler {name!r}; use one of: {', '.join(a1111_samplers(info))}",
                             {"parameter": "sampler_name"})
    if isinstance(scheduler, str) and scheduler.strip() and scheduler.strip().lower() != AUTOMATIC.lower():
        label = scheduler.strip()
        by_label = {k.lower(): v for k, v in SCHEDULERS.items()}
        comfy_scheduler = by_label.get(label.lower()) or label.lower().replace(" ", "_")
    return comfy_sampler, comfy_scheduler


def a1111_name(sampler: Any) -> str:
    """A1111's name for a ComfyUI sampler (for `info`), or the ComfyUI name when it has none."""
    for a1111, comfy in SAMPLERS.items():
        if comfy == sampler:
            return a1111
    return str(sampler)


def a1111_samplers(info: dict[str, Any] | None) -> list[str]:
    known = set(named_choices(info, "samplers")) if info else set(SAMPLERS.values())
    return [name for name, comfy in SAMPLERS.items() if comfy in known]


def sampler_items(info: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [{"name": name, "aliases": [SAMPLERS[name]], "options": {}} for name in a1111_samplers(info)]


def scheduler_items(info: dict[str, Any] | None) -> list[dict[str, Any]]:
    known = set(named_choices(info, "schedulers")) if info else set(SCHEDULERS.values())
    items = [{"name": "automatic", "label": AUTOMATIC, "aliases": None, "default_rho": -1.0,
              "need_inner_model": False}]
    listed = set()
    for label, comfy in SCHEDULERS.items():
        if comfy in known and comfy not in listed:
            listed.add(comfy)
            items.append({"name": comfy, "label": label, "aliases": None, "default_rho": -1.0,
                          "need_inner_model": False})
    return items


def checkpoints(info: dict[str, Any] | None) -> list[str]:
    if not info:
        return []
    return list(dict.fromkeys([*named_choices(info, "checkpoints"), *named_choices(info, "unets")]))


def model_items(info: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [{"title": name, "model_name": stem(name), "hash": None, "sha256": None, "filename": name,
             "config": None} for name in checkpoints(info)]


def checkpoint_named(name: Any, info: dict[str, Any] | None) -> str:
    """The backend's file for what an A1111 client calls a checkpoint: its title (`x.safetensors`, maybe
    with A1111's ` [hash]`), or its model name without the extension. Unknown names pass through (the
    resolver answers with the list when the backend lacks them)."""
    if not isinstance(name, str):
        raise BadRequest("sd_model_checkpoint must be a model name", {"parameter": "sd_model_checkpoint"})
    name = _HASH_SUFFIX.sub("", name.strip())
    known = checkpoints(info)
    if name in known:
        return name
    for candidate in known:
        if stem(candidate) == name or PurePosixPath(candidate).name == name:
            return candidate
    return name


def vae_items(info: dict[str, Any] | None) -> list[dict[str, str]]:
    names = named_choices(info, "vaes") if info else []
    return [{"model_name": name, "filename": name} for name in names if name != "pixel_space"]


def lora_items(info: dict[str, Any] | None) -> list[dict[str, Any]]:
    names = named_choices(info, "loras") if info else []
    return [{"name": stem(n), "alias": stem(n), "path": n, "metadata": {}} for n in names]


def upscaler_items(info: dict[str, Any] | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{"name": n, "model_name": None, "model_path": None, "model_url": None,
                                    "scale": 4.0} for n in ("None", "Lanczos", "Nearest")]
    spec = ((info or {}).get("UpscaleModelLoader") or {}).get("input", {}).get("required", {})
    models = spec.get("model_name", [[]])[0] if isinstance(spec.get("model_name"), list) else []
    for name in models if isinstance(models, list) else []:
        items.append({"name": stem(name), "model_name": stem(name), "model_path": name, "model_url": None,
                      "scale": 4.0})
    return items


def stem(name: str) -> str:
    base = PurePosixPath(str(name).replace("\\", "/")).name
    return base.rsplit(".", 1)[0] if "." in base else base
