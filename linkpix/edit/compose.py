"""The model's region pasted into the full-resolution photo: only the region's box is decoded work.

The photo stays as it was stored — EXIF orientation not applied — so no 24-megapixel rotation is spent and
the EXIF block is kept unchanged: the model worked on the upright picture, so the region's box is mapped
from upright to stored coordinates and the patch is turned back before it is pasted. Inside the box the
model's output is upscaled (bicubic, from the exact sub-pixel window of the working image that the box
covers) and blended in through the feathered mask; every pixel outside the box is the photo's own.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageChops

from linkpix.imaging.photo import UPRIGHT

Box = tuple[int, int, int, int]


def upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The size of a stored picture as shown."""
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def to_stored(box: Box, orientation: int, stored: tuple[int, int]) -> Box:
    """An upright box (left, top, right, bottom) in the stored picture's coordinates."""
    sw, sh = stored
    left, top, right, bottom = box

    def point(u: int, v: int) -> tuple[int, int]:
        return {2: (sw - u, v), 3: (sw - u, sh - v), 4: (u, sh - v), 5: (v, u), 6: (v, sh - u),
                7: (sw - v, sh - u), 8: (sw - v, u)}.get(orientation, (u, v))

    (x0, y0), (x1, y1) = point(left, top), point(right, bottom)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _back(img: Image.Image, orientation: int) -> Image.Image:
    """An upright patch turned back to the stored orientation (the inverse of UPRIGHT)."""
    method = UPRIGHT.get(orientation)
    if method is None:
        return img
    inverse = {Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270,
               Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90}.get(method, method)
    return img.transpose(inverse)


def full_box(box: Box, working: tuple[int, int], full: tuple[int, int]) -> tuple[Box, tuple[float, ...]]:
    """A working-size box at full size (whole pixels, outward), and the exact working window it covers."""
    sx, sy = full[0] / working[0], full[1] / working[1]
    left, top = max(0, math.floor(box[0] * sx)), max(0, math.floor(box[1] * sy))
    right, bottom = min(full[0], math.ceil(box[2] * sx)), min(full[1], math.ceil(box[3] * sy))
    return (left, top, right, bottom), (left / sx, top / sy, right / sx, bottom / sy)


def patches(output: Image.Image, mask: np.ndarray, box: Box, full: tuple[int, int]) -> tuple[Box, Image.Image,
                                                                                              Image.Image]:
    """(box at full size, the model's pixels there, the feathered mask there), all upright; `mask` is the
    working-size mask within `box`."""
    big, window = full_box(box, output.size, full)
    size = (big[2] - big[0], big[3] - big[1])
    pixels = output.convert("RGB").resize(size, Image.Resampling.BICUBIC, box=window)
    pad = _pad(output.size, full)
    alpha = _levels(mask, pad).resize(size, Image.Resampling.BILINEAR, box=_inner(window, box, pad))
    return big, pixels, alpha


def _pad(working: tuple[int, int], full: tuple[int, int]) -> int:
    """How far (working-size pixels) a full-size box rounded outwards can reach beyond its working box."""
    return math.ceil(max(working[0] / full[0], working[1] / full[1], 1.0)) + 1


def _levels(mask: np.ndarray, pad: int) -> Image.Image:
    """The mask within a box as "L", `pad` pixels wider on each side (edge values repeated)."""
    return Image.fromarray(np.rint(np.pad(mask, pad, mode="edge") * 255.0).astype(np.uint8), "L")


def _inner(window: tuple[float, ...], box: Box, pad: int) -> tuple[float, float, float, float]:
    """The window in the coordinates of `_levels`' picture of the box."""
    return (window[0] - box[0] + pad, window[1] - box[1] + pad, window[2] - box[0] + pad, window[3] - box[1] + pad)


def paste(stored: Image.Image, orientation: int, output: Image.Image, mask: np.ndarray, box: Box) -> None:
    """Blend the model's `output` (upright, working size) into `stored` (in place) through `mask` (the
    working-size mask within `box`)."""
    full = upright_size(stored.size, orientation)
    big, pixels, alpha = patches(output, mask, box, full)
    where = to_stored(big, orientation, stored.size)
    pixels, alpha = _back(pixels, orientation), _back(alpha, orientation)
    if stored.mode != pixels.mode:
        base_alpha = stored.crop(where).getchannel("A") if "A" in stored.getbands() else None
        pixels = pixels.convert(stored.mode)
        if base_alpha is not None:
            pixels.putalpha(base_alpha)
    stored.paste(pixels, where[:2], alpha)


def full_mask(parts: list[tuple[Box, np.ndarray]], working: tuple[int, int], full: tuple[int, int]) -> Image.Image:
    """The feathered mask at the picture's upright full size ("L", white = taken from the model)."""
    out = Image.new("L", full, 0)
    for box, mask in parts:
        big, window = full_box(box, working, full)
        pad = _pad(working, full)
        level = _levels(mask, pad).resize((big[2] - big[0], big[3] - big[1]), Image.Resampling.BILINEAR,
                                          box=_inner(window, box, pad))
        out.paste(ImageChops.lighter(out.crop(big), level), big[:2])  # parts' boxes may overlap
    return out
