"""The node catalogue: ComfyUI 0.3.64's /object_info, with model and input-file lists made live.

The catalogue is protocol data captured from a real server (data/object_info.json.gz, 478 classes), so
the simulator validates any standard workflow exactly as ComfyUI would. Only the combo lists that a real
server fills from its folders (checkpoints, LoRAs, VAEs, input images...) are substituted, from the fake
model lists and the simulator's own input folder.
"""

from __future__ import annotations

import copy
import gzip
import json
import mimetypes
import os
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"

# ComfyUI's model folder names, in the order GET /models lists them (captures/models.json).
MODEL_FOLDERS: tuple[str, ...] = (
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
    "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen", "upscale_models",
    "custom_nodes", "hypernetworks", "photomaker", "classifiers", "model_patches", "audio_encoders",
)

CONFIG_FILES: list[str] = [
    "anything_v3.yaml", "v1-inference.yaml", "v1-inference_clip_skip_2.yaml",
    "v1-inference_clip_skip_2_fp16.yaml", "v1-inference_fp16.yaml", "v1-inpainting-inference.yaml",
    "v2-inference-v.yaml", "v2-inference-v_fp32.yaml", "v2-inference.yaml", "v2-inference_fp32.yaml",
    "v2-inpainting-inference.yaml",
]

DEFAULT_MODELS: dict[str, list[str]] = {
    "checkpoints": ["v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors",
                    "flux1-schnell-fp8.safetensors", "demo.safetensors"],
    "diffusion_models": ["flux1-schnell.safetensors", "flux1-dev-kontext_fp8_scaled.safetensors",
                         "qwen_image_edit_fp8_e4m3fn.safetensors"],
    "vae": ["ae.safetensors", "sdxl_vae.safetensors", "qwen_image_vae.safetensors"],
    "loras": ["add_detail.safetensors", "pixel-art-xl.safetensors"],
    "text_encoders": ["clip_l.safetensors", "t5xxl_fp8_e4m3fn.safetensors", "t5xxl_fp8_e4m3fn_scaled.safetensors",
                      "qwen_2.5_vl_7b_fp8_scaled.safetensors"],
    "configs": CONFIG_FILES,
}

# (class, input) -> model folder whose file list fills that combo.
FOLDER_INPUTS: dict[tuple[str, str], str] = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "ckpt_name"): "checkpoints",
    ("unCLIPCheckpointLoader", "ckpt_name"): "checkpoints",
    ("ImageOnlyCheckpointLoader", "ckpt_name"): "checkpoints",
    ("CreateHookModelAsLora", "ckpt_name"): "checkpoints",
    ("CreateHookModelAsLoraModelOnly", "ckpt_name"): "checkpoints",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("CreateHookLora", "lora_name"): "loras",
    ("CreateHookLoraModelOnly", "lora_name"): "loras",
    ("VAELoader", "vae_name"): "vae",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name1"): "text_encoders",
    ("TripleCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name1"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name2"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name4"): "text_encoders",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("DiffControlNetLoader", "control_net_name"): "controlnet",
    ("StyleModelLoader", "style_model_name"): "style_models",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("GLIGENLoader", "gligen_name"): "gligen",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("HypernetworkLoader", "hypernetwork_name"): "hypernetworks",
    ("PhotoMakerLoader", "photomaker_model_name"): "photomaker",
    ("ModelPatchLoader", "name"): "model_patches",
}
# (class, input) -> the kinds of file (MIME majors) of the input folder its list shows, as ComfyUI filters them
INPUT_FILE_INPUTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("LoadImage", "image"): ("image",), ("LoadImageMask", "image"): ("image",),
    ("LoadAudio", "audio"): ("audio", "video"),  # audio.py's; folder_paths.filter_files_content_types
}
LIVE_CLASSES = {cls for cls, _ in FOLDER_INPUTS} | {cls for cls, _ in INPUT_FILE_INPUTS}


def load_object_info() -> dict[str, Any]:
    """The captured /object_info of ComfyUI 0.3.64 (fresh copy per call: callers own it)."""
    with gzip.open(DATA_DIR / "object_info.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


def list_input_images(input_dir: Path, kinds: tuple[str, ...] = ("image",)) -> list[str]:
    """Top-level files of the input folder with an image MIME type (or of `kinds`), sorted (LoadImage's list)."""
    try:
        names = [n for n in os.listdir(input_dir) if (input_dir / n).is_file()]
    except OSError:
        return []
    out = []
    for name in names:
        mime = mimetypes.guess_type(name)[0]
        if mime and mime.split("/")[0] in kinds:
            out.append(name)
    return sorted(out)


class Catalogue:
    """Node definitions plus the fake model lists of one simulator instance."""

    def __init__(self, input_dir: Path, models: dict[str, list[str]] | None = None,
                 extra: dict[str, dict[str, Any]] | None = None) -> None:
        """`extra`: classes a stock ComfyUI has that the captured one lacked (the audio nodes: audio.py)."""
        self.input_dir = input_dir
        merged = {name: [] for name in MODEL_FOLDERS}
        for name, files in DEFAULT_MODELS.items():
            merged[name] = list(files)
        for name, files in (models or {}).items():
            merged[name] = list(files)
        self.models: dict[str, list[str]] = {k: sorted(v) for k, v in merged.items()}
        self._base = load_object_info()
        self._base.update(copy.deepcopy(extra or {}))

    def has_class(self, class_type: Any) -> bool:
        return isinstance(class_type, str) and class_type in self._base

    def folder_files(self, folder: str) -> list[str] | None:
        """Sorted file list of a model folder, or None when ComfyUI does not know the folder."""
        if folder not in self.models:
            return None
        return list(self.models[folder])

    def embeddings(self) -> list[str]:
        return [os.path.splitext(n)[0] for n in self.models.get("embeddings", [])]

    def _live_list(self, class_type: str, name: str) -> list[str] | None:
        folder = FOLDER_INPUTS.get((class_type, name))
        if folder is not None:
            files = list(self.models.get(folder, []))
            if class_type == "VAELoader":
                files.append("pixel_space")
            return files
        if (class_type, name) in INPUT_FILE_INPUTS:
            return list_input_images(self.input_dir, INPUT_FILE_INPUTS[class_type, name])
        return None

    def class_info(self, class_type: str) -> dict[str, Any] | None:
        """One class's object_info entry with live lists (a copy when substituted, else shared)."""
        info = self._base.get(class_type)
        if info is None or class_type not in LIVE_CLASSES:
            return info
        info = copy.deepcopy(info)
        for section in ("required", "optional"):
            for name, spec in info["input"].get(section, {}).items():
                live = self._live_list(class_type, name)
                if live is None:
                    continue
                if isinstance(spec[0], list):
                    spec[0] = live
                elif spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
                    spec[1]["options"] = live
        return info

    def all_info(self) -> dict[str, Any]:
        """The whole /object_info body, computed live like ComfyUI does on every call."""
        return {cls: self.class_info(cls) for cls in self._base}

    def is_output_node(self, class_type: str) -> bool:
        return bool(self._base[class_type].get("output_node"))

    def return_types(self, class_type: str) -> tuple[Any, ...]:
        return tuple(self._base[class_type].get("output", []))
