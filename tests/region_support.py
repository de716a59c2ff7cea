"""What the region tests and bench/edit_region.py measure: a photo with fine detail, and how a region edit's
result compares with the source outside the changed region and with the model's pixels inside it.

The changed region's truth comes from the simulator (`grades.spatial_region`, the disc its 'model' draws)
and its 'SIMULATED' corner mark, never from the mask LinkPix found, so a mask that grew over the whole
picture would fail the detail check instead of passing it vacuously.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

from linkpix.edit.fit import delta_e
from linkpix.simulator import grades

SEAM = 8  # working-size pixels around the disc left out of "outside"


def detailed_photo(width: int, height: int, seed: int = 5) -> Image.Image:
    """Smooth colour fields with fine texture and noise at full resolution (what upscaling cannot give)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    out = np.empty((height, width, 3), np.uint8)
    texture = 7.0 * np.sin(np.arange(width, dtype=np.float32) * 1.3)[None, :] * np.cos(
        np.arange(height, dtype=np.float32) * 0.9)[:, None]
    for c, (a, b) in enumerate(((60, 150), (80, 110), (170, -90))):
        channel = a + b * (x * 0.6 + y * 0.4) + 30 * np.sin(6 * x + 3 * c) * np.cos(4 * y) + texture
        channel += rng.normal(0.0, 3.0, (height, width)).astype(np.float32)
        out[..., c] = np.clip(channel, 0, 255).astype(np.uint8)
    return Image.fromarray(out)


def jpeg(img: Image.Image, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92, **options)
    return buf.getvalue()


def truth(full: tuple[int, int], working: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(inside, outside) boolean masks at full size: the simulator's disc shrunk by two working-size pixels,
    and everything farther than SEAM working-size pixels from the disc and from the corner mark (the seam
    is grown and feathered, and the model's blur spreads the disc's edge)."""
    disc = np.asarray(grades.spatial_region(working, seed)) > 127
    inside = ndimage.distance_transform_edt(disc) > 2
    near = ndimage.distance_transform_edt(~disc) <= SEAM
    mark_h = max(10, working[1] // 48) + SEAM
    near[-mark_h:, -working[0] // 3:] = True  # the model's 'SIMULATED' mark: a real change of its own

    def up(mask: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(full, Image.Resampling.NEAREST)) > 127
    return up(inside), ~up(near)


def high_pass_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the fine detail (luma minus a Gaussian blur of sigma 2) of two crops."""
    def detail(x: np.ndarray) -> np.ndarray:
        luma = x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return (luma - ndimage.gaussian_filter(luma, 2.0)).ravel()
    return float(np.corrcoef(detail(a), detail(b))[0, 1])


def figures(source: np.ndarray, result: np.ndarray, model: Image.Image, seed: int, step: int = 4
            ) -> dict[str, float]:
    """Outside: mean CIEDE2000 to the source and the worst high-pass correlation of four crops; inside:
    mean CIEDE2000 to the model's pixels (upscaled bicubic, as LinkPix does), on a regular 1/step² sample."""
    height, width = source.shape[:2]
    inside, outside = truth((width, height), model.size, seed)
    de_out = delta_e(source[::step, ::step], result[::step, ::step])[outside[::step, ::step]]
    upscaled = np.asarray(model.convert("RGB").resize((width, height), Image.Resampling.BICUBIC))
    de_in = delta_e(upscaled[::step, ::step], result[::step, ::step])[inside[::step, ::step]]
    size = min(256, height // 4, width // 4)
    crops = [(0, 0), (0, width - size), (height - size - height // 6, 0), (height // 3, width // 40)]
    corr = min(high_pass_correlation(source[y:y + size, x:x + size], result[y:y + size, x:x + size])
               for y, x in crops if outside[y:y + size, x:x + size].all())
    return {"outside_de": float(de_out.mean()), "inside_de": float(de_in.mean()), "detail_corr": corr}
