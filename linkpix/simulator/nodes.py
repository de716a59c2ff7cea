"""What simulated nodes do. Plausible, cheap, and honest: no model ever runs.

Values on links: IMAGE = list of RGB PIL images, MASK = list of "L" images, LATENT = `Latent` (size,
batch, and - after a sampler - seed and prompt text), models/conditioning/noise/guiders/sigmas =
`Token` with a few attributes. Classes without a handler get a generic behaviour chosen by output type,
so every declared node runs.
"""

from __future__ import annotations

import json
import os
import random
import string
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageFilter, ImageOps

from linkpix.simulator import grades
from linkpix.simulator import images as im
from linkpix.simulator.audio import read_audio, save_audio
from linkpix.simulator.editnodes import EditNodes
from linkpix.simulator.validation import annotated_filepath
from linkpix.simulator.values import Images, Latent, Token

SAMPLERS = {"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"}
TEXT_KEYS = ("text", "text_g", "t5xxl", "clip_l", "prompt", "text_l")


def _linked(inputs: dict[str, Any], type_name: str, types: dict[str, Any]) -> list[Any]:
    return [inputs[k] for k, t in types.items() if t == type_name and k in inputs]


def _text_of(value: Any) -> str:
    if isinstance(value, Token):
        return str(value.attrs.get("text", ""))
    return ""


def _size(img: Image.Image, width: int, height: int) -> tuple[int, int]:
    w, h = img.size
    if width == 0 and height == 0:
        return w, h
    if width == 0:
        width = max(1, round(w * height / h))
    if height == 0:
        height = max(1, round(h * width / w))
    return width, height


