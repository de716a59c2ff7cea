"""3D colour lookup tables: extract one from (source, edited) pixel pairs, apply it, write it as `.cube`.

A table here is a float32 array of shape (n, n, n, 3) indexed `[r, g, b]`, values in 0..1 — the layout of
colour-science's `LUT3D.table`. Pillow's `Color3DLUT` wants the flat order of an Adobe `.cube` file (red
changes fastest, then green, then blue), which is this array transposed to `[b, g, r]` and flattened.

Extraction is vectorised: every pixel falls into its nearest grid node (one `bincount` per channel), a
node's value is the mean edited colour of its pixels, nodes no pixel reached get the *offset* (edited minus
source) of their nearest reached node — so an unseen colour is graded like its neighbours rather than
replaced by their colour — and sparsely sampled nodes are pulled towards a smoothed field. A second pass
drops the pixels that a smoothed first table misses badly (a watermark, a small spatial change, the
simulator's mark), so they do not bend the colours around them — smoothed, because a mark whose colours
occur nowhere else would otherwise teach the first table its own colours.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

DEFAULT_SIZE = 33
SMOOTH_SIGMA = 0.8  # in grid steps
SMOOTH_WEIGHT = 4.0  # a node with this many pixels counts as much as its smoothed neighbourhood
OUTLIER_LEVELS = 40.0  # second pass: drop pixels the first table misses by more than this (0..255 RGB distance)
OUTLIER_SIGMA = 2.0  # ...measured against the first table smoothed this much (grid steps)


def _channels(pixels: np.ndarray) -> list[np.ndarray]:
    """An RGB uint8 array as three contiguous flat channels (numpy is fastest on those)."""
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError("expected an RGB uint8 array of shape (h, w, 3)")
    return [np.ascontiguousarray(arr[..., c]).reshape(-1) for c in range(3)]


def _cells(src: list[np.ndarray], size: int) -> np.ndarray:
    """The nearest grid node of every pixel, as one flat index (integer arithmetic, no gathers)."""
    r, g, b = ((c.astype(np.uint16) * (size - 1) + 127) // 255 for c in src)  # round(v * (n-1) / 255)
    return (r.astype(np.int32) * size + g) * size + b


def nodes(size: int) -> np.ndarray:
    """The identity table: each node's own colour."""
    axis = np.linspace(0.0, 1.0, size, dtype=np.float32)
    r, g, b = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack((r, g, b), axis=-1)


def identity(size: int = DEFAULT_SIZE) -> np.ndarray:
    return nodes(size)


