"""Where a spatial edit changed the picture, found at the working size, robust to the model's re-render.

Instruction models (FLUX.1 Kontext, Qwen-Image-Edit) give back the whole frame re-rendered: the part the
user asked to change, and everything else slightly off — a global colour drift of ΔE 1-2, a little softer,
new noise. Comparing the output with the source directly would call the whole frame changed. So the
comparison is made against what the rest *should* look like:

1. the colour table extracted from (source, output) already explains the drift — it is a per-colour map,
   and its robust second pass ignores the changed region — so the source graded by it is the prediction;
2. prediction and output are both reduced by 2 (box filter): that averages the new noise away and makes
   the model's softness and the source's sharpness look alike, at a quarter of the CIEDE2000 cost;
3. the residual is CIEDE2000 (scikit-image) and is thresholded by hysteresis (`apply_hysteresis_threshold`):
   a region must hold pixels that are clearly changed (ΔE > HIGH), and it grows through connected pixels
   above LOW — a soft edge of the change is taken, a stray textured pixel that is merely above LOW is not;
4. once a region is found, the table is extracted again from the pixels away from it and steps 1-3 are
   repeated: a removed object is smeared with its surroundings' colours, which otherwise bend the first
   table there and grow the region over the surroundings (a cup's rim next to a removed spoon);
5. the mask is cleaned morphologically (an opening, specks dropped, small holes filled), grown by GROW working-size
   pixels to take in the change's own soft border, and feathered by FEATHER working-size pixels.

Why not a learned segmentation or SSIM: the question is not "what is in the picture" but "which pixels did
the model mean to change", and a colour-explained residual answers it directly, in about 0.1 s a megapixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.filters import apply_hysteresis_threshold

from linkpix.edit import lut

HIGH = 10.0  # ΔE: a pixel clearly changed on purpose
LOW = 5.0  # ΔE: a pixel that belongs to a region when connected to clearly changed ones
MIN_SHARE = 0.0005  # a connected change smaller than this share of the picture is noise
MAX_HOLE_SHARE = 0.005  # a hole in a region smaller than this share is filled; a larger one is a place kept
GROW = 1.5  # working-size pixels added around the region (the change's own soft border)
FEATHER = 1.0  # working-size pixels: the Gaussian sigma that softens the seam
REDUCE = 2  # the residual is measured on the working image reduced by this factor


@dataclass
class Region:
    """The soft mask at the working size (float32, 0..1) and the share of the picture it covers."""

    mask: np.ndarray  # (h, w) float32 at the working size
    share: float  # 0..1: mean of the soft mask

    @property
    def empty(self) -> bool:
        return self.share <= 0.0

    def box(self, margin: int = 2) -> tuple[int, int, int, int] | None:
        """The bounding box (left, top, right, bottom) of the mask at the working size, with a margin."""
        rows = np.flatnonzero(self.mask.max(axis=1) > 0.0)
        cols = np.flatnonzero(self.mask.max(axis=0) > 0.0)
        if rows.size == 0:
            return None
        h, w = self.mask.shape
        return (max(0, int(cols[0]) - margin), max(0, int(rows[0]) - margin),
                min(w, int(cols[-1]) + 1 + margin), min(h, int(rows[-1]) + 1 + margin))

    def parts(self, limit: int = 16) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
        """The mask's connected parts as (box, the mask within the box, zero outside that part): a change
        and the model's corner mark are pasted as two small boxes, not one box spanning both. More than
        `limit` parts are pasted as one box (each pixel still blended once)."""
        labels, count = ndimage.label(self.mask > 0.0, structure=np.ones((3, 3), bool))
        if count == 0:
            return []
        if count > limit:
            box = self.box()
            assert box is not None
            return [(box, self.mask[box[1]:box[3], box[0]:box[2]])]
        out = []
        height, width = self.mask.shape
        for index, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
            # A margin of 2: the box at full size is rounded outwards, and its window must stay inside.
            top, bottom = max(0, rows.start - 2), min(height, rows.stop + 2)
            left, right = max(0, cols.start - 2), min(width, cols.stop + 2)
            crop = self.mask[top:bottom, left:right]
            out.append(((left, top, right, bottom),
                        np.where(labels[top:bottom, left:right] == index, crop, np.float32(0.0))))
        return out

    def image(self) -> Image.Image:
        """The soft mask as an "L" picture at the working size (white = changed)."""
        return Image.fromarray(np.rint(self.mask * 255.0).astype(np.uint8), "L")


def _reduced_lab(img: Image.Image) -> np.ndarray:
    small = img.reduce(REDUCE) if REDUCE > 1 else img
    return rgb2lab(np.asarray(small, dtype=np.float32) / 255.0)


def residual(small: Image.Image, output: Image.Image, table: np.ndarray) -> np.ndarray:
    """CIEDE2000 between the table-graded source and the output, at the reduced working size."""
    predicted = lut.apply(small.convert("RGB"), table)
    return deltaE_ciede2000(_reduced_lab(predicted), _reduced_lab(output.convert("RGB")))


def _without_specks(hard: np.ndarray, min_size: int) -> np.ndarray:
    """`hard` without its connected parts smaller than `min_size` pixels (8-connected)."""
    labels, count = ndimage.label(hard, structure=np.ones((3, 3), bool))
    if count == 0:
        return hard
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]


def _changed(de: np.ndarray) -> np.ndarray:
    """The residual thresholded by hysteresis and cleaned: specks dropped, small holes filled."""
    hard = apply_hysteresis_threshold(de, LOW, HIGH)
    min_size = max(4, int(MIN_SHARE * hard.size))
    hard = ndimage.binary_opening(hard, structure=np.ones((2, 2), bool))
    hard = _without_specks(hard, min_size)
    return hard | _small_holes(hard, int(MAX_HOLE_SHARE * hard.size))


def _small_holes(hard: np.ndarray, max_size: int) -> np.ndarray:
    """The enclosed background parts of `hard` (not touching the border) of at most `max_size` pixels
    (labelling: one pass, where SciPy's binary_fill_holes dilates until nothing changes)."""
    labels, _count = ndimage.label(~hard)
    small = np.bincount(labels.ravel()) <= max_size
    small[0] = False
    small[np.concatenate((labels[0], labels[-1], labels[:, 0], labels[:, -1]))] = False
    return small[labels]


def _refit(small: Image.Image, output: Image.Image, changed: np.ndarray) -> np.ndarray:
    """The colour table again, from the pixels away from what was found: an object's colours that the
    change shares with the rest (a smear of the surroundings) no longer bend the table there."""
    away = ~ndimage.binary_dilation(changed, iterations=2)
    src, out = (np.asarray(img.reduce(REDUCE) if REDUCE > 1 else img) for img in (small, output.convert("RGB")))
    return lut.extract(src[away][None], out[away][None])


def find(small: Image.Image, output: Image.Image, table: np.ndarray) -> Region:
    """The region the model changed on purpose (see the module docstring); `output` is on `small`'s grid."""
    hard = _changed(residual(small, output, table))
    if hard.any() and hard.mean() < 0.5:
        hard = _changed(residual(small, output, _refit(small, output, hard)))
    width, height = small.size
    if not hard.any():
        return Region(np.zeros((height, width), np.float32), 0.0)
    up = np.asarray(Image.fromarray(hard.astype(np.uint8) * 255, "L").resize((width, height),
                                                                               Image.Resampling.BILINEAR)) >= 128
    # Grown and feathered within the region's box only (plus what the growing and the blur reach).
    rows, cols = np.flatnonzero(up.any(axis=1)), np.flatnonzero(up.any(axis=0))
    pad = int(np.ceil(GROW + 3 * FEATHER)) + 2
    top, bottom = max(0, rows[0] - pad), min(height, rows[-1] + 1 + pad)
    left, right = max(0, cols[0] - pad), min(width, cols[-1] + 1 + pad)
    grown = ndimage.distance_transform_edt(~up[top:bottom, left:right]) <= GROW
    soft = np.zeros((height, width), np.float32)
    soft[top:bottom, left:right] = ndimage.gaussian_filter(grown.astype(np.float32), FEATHER, truncate=3.0)
    soft[soft < 1.0 / 255.0] = 0.0
    return Region(soft, float(soft.mean()))
