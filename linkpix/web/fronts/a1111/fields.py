"""The types of an A1111 txt2img/img2img body, checked before anything reads it.

A1111's FastAPI models refuse a field of the wrong type with 422; LinkPix read some of them only when they
had the right type and skipped them otherwise, so `"scheduler": 5` or `"override_settings": []` was
accepted and silently ignored. Every field may be null (A1111's models make them Optional): null is "not
given". Unknown fields are left to the route (ignored, and named in X-LinkPix-Ignored).
"""

from __future__ import annotations

from typing import Any

from linkpix.errors import BadRequest

_TEXT = ("negative_prompt", "sampler_name", "sampler_index", "scheduler", "workflow", "char", "mask")
_WHOLE = ("seed", "steps", "width", "height", "batch_size", "n_iter", "clip_skip", "inpainting_mask_invert")
_NUMBER = ("cfg_scale", "denoising_strength")
_FLAG = ("enable_hr", "include_init_images")
_LISTS = ("styles", "init_images")


def check_types(body: dict[str, Any]) -> None:
    """400 naming the first field whose value has the wrong type."""
    for name in _TEXT:
        _expect(body, name, isinstance(body.get(name), str), "a string")
    for name in _WHOLE:
        value = body.get(name)
        _expect(body, name, isinstance(value, int) and not isinstance(value, bool), "a whole number")
    for name in _NUMBER:
        value = body.get(name)
        _expect(body, name, isinstance(value, int | float) and not isinstance(value, bool), "a number")
    for name in _FLAG:
        _expect(body, name, isinstance(body.get(name), bool), "true or false")
    for name in _LISTS:
        value = body.get(name)
        _expect(body, name, isinstance(value, list) and all(isinstance(v, str) for v in value), "a list of strings")
    _expect(body, "override_settings", isinstance(body.get("override_settings"), dict), "an object")
    override = body.get("override_settings") or {}
    for name in ("sd_model_checkpoint", "sd_vae"):  # the settings LinkPix reads from it; others are ignored
        _expect(override, name, isinstance(override.get(name), str), "a string", "override_settings.")
    value = override.get("CLIP_stop_at_last_layers")
    _expect(override, "CLIP_stop_at_last_layers", isinstance(value, int) and not isinstance(value, bool),
            "a whole number", "override_settings.")


def _expect(body: dict[str, Any], name: str, ok: bool, kind: str, where: str = "") -> None:
    if body.get(name) is not None and not ok:
        raise BadRequest(f"{where}{name} must be {kind} (got {type(body[name]).__name__})",
                         {"parameter": where + name})
