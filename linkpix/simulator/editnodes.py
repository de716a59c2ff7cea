"""The simulator's nodes for image edits: scaling to the model's size, reference conditioning, inpainting.

Every class here is in ComfyUI 0.3.64's object_info (the simulator's catalogue), so the catalogue needed
no additions: `FluxKontextImageScale` and `ReferenceLatent` (comfy_extras/nodes_flux.py, nodes_edit_model.py),
`TextEncodeQwenImageEdit` (nodes_qwen.py), `ImageStitch`, `ImageScaleToTotalPixels`, and the inpainting
nodes `VAEEncodeForInpaint`, `InpaintModelConditioning`, `SetLatentNoiseMask` (nodes.py). Their
behaviour follows those sources: sizes are computed the same way, pictures and masks are carried through,
and a conditioning that has seen a reference image is marked as an edit (what the sampler then does is in
grades.py).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from PIL import Image

from linkpix.simulator.values import Images, Latent, Token

# comfy_extras/nodes_flux.py PREFERED_KONTEXT_RESOLUTIONS (width, height)
KONTEXT_SIZES = (
    (672, 1568), (688, 1504), (720, 1456), (752, 1392), (800, 1328), (832, 1248), (880, 1184), (944, 1104),
    (1024, 1024), (1104, 944), (1184, 880), (1248, 832), (1328, 800), (1392, 752), (1456, 720), (1504, 688),
    (1568, 672),
)


def _edit_token(cond: Any, source: str, text: str | None = None) -> Token:
    attrs = dict(getattr(cond, "attrs", {}))
    if text is not None:
        attrs["text"] = text
    attrs["edit"] = True
    return Token("CONDITIONING", source, attrs)


def _l_masks(mask: Any) -> list[Image.Image]:
    return [m.convert("L") for m in mask] if mask else []


class EditNodes:
    def n_FluxKontextImageScale(self, ctx: Any, image: Images) -> tuple[Any, ...]:
        out = Images()
        for img in image:
            aspect = img.width / img.height
            size = min(KONTEXT_SIZES, key=lambda s: abs(aspect - s[0] / s[1]))
            out.append(img if img.size == size else img.resize(size, Image.Resampling.LANCZOS))
        return (out,)

    def n_ImageScaleToTotalPixels(self, ctx: Any, image: Images, upscale_method: str = "lanczos",
                                  megapixels: float = 1.0) -> tuple[Any, ...]:
        out = Images()
        for img in image:
            scale = math.sqrt(megapixels * 1024 * 1024 / (img.width * img.height))
            size = (round(img.width * scale), round(img.height * scale))
            out.append(img if img.size == size else img.resize(size, Image.Resampling.LANCZOS))
        return (out,)

    def n_ImageStitch(self, ctx: Any, image1: Images, direction: str = "right", match_image_size: bool = True,
                      spacing_width: int = 0, spacing_color: str = "white", image2: Images | None = None
                      ) -> tuple[Any, ...]:
        if not image2:
            return (image1,)
        out = Images()
        for index, a in enumerate(image1):
            b = image2[index % len(image2)]
            horizontal = direction in ("right", "left")
            if match_image_size:
                b = b.resize((round(b.width * a.height / b.height), a.height) if horizontal
                             else (a.width, round(b.height * a.width / b.width)))
            first, second = (a, b) if direction in ("right", "down") else (b, a)
            size = ((first.width + second.width, max(first.height, second.height)) if horizontal
                    else (max(first.width, second.width), first.height + second.height))
            canvas = Image.new("RGB", size, spacing_color)
            canvas.paste(first, (0, 0))
            canvas.paste(second, (first.width, 0) if horizontal else (0, first.height))
            out.append(canvas)
        return (out,)

    def n_ReferenceLatent(self, ctx: Any, conditioning: Any, latent: Latent | None = None) -> tuple[Any, ...]:
        return (_edit_token(conditioning, "ReferenceLatent") if latent is not None else conditioning,)

    def n_TextEncodeQwenImageEdit(self, ctx: Any, clip: Any, prompt: str, vae: Any = None,
                                  image: Images | None = None) -> tuple[Any, ...]:
        if image is None:
            return (Token("CONDITIONING", "TextEncodeQwenImageEdit", {"text": prompt}),)
        return (_edit_token(None, "TextEncodeQwenImageEdit", prompt),)

    def n_VAEEncodeForInpaint(self, ctx: Any, pixels: Images, vae: Any, mask: Any,
                              grow_mask_by: int = 6) -> tuple[Any, ...]:
        w, h = pixels[0].width // 8 * 8, pixels[0].height // 8 * 8
        return (Latent(w, h, len(pixels), image=list(pixels), mask=_l_masks(mask)),)

    def n_InpaintModelConditioning(self, ctx: Any, positive: Any, negative: Any, vae: Any, pixels: Images,
                                   mask: Any, noise_mask: bool = True) -> tuple[Any, ...]:
        w, h = pixels[0].width // 8 * 8, pixels[0].height // 8 * 8
        return positive, negative, Latent(w, h, len(pixels), image=list(pixels), mask=_l_masks(mask))

    def n_SetLatentNoiseMask(self, ctx: Any, samples: Latent, mask: Any) -> tuple[Any, ...]:
        return (replace(samples, mask=_l_masks(mask)),)
