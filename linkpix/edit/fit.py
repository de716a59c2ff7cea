"""How well a colour table alone reproduces the model's output — and so whether the edit was a colour change.

The table is applied (exactly as it will be to the original) to the downscaled source, and compared with
the model's output in CIELAB by CIEDE2000 (scikit-image's `deltaE_ciede2000`: as fast as colour-science's
`delta_E` on a megapixel, 0.43 s both, with a lighter import). A colour grade leaves a mean ΔE around 1; an
edit that moves, removes or adds something leaves a region the table cannot explain. The mean alone would
let a small hat through (a big ΔE on 3 % of the picture barely moves it), so `auto` also counts the share
of pixels missed by more than MISS_DELTA_E.

Measured on a regular sample of at most SAMPLE_PIXELS pixels: the same positions in both pictures, enough
for the mean and the share to two decimals, four times cheaper than the whole megapixel.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

from linkpix.edit import lut

MEAN_THRESHOLD = 3.0  # ΔE: above it the edit is spatial
MISS_DELTA_E = 10.0  # ΔE: a pixel the table clearly gets wrong
MISS_SHARE = 0.02  # share of such pixels above which the edit is spatial
SAMPLE_PIXELS = 262_144


@dataclass(frozen=True)
class Fit:
    """Mean and 95th-percentile ΔE of table(source) against the output, and the share of missed pixels."""

    mean: float
    p95: float
    miss: float

    @property
    def colour_edit(self) -> bool:
        return self.mean <= MEAN_THRESHOLD and self.miss <= MISS_SHARE

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in asdict(self).items()}


def _sample(img: Image.Image) -> np.ndarray:
    arr = np.asarray(img.convert("RGB"))
    step = max(1, math.ceil(math.sqrt(arr.shape[0] * arr.shape[1] / SAMPLE_PIXELS)))
    return np.ascontiguousarray(arr[::step, ::step])


def delta_e(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 between two sRGB uint8 pictures of the same shape."""
    return deltaE_ciede2000(rgb2lab(a.astype(np.float32) / 255.0), rgb2lab(b.astype(np.float32) / 255.0))


def measure(table: np.ndarray, source: Image.Image, output: Image.Image) -> Fit:
    """The fit of `table` on (source, output), both at the working size."""
    src, out = _sample(source), _sample(output)
    predicted = np.asarray(lut.apply(Image.fromarray(src), table))
    de = delta_e(predicted, out)
    return Fit(float(de.mean()), float(np.percentile(de, 95)), float((de > MISS_DELTA_E).mean()))


def choose(fit: Fit) -> str:
    """`lut` for a colour edit, `direct` for a spatial one."""
    return "lut" if fit.colour_edit else "direct"
