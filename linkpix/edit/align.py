"""The model's output brought into register with the source before anything is compared or pasted.

Edit models re-render the frame and some shift it a little (Qwen-Image-Edit is known for it). A shift of a
pixel or two makes every edge of the picture look changed — the region would spread over all the texture —
and pastes the region a little off its place. So the translation between the downscaled source and the
output is measured by phase correlation (scikit-image's `phase_cross_correlation`: whitened spectra, so
texture counts as much as large shapes; sub-pixel; on grey levels at half the working size, about 15 ms)
and undone when it exceeds MIN_SHIFT. A local edit moves the correlation peak very little: the rest of the
frame outweighs it. Only a translation is undone; a model that zooms is not brought back.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.registration import phase_cross_correlation

MIN_SHIFT = 0.3  # working-size pixels: below this the output is left as it is (no resampling blur)
MAX_SHIFT = 0.05  # share of the picture's side: a larger "shift" is no re-render but another framing
REDUCE = 2


def measure(small: Image.Image, output: Image.Image) -> tuple[float, float]:
    """(dx, dy) in working-size pixels by which `output` is shifted against `small` (same size)."""
    a = np.asarray(small.convert("L").reduce(REDUCE), dtype=np.float32)
    b = np.asarray(output.convert("L").reduce(REDUCE), dtype=np.float32)
    if a.std() < 0.5 or b.std() < 0.5:
        return 0.0, 0.0  # a flat picture has no features to register
    (dy, dx), _error, _phase = phase_cross_correlation(a, b, upsample_factor=10)
    return -float(dx) * REDUCE, -float(dy) * REDUCE


def align(small: Image.Image, output: Image.Image) -> tuple[Image.Image, tuple[float, float] | None]:
    """`output` shifted back onto `small`'s grid -> (aligned output, the shift undone or None)."""
    if min(small.size) < 16 * REDUCE:
        return output, None  # too small to tell a shift from the picture
    dx, dy = measure(small, output)
    if not (np.isfinite(dx) and np.isfinite(dy)):
        return output, None
    if max(abs(dx), abs(dy)) < MIN_SHIFT or abs(dx) > MAX_SHIFT * small.width or abs(dy) > MAX_SHIFT * small.height:
        return output, None
    arr = np.asarray(output.convert("RGB"))
    moved = np.stack([ndimage.shift(arr[..., c], (-dy, -dx), order=1, mode="nearest") for c in range(3)], axis=-1)
    return Image.fromarray(moved), (dx, dy)