def _decode(latent: Latent) -> Images:
    w, h = max(8, latent.width // 8 * 8), max(8, latent.height // 8 * 8)
    out = Images()
    for i in range(max(1, latent.batch)):
        if latent.seed is None:
            if latent.image:
                pic = latent.image[i % len(latent.image)].resize((w, h))
            else:
                pic = Image.new("RGB", (w, h), (128, 118, 108))
        elif latent.edit and latent.image:  # an instruction edit, at the model's working size
            src = latent.image[i % len(latent.image)].convert("RGB")
            pic = grades.edit(src if src.size == (w, h) else src.resize((w, h)), latent.text, latent.seed + i)
        else:
            pic = im.render_picture(w, h, latent.seed, latent.text, i)
            if latent.image and (latent.denoise < 1.0 or latent.mask):
                src = latent.image[i % len(latent.image)].convert("RGB").resize((w, h))
                if latent.mask:  # inpainting: the new picture only inside the mask
                    pic = grades.mark(Image.composite(pic, src, latent.mask[i % len(latent.mask)].resize((w, h))))
                else:
                    pic = Image.blend(src, pic, max(0.0, min(1.0, latent.denoise)))
        out.append(pic)
    return out


def _to_rgb(img: Image.Image) -> Image.Image:
    return img.convert("RGB") if img.mode != "RGB" else img


class NodeRunner(EditNodes):
    """Runs one node class on its resolved inputs; `ctx` gives folders, progress and fault settings."""

    def run(self, ctx: Any, class_type: str, inputs: dict[str, Any],
            info: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any] | None]:
        if class_type in SAMPLERS:
            return (self.sample(ctx, class_type, inputs),), None
        handler = getattr(self, "n_" + class_type, None)
        if handler is not None:
            result = handler(ctx, **inputs)
            if isinstance(result, dict):
                return tuple(result.get("result", ())), result.get("ui")
            return result, None
        return self.generic(class_type, inputs, info), None

    # -- samplers ----------------------------------------------------------------------------
    def sample(self, ctx: Any, class_type: str, inputs: dict[str, Any]) -> Latent:
        latent = inputs.get("latent_image")
        if not isinstance(latent, Latent):
            latent = Latent(512, 512)
        denoise = float(inputs.get("denoise", 1.0))
        if class_type == "KSampler":
            seed, steps = inputs.get("seed", 0), int(inputs.get("steps", 1))
            text = _text_of(inputs.get("positive"))
        elif class_type == "KSamplerAdvanced":
            seed, total = inputs.get("noise_seed", 0), int(inputs.get("steps", 1))
            steps = max(0, min(int(inputs.get("end_at_step", total)), total) - int(inputs.get("start_at_step", 0)))
            text = _text_of(inputs.get("positive"))
        elif class_type == "SamplerCustom":
            seed = inputs.get("noise_seed", 0)
            steps = int(getattr(inputs.get("sigmas"), "attrs", {}).get("steps", 1))
            text = _text_of(inputs.get("positive"))
        else:
            noise, guider = inputs.get("noise"), inputs.get("guider")
            seed = getattr(noise, "attrs", {}).get("seed", 0)
            steps = int(getattr(inputs.get("sigmas"), "attrs", {}).get("steps", 1))
            text = _text_of(guider)
        cond = inputs.get("guider") if class_type == "SamplerCustomAdvanced" else inputs.get("positive")
        edit = bool(getattr(cond, "attrs", {}).get("edit"))
        out = replace(latent, seed=int(seed), text=text, denoise=denoise, edit=edit and latent.image is not None)
        final = _decode(out)[0] if ctx.previews else None
        start = Image.new("RGB", final.size, (128, 128, 128)) if final is not None else None
        for step in range(1, steps + 1):
            ctx.wait_step()
            preview = None
            if final is not None and start is not None:
                picture = Image.blend(start, final, step / steps)
                if ctx.run.state.faults.noisy_previews:
                    picture = im.with_noise(picture, 1.0 - step / steps)
                preview = ("JPEG", im.preview_jpeg(picture))
            ctx.progress(step, steps, preview)
        return out

    # -- generic -----------------------------------------------------------------------------
    def generic(self, class_type: str, inputs: dict[str, Any], info: dict[str, Any]) -> tuple[Any, ...]:
        declared: dict[str, Any] = {}
        for section in ("required", "optional"):
            for name, spec in info.get("input", {}).get(section, {}).items():
                declared[name] = spec[0]
        outs = []
        for t in info.get("output", []):
            outs.append(self._generic_output(class_type, str(t), inputs, declared))
        return tuple(outs)

    def _generic_output(self, cls: str, t: str, inputs: dict[str, Any], declared: dict[str, Any]) -> Any:
        same = _linked(inputs, t, declared)
        if t == "CONDITIONING":
            for key in ("conditioning", "positive", "conditioning_to", "conditioning_1", "cond1"):
                if isinstance(inputs.get(key), Token):
                    return inputs[key]
            if same:
                return same[0]
            for key in TEXT_KEYS:
                if isinstance(inputs.get(key), str):
                    return Token(t, cls, {"text": inputs[key]})
            texts = [v for v in inputs.values() if isinstance(v, str)]
            return Token(t, cls, {"text": texts[0] if texts else ""})
        if t == "LATENT":
            if same and isinstance(same[0], Latent):
                return replace(same[0])
            return Latent(int(inputs.get("width", 512)), int(inputs.get("height", 512)),
                          int(inputs.get("batch_size", inputs.get("batch", 1))))
        if t == "IMAGE":
            if same:
                return same[0]
            latents = _linked(inputs, "LATENT", declared)
            if latents and isinstance(latents[0], Latent):
                return _decode(latents[0])
            return Images([Image.new("RGB", (64, 64), (128, 128, 128))])
        if t == "MASK":
            if same:
                return same[0]
            pics = _linked(inputs, "IMAGE", declared)
            if pics:
                return Images([p.convert("L") for p in pics[0]])
            return Images([Image.new("L", (64, 64), 0)])
        if t in ("INT", "FLOAT", "STRING", "BOOLEAN"):
            caster = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}[t]
            if "value" in inputs:
                try:
                    return caster(inputs["value"])
                except (TypeError, ValueError):
                    pass
            return caster()
        if t == "NOISE":
            return Token(t, cls, {"seed": int(inputs.get("noise_seed", inputs.get("seed", 0)) or 0)})
        if t == "GUIDER":
            cond = inputs.get("positive", inputs.get("conditioning", inputs.get("cond1")))
            return Token(t, cls, {"text": _text_of(cond), "edit": getattr(cond, "attrs", {}).get("edit", False)})
        if t == "SIGMAS":
            if same and isinstance(same[0], Token):
                return same[0]
            return Token(t, cls, {"steps": int(inputs.get("steps", 1) or 1)})
        if same:
            return same[0]
        names = {k: v for k, v in inputs.items() if isinstance(v, str)}
        return Token(t, cls, names)

    # -- image nodes -------------------------------------------------------------------------
    def n_EmptyImage(self, ctx: Any, width: int, height: int, batch_size: int = 1, color: int = 0) -> tuple[Any, ...]:
        rgb = ((color >> 16) & 255, (color >> 8) & 255, color & 255)
        return (Images(Image.new("RGB", (width, height), rgb) for _ in range(batch_size)),)

    def _load(self, ctx: Any, image: str) -> Image.Image:
        name, base = annotated_filepath(image, ctx.dirs)
        path = os.path.join(base if base is not None else ctx.dirs["input"], name)
        img = Image.open(path)
        img.load()
        return img

    def n_LoadImage(self, ctx: Any, image: str) -> tuple[Any, ...]:
        img = self._load(ctx, image)
        frames, masks = Images(), Images()
        for index in range(getattr(img, "n_frames", 1)):
            img.seek(index)
            frame = ImageOps.exif_transpose(img) if index == 0 else img.copy()
            if frame.size != (frames[0].size if frames else frame.size):
                continue
            frames.append(_to_rgb(frame.convert("RGBA")) if "A" in frame.getbands() else _to_rgb(frame))
            if "A" in frame.getbands():
                masks.append(ImageOps.invert(frame.getchannel("A")))
            else:
                masks.append(Image.new("L", (64, 64), 0))
        return frames, masks

    def n_LoadImageOutput(self, ctx: Any, image: str) -> tuple[Any, ...]:
        return self.n_LoadImage(ctx, image if image.endswith("]") else image + " [output]")

    def n_LoadImageMask(self, ctx: Any, image: str, channel: str = "alpha") -> tuple[Any, ...]:
        img = self._load(ctx, image).convert("RGBA")
        band = {"red": "R", "green": "G", "blue": "B", "alpha": "A"}.get(channel, "A")
        mask = img.getchannel(band)
        return (Images([ImageOps.invert(mask) if band == "A" else mask]),)

    def n_ImageInvert(self, ctx: Any, image: Images) -> tuple[Any, ...]:
        return (Images(ImageOps.invert(_to_rgb(i)) for i in image),)

    def n_ImageScale(self, ctx: Any, image: Images, upscale_method: str = "nearest-exact", width: int = 512,
                     height: int = 512, crop: str = "disabled") -> tuple[Any, ...]:
        return (Images(i.resize(_size(i, width, height)) for i in image),)

    def n_ImageScaleBy(self, ctx: Any, image: Images, upscale_method: str = "nearest-exact",
                       scale_by: float = 1.0) -> tuple[Any, ...]:
        return (Images(i.resize((max(1, round(i.width * scale_by)), max(1, round(i.height * scale_by))))
                       for i in image),)

    def n_ImageCrop(self, ctx: Any, image: Images, width: int, height: int, x: int = 0, y: int = 0) -> tuple[Any, ...]:
        out = Images()
        for i in image:
            x0, y0 = min(x, i.width - 1), min(y, i.height - 1)
            out.append(i.crop((x0, y0, min(i.width, x0 + width), min(i.height, y0 + height))))
        return (out,)

    def n_ImageBlur(self, ctx: Any, image: Images, blur_radius: int = 1, sigma: float = 1.0) -> tuple[Any, ...]:
        return (Images(i.filter(ImageFilter.GaussianBlur(min(float(sigma), float(blur_radius)))) for i in image),)

    def n_ImageSharpen(self, ctx: Any, image: Images, sharpen_radius: int = 1, sigma: float = 1.0,
                       alpha: float = 1.0) -> tuple[Any, ...]:
        return (Images(i.filter(ImageFilter.UnsharpMask(sharpen_radius, int(alpha * 100))) for i in image),)

    def n_ImageFlip(self, ctx: Any, image: Images, flip_method: str = "") -> tuple[Any, ...]:
        op = ImageOps.flip if flip_method.startswith("x") else ImageOps.mirror
        return (Images(op(i) for i in image),)

    def n_ImageRotate(self, ctx: Any, image: Images, rotation: str = "none") -> tuple[Any, ...]:
        angle = {"90 degrees": 270, "180 degrees": 180, "270 degrees": 90}.get(rotation, 0)
        return (Images(i.rotate(angle, expand=True) for i in image),)

    def n_ImageBatch(self, ctx: Any, image1: Images, image2: Images) -> tuple[Any, ...]:
        size = image1[0].size
        return (Images(list(image1) + [i.resize(size) for i in image2]),)

    def n_ImageBlend(self, ctx: Any, image1: Images, image2: Images, blend_factor: float = 0.5,
                     blend_mode: str = "normal") -> tuple[Any, ...]:
        out = Images()
        for index, a in enumerate(image1):
            b = image2[index % len(image2)].convert("RGB").resize(a.size)
            out.append(Image.blend(_to_rgb(a), b, float(blend_factor)))
        return (out,)

    def n_ImageQuantize(self, ctx: Any, image: Images, colors: int = 256, dither: str = "none") -> tuple[Any, ...]:
        methods = {"none": Image.Dither.NONE, "floyd-steinberg": Image.Dither.FLOYDSTEINBERG}
        if dither not in methods and not dither.startswith("bayer-"):
            raise KeyError(dither)
        mode = methods.get(dither, Image.Dither.ORDERED)
        return (Images(_to_rgb(i).quantize(colors=colors, dither=mode).convert("RGB") for i in image),)

    def n_SolidMask(self, ctx: Any, value: float = 1.0, width: int = 512, height: int = 512) -> tuple[Any, ...]:
        return (Images([Image.new("L", (width, height), int(round(value * 255)))]),)

    def n_MaskToImage(self, ctx: Any, mask: Images) -> tuple[Any, ...]:
        return (Images(m.convert("RGB") for m in mask),)

    def n_ImageToMask(self, ctx: Any, image: Images, channel: str = "red") -> tuple[Any, ...]:
        band = {"red": "R", "green": "G", "blue": "B", "alpha": "A"}.get(channel, "R")
        return (Images(i.convert("RGBA").getchannel(band) for i in image),)

    def n_StringConcatenate(self, ctx: Any, string_a: str = "", string_b: str = "",
                            delimiter: str = "") -> tuple[Any, ...]:
        return (f"{string_a}{delimiter}{string_b}",)

    # -- latent nodes ------------------------------------------------------------------------
    def n_VAEEncode(self, ctx: Any, pixels: Images, vae: Any = None) -> tuple[Any, ...]:
        w, h = pixels[0].size
        return (Latent(w, h, len(pixels), image=list(pixels)),)

    def n_LatentUpscale(self, ctx: Any, samples: Latent, upscale_method: str = "", width: int = 0,
                        height: int = 0, crop: str = "disabled") -> tuple[Any, ...]:
        if width == 0 and height == 0:
            return (samples,)
        w = width or max(8, round(samples.width * height / samples.height))
        h = height or max(8, round(samples.height * width / samples.width))
        return (replace(samples, width=w, height=h),)

    def n_LatentUpscaleBy(self, ctx: Any, samples: Latent, upscale_method: str = "",
                          scale_by: float = 1.0) -> tuple[Any, ...]:
        return (replace(samples, width=round(samples.width * scale_by), height=round(samples.height * scale_by)),)

    def n_VAEDecode(self, ctx: Any, samples: Latent, vae: Any = None) -> tuple[Any, ...]:
        return (_decode(samples),)

    def n_VAEDecodeTiled(self, ctx: Any, samples: Latent, vae: Any = None, **_: Any) -> tuple[Any, ...]:
        return (_decode(samples),)

    # -- outputs -----------------------------------------------------------------------------
    def n_SaveImage(self, ctx: Any, images: Images, filename_prefix: str = "ComfyUI", prompt: Any = None,
                    extra_pnginfo: Any = None) -> dict[str, Any]:
        saved = im.save_images(list(images), filename_prefix, ctx.dirs["output"], "output", prompt, extra_pnginfo, 4)
        return {"ui": {"images": saved}}

    def n_PreviewImage(self, ctx: Any, images: Images, prompt: Any = None, extra_pnginfo: Any = None) -> dict[str, Any]:
        suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
        saved = im.save_images(list(images), f"ComfyUI_temp_{suffix}", ctx.dirs["temp"], "temp", prompt,
                               extra_pnginfo, 1)
        return {"ui": {"images": saved}}

    def n_PreviewAny(self, ctx: Any, source: Any = None) -> dict[str, Any]:
        if isinstance(source, str):
            text = source
        else:
            try:
                text = json.dumps(source, indent=4)
            except (TypeError, ValueError):
                text = str(source)
        return {"ui": {"text": [text]}}

    def n_CreateVideo(self, ctx: Any, images: Images, fps: float = 30.0, audio: Any = None) -> tuple[Any, ...]:
        return ((list(images), fps),)

    def n_SaveVideo(self, ctx: Any, video: Any, filename_prefix: str = "video/ComfyUI", format: str = "auto",
                    codec: str = "auto") -> dict[str, Any]:
        frames, _fps = video
        return {"ui": {"images": [im.save_video(frames, filename_prefix, ctx.dirs["output"])], "animated": (True,)}}

    def n_EmptyAudio(self, ctx: Any, duration: float = 60.0, sample_rate: int = 44100,
                     channels: int = 2) -> tuple[Any, ...]:
        return ({"seconds": duration, "sample_rate": sample_rate, "channels": channels, "batch": 1},)

    def n_LoadAudio(self, ctx: Any, audio: str) -> tuple[Any, ...]:
        name, base = annotated_filepath(audio, ctx.dirs)
        return (read_audio(Path(base if base is not None else ctx.dirs["input"]) / name),)

    def n_SaveAudio(self, ctx: Any, audio: dict[str, Any], filename_prefix: str = "audio/ComfyUI", prompt: Any = None,
                    extra_pnginfo: Any = None) -> dict[str, Any]:
        return {"ui": {"audio": save_audio(audio, filename_prefix, ctx.dirs["output"])}}

    def n_SaveImageWebsocket(self, ctx: Any, images: Images) -> dict[str, Any]:
        for index, img in enumerate(images):
            ctx.progress(index, len(images), ("PNG", im.png_bytes(img)))
        return {"ui": {}}