def _accumulate(cell: np.ndarray, shift: list[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixels per node, mean shift per node in 0..1) — the shift is edited minus source, so a node's
    value is its own colour plus the mean shift of its pixels: exact for the identity, and free of the
    bias a plain mean of edited colours has when a node's pixels sit off-centre."""
    bins = size ** 3
    count = np.bincount(cell, minlength=bins).astype(np.float64)
    sums = np.stack([np.bincount(cell, weights=d, minlength=bins) for d in shift], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / count[:, None] / 255.0
    return count.reshape(size, size, size), mean.reshape(size, size, size, 3)


def _fill(count: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Nodes without pixels take the shift of their nearest node with pixels; sparse nodes are pulled
    towards a smoothed field (a node with SMOOTH_WEIGHT pixels is half its own, half its neighbourhood)."""
    size = count.shape[0]
    grid = nodes(size).astype(np.float64)
    empty = count == 0
    if empty.all():
        return grid.astype(np.float32)
    offset = np.where(empty[..., None], 0.0, shift)
    if empty.any():
        _, near = ndimage.distance_transform_edt(empty, return_indices=True)
        offset = offset[near[0], near[1], near[2]]
    smooth = np.stack([ndimage.gaussian_filter(offset[..., c], SMOOTH_SIGMA, mode="nearest") for c in range(3)],
                      axis=-1)
    w = (count / (count + SMOOTH_WEIGHT))[..., None]
    table = grid + w * offset + (1.0 - w) * smooth
    return np.clip(table, 0.0, 1.0).astype(np.float32)


def extract(source: np.ndarray, edited: np.ndarray, size: int = DEFAULT_SIZE, robust: bool = True) -> np.ndarray:
    """The table that maps `source` pixels to `edited` ones (same shape, RGB uint8)."""
    if not 2 <= size <= 65:
        raise ValueError("a LUT has 2 to 65 nodes per axis (Pillow's Color3DLUT range)")
    if np.shape(source) != np.shape(edited):
        raise ValueError("source and edited pictures must have the same size")
    src, dst = _channels(source), _channels(edited)
    cell = _cells(src, size)
    shift = [np.subtract(d, s, dtype=np.float64) for s, d in zip(src, dst, strict=True)]
    table = _fill(*_accumulate(cell, shift, size))
    if not robust:
        return table
    reference = np.stack([ndimage.gaussian_filter(table[..., c], OUTLIER_SIGMA, mode="nearest") for c in range(3)],
                         axis=-1)  # a mark that owns a few colours is a bump here, not the local truth
    keep = _miss2(reference, cell, dst) <= OUTLIER_LEVELS ** 2
    share = keep.mean()
    if share == 1.0 or share < 0.5:  # nothing to drop, or no consistent colour mapping at all
        return table
    return _fill(*_accumulate(cell[keep], [d[keep] for d in shift], size))


def _miss2(table: np.ndarray, cell: np.ndarray, dst: list[np.ndarray]) -> np.ndarray:
    """Squared RGB distance (0..255 scale) between each pixel's nearest node and its edited colour."""
    total = np.zeros(cell.shape, dtype=np.int32)
    for c in range(3):
        node = np.rint(table[..., c].reshape(-1) * 255.0).astype(np.int16)
        diff = node[cell] - dst[c].astype(np.int16)
        total += diff.astype(np.int32) ** 2
    return total


def residual(table: np.ndarray, source: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """Per-pixel RGB distance (0..255 scale) between the table's nearest node and the edited pixel."""
    return np.sqrt(_miss2(table, _cells(_channels(source), table.shape[0]), _channels(edited)))


def pillow_filter(table: np.ndarray) -> ImageFilter.Color3DLUT:
    """The table as Pillow's Color3DLUT (flat, red fastest — the `.cube` order)."""
    size = table.shape[0]
    flat = np.ascontiguousarray(table.transpose(2, 1, 0, 3)).reshape(-1)
    return ImageFilter.Color3DLUT(size, flat, channels=3)


def apply(image: Image.Image, table: np.ndarray) -> Image.Image:
    """The table applied to an RGB or RGBA picture (trilinear, in C); alpha is kept."""
    if image.mode not in ("RGB", "RGBA"):
        raise ValueError(f"apply a LUT to an RGB or RGBA picture, not {image.mode}")
    return image.filter(pillow_filter(table))


def _colour():  # type: ignore[no-untyped-def]
    """colour-science, imported on first use (1 s; only `.cube` needs it), without its plotting warning.

    Without matplotlib, colour-science puts a MagicMock into `sys.modules["matplotlib"]`; other code in
    the process (Gradio) would then take the mock for matplotlib, so it is taken out again.
    """
    before = {name for name in sys.modules if name == "matplotlib" or name.startswith("matplotlib.")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour
    for name in [n for n in sys.modules if (n == "matplotlib" or n.startswith("matplotlib.")) and n not in before]:
        if type(sys.modules[name]).__name__.endswith("Mock"):
            del sys.modules[name]
    return colour


def to_cube(table: np.ndarray, title: str = "LinkPix edit") -> bytes:
    """The table as an Adobe / Resolve `.cube` file (written by colour-science)."""
    colour = _colour()

    lut = colour.LUT3D(table.astype(np.float64), name=title)
    fd, path = tempfile.mkstemp(suffix=".cube")
    os.close(fd)
    try:
        colour.io.write_LUT(lut, path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def from_cube(data: bytes) -> np.ndarray:
    """A `.cube` file's table, `[r, g, b]`-indexed (read by colour-science)."""
    colour = _colour()

    fd, path = tempfile.mkstemp(suffix=".cube")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        lut = colour.io.read_LUT(path)
    finally:
        os.unlink(path)
    return np.asarray(lut.table, dtype=np.float32)
