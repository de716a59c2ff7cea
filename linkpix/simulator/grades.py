"""What the simulator's edit models do: a named colour grade, or a visible spatial change — never AI.

An instruction edit (the Kontext and Qwen-Image-Edit graphs) is applied at the model's working resolution:

- a prompt naming a grade gets it: "warm", "cool", "black and white" (or "monochrome"), "teal and orange",
  "faded film", "high contrast", "night". Every grade is a fixed per-pixel colour function, so a 3D LUT can
  reproduce it exactly; `apply_grade` lets tests and the benchmark apply the same grade at full resolution.
- a prompt with "remove" smears a central patch away, one with "add" paints a disc into the picture: edits
  no colour table can explain, as a real model's spatial edits are. Like FLUX.1 Kontext or Qwen-Image-Edit,
  which re-render the whole frame, the rest of the picture then comes back slightly off (`rerender`): a
  colour drift of about ΔE 1.5, a slight blur and fresh noise, so a spatial edit cannot be found by
  looking for pixels that changed at all.
- anything else leaves the picture as it is.

Every edited picture carries a small "SIMULATED" mark in its bottom-right corner (about 0.3 % of a
megapixel). Where it goes matters: LinkPix's LUT extraction drops it as an outlier, and `auto`'s fit counts
it as missed pixels — well under the 2 % that would make it call a colour grade spatial.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

MARK = "SIMULATED"
Grade = Callable[[np.ndarray], np.ndarray]  # float RGB 0..1 (h, w, 3) -> same


def _luma(x: np.ndarray) -> np.ndarray:
    return (x @ np.array([0.2126, 0.7152, 0.0722], dtype=x.dtype))[..., None]


def _warm(x: np.ndarray) -> np.ndarray:
    return x * np.array([1.08, 1.0, 0.84], dtype=x.dtype) + np.array([0.03, 0.01, 0.0], dtype=x.dtype)


def _cool(x: np.ndarray) -> np.ndarray:
    return x * np.array([0.86, 0.97, 1.08], dtype=x.dtype) + np.array([0.0, 0.01, 0.04], dtype=x.dtype)


def _mono(x: np.ndarray) -> np.ndarray:
    return np.repeat(_luma(x), 3, axis=-1)


def _teal_orange(x: np.ndarray) -> np.ndarray:
    lum = _luma(x)
    orange = np.array([1.0, 0.62, 0.25], dtype=x.dtype)
    teal = np.array([0.05, 0.45, 0.55], dtype=x.dtype)
    return 0.78 * x + 0.22 * (lum * orange + (1.0 - lum) * teal)


def _faded(x: np.ndarray) -> np.ndarray:
    mixed = 0.7 * x + 0.3 * _luma(x)
    return 0.09 + 0.82 * mixed + np.array([0.02, 0.0, -0.01], dtype=x.dtype)


def _contrast(x: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(2.4 * (x - 0.5)) / np.tanh(1.2)


def _night(x: np.ndarray) -> np.ndarray:
    return (x ** 1.2) * np.array([0.42, 0.52, 0.78], dtype=x.dtype)


# Looked for in this order, so "black and white" wins over "white" in a longer prompt.
GRADES: dict[str, Grade] = {
    "teal and orange": _teal_orange, "black and white": _mono, "monochrome": _mono, "faded film": _faded,
    "high contrast": _contrast, "warm": _warm, "cool": _cool, "night": _night,
}


def grade_named(prompt: str) -> str | None:
    text = prompt.lower()
    return next((name for name in GRADES if name in text), None)


def apply_grade(pixels: np.ndarray, name: str) -> np.ndarray:
    """A grade applied to RGB uint8 pixels (any size) -> RGB uint8."""
    x = pixels.astype(np.float32) / 255.0
    return np.clip(np.rint(GRADES[name](x) * 255.0), 0, 255).astype(np.uint8)


def spatial_region(size: tuple[int, int], seed: int) -> Image.Image:
    """Where a spatial edit of a picture of `size` changes it ("L", white): a disc placed by the seed.
    Public so that tests can tell what the 'model' changed on purpose from its re-render."""
    w, h = size
    rng = np.random.default_rng(seed)
    cx, cy = int(w * rng.uniform(0.4, 0.6)), int(h * rng.uniform(0.4, 0.6))
    rx, ry = max(4, w // 6), max(4, h // 6)
    region = Image.new("L", size, 0)
    ImageDraw.Draw(region).ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
    return region


def _spatial(img: Image.Image, kind: str, seed: int) -> Image.Image:
    """A region changed in a way no colour table can explain: its pixels change by where they are, not by
    their colour (stripes across an added disc; a smear hatched across a removed object), so even in a
    picture where every colour occurs in one place only, `auto` sees a spatial edit."""
    w, h = img.size
    rx, ry = max(4, w // 6), max(4, h // 6)
    region = spatial_region(img.size, seed)
    y, x = np.mgrid[0:h, 0:w]
    stripes = ((x + y) // max(2, w // 160)) % 2 == 0
    if kind == "remove":  # the object is gone: a smear of its surroundings, hatched
        smear = np.asarray(img.filter(ImageFilter.BoxBlur(max(4, min(rx, ry) // 2)))).astype(np.float32)
        changed = np.where(stripes[..., None], smear * 0.6, smear)
    else:  # something new: a striped disc in colours the picture did not have
        changed = np.where(stripes[..., None], np.array([230, 40, 200], np.float32),
                           np.array([20, 90, 40], np.float32))
    out = Image.fromarray(np.clip(changed, 0, 255).astype(np.uint8))
    return Image.composite(out, img, region)


DRIFT_GAIN = np.array([1.025, 1.0, 0.975], np.float32)  # a slight warm shift: about ΔE 1.5 on a photo
DRIFT_OFFSET = np.array([0.004, 0.002, -0.002], np.float32)
RERENDER_BLUR = 0.7  # Gaussian radius in working-size pixels
RERENDER_NOISE = 1.5  # standard deviation, 0..255 levels


def rerender(img: Image.Image, seed: int) -> Image.Image:
    """The whole frame as an edit model gives it back: drifted in colour, a little softer, with new noise."""
    soft = np.asarray(img.convert("RGB").filter(ImageFilter.GaussianBlur(RERENDER_BLUR))).astype(np.float32)
    noise = np.random.default_rng(seed).normal(0.0, RERENDER_NOISE, soft.shape).astype(np.float32)
    out = soft * DRIFT_GAIN + DRIFT_OFFSET * 255.0 + noise
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))


def mark(img: Image.Image) -> Image.Image:
    """The small 'SIMULATED' mark in the bottom-right corner (height 1/48 of the picture, at least 10 px)."""
    w, h = img.size
    size = max(8, h // 60)
    try:
        font: ImageFont.ImageFont | ImageFont.FreeTypeFont = ImageFont.load_default(size=size)
    except Exception:  # Pillow without FreeType
        font = ImageFont.load_default()
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = draw.textbbox((0, 0), MARK, font=font)
    bw, bh = right - left + 6, max(10, h // 48)
    x0, y0 = max(0, w - bw), max(0, h - bh)
    draw.rectangle([x0, y0, w, h], fill=(0, 0, 0))
    draw.text((x0 + 3 - left, y0 + (bh - (bottom - top)) // 2 - top), MARK, fill=(255, 230, 0), font=font)
    return img


def edit(img: Image.Image, prompt: str, seed: int) -> Image.Image:
    """What an instruction-edit model 'does' to `img` for `prompt` (see the module docstring)."""
    rgb = img.convert("RGB")
    text = prompt.lower()
    name = grade_named(text)
    if name is not None:
        rgb = Image.fromarray(apply_grade(np.asarray(rgb), name))
    for kind in ("remove", "add"):
        if kind in text.split() or f"{kind} " in text:
            rgb = _spatial(rerender(rgb, seed), kind, seed)
            break
    return mark(rgb)
