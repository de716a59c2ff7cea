"""3D colour lookup tables: extract one from (source, edited) pixel pairs, apply it, write it as `.cube`.

A table here is a float32 array of shape (n, n, n, 3) indexed `[r, g, b]`, values in 0..1. Pillow's
`Color3DLUT` wants the flat order of an Adobe `.cube` file (red changes fastest, then green, then blue),
which is this array transposed to `[b, g, r]` and flattened.

Extraction is vectorised: every pixel falls into its nearest grid node (one `bincount` per channel), a
node's value is the mean edited colour of its pixels, nodes no pixel reached get the *offset* (edited minus
source) of their nearest reached node — so an unseen colour is graded like its neighbours rather than
replaced by their colour — each node's shift is moved from its pixels' centroid to the node along the
field's slope, and sparsely sampled nodes are pulled towards a smoothed field. A second pass
drops the pixels that a smoothed first table misses badly (a watermark, a small spatial change, the
simulator's mark), so they do not bend the colours around them — smoothed, because a mark whose colours
occur nowhere else would otherwise teach the first table its own colours.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

DEFAULT_SIZE = 33
SMOOTH_SIGMA = 0.8  # in grid steps
SMOOTH_WEIGHT = 4.0  # a node with this many pixels counts as much as its smoothed neighbourhood
CENTROID_STEP = 16  # every 16th pixel places a node's pixels (see _accumulate)
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
    return (r.astype(np.intp) * size + g) * size + b  # intp: what bincount indexes with, no conversion


def nodes(size: int) -> np.ndarray:
    """The identity table: each node's own colour."""
    axis = np.linspace(0.0, 1.0, size, dtype=np.float32)
    r, g, b = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack((r, g, b), axis=-1)


def identity(size: int = DEFAULT_SIZE) -> np.ndarray:
    return nodes(size)


def _accumulate(cell: np.ndarray, src: list[np.ndarray], dst: list[np.ndarray],
                size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixels per node, mean shift per node, where its pixels sit relative to the node), all in 0..1.

    The shift is edited minus source, so a node's value is its own colour plus the mean shift of its
    pixels: exact for the identity. But a node's pixels do not sit on the node: `_fill` moves the shift
    from their centroid to the node along the field's slope, which matters for strong maps such as black
    and white (mean error halved). The centroid is taken from every CENTROID_STEP-th pixel: a first-order
    correction needs no more, and the extraction stays within its time."""
    bins = size ** 3
    count = np.bincount(cell, minlength=bins).astype(np.float64)
    shift = [np.subtract(d, s, dtype=np.int16) for s, d in zip(src, dst, strict=True)]  # bincount widens it
    sums = np.stack([np.bincount(cell, weights=d, minlength=bins) for d in shift], axis=-1)
    sample = cell[::CENTROID_STEP]
    seen = np.bincount(sample, minlength=bins).astype(np.float64)
    at = np.stack([np.bincount(sample, weights=c[::CENTROID_STEP], minlength=bins) for c in src], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / count[:, None] / 255.0
        where = np.nan_to_num(at / seen[:, None] / 255.0 - nodes(size).reshape(-1, 3))
    cube = (size, size, size)
    return count.reshape(cube), mean.reshape(*cube, 3), where.reshape(*cube, 3)


def _fill(count: np.ndarray, shift: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Each node's shift is moved from where its pixels sat to the node itself, along the slope of a
    smoothed first field; nodes without pixels take the shift of their nearest node with pixels; sparse
    nodes are pulled towards the smoothed field (a node with SMOOTH_WEIGHT pixels is half its own, half
    its neighbourhood)."""
    size = count.shape[0]
    grid = nodes(size).astype(np.float64)
    empty = count == 0
    if empty.all():
        return grid.astype(np.float32)
    offset = np.where(empty[..., None], 0.0, shift)
    near = None
    if empty.any():
        # Nearest by the chessboard chamfer: as good a neighbour as the Euclidean one here, five times faster.
        _, near = ndimage.distance_transform_cdt(empty, metric="chessboard", return_indices=True)

    def spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        full = values if near is None else values[near[0], near[1], near[2]]
        return full, ndimage.gaussian_filter(full, (SMOOTH_SIGMA,) * 3 + (0,), mode="nearest", truncate=3.0)

    _, first = spread(offset)
    for axis, slope in enumerate(np.gradient(first, 1.0 / (size - 1), axis=(0, 1, 2))):
        offset = offset - slope * where[..., axis:axis + 1]
    offset, smooth = spread(offset)
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
    table = _fill(*_accumulate(cell, src, dst, size))
    if not robust:
        return table
    # A mark that owns a few colours is a bump in this smoothed table, not the local truth.
    reference = ndimage.gaussian_filter(table, (OUTLIER_SIGMA,) * 3 + (0,), mode="nearest", truncate=3.0)
    keep = _miss2(reference, cell, dst) <= OUTLIER_LEVELS ** 2
    share = keep.mean()
    if share == 1.0 or share < 0.5:  # nothing to drop, or no consistent colour mapping at all
        return table
    return _fill(*_accumulate(cell[keep], [c[keep] for c in src], [c[keep] for c in dst], size))


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


def to_cube(table: np.ndarray, title: str = "LinkPix edit") -> bytes:
    """The table as an Adobe / Resolve `.cube` file (Cube LUT Specification 1.0), so the look can be reused
    in Resolve, Lightroom or ffmpeg's `lut3d`.

    The format is a header and one `R G B` line per node with red varying fastest; the table is indexed
    `[r, g, b]`, so blue-major order is a transpose away. Written directly: it is a dozen lines of text, and
    the libraries that write it (colour-science) cost a second of import and a plotting stub per process.
    """
    size = table.shape[0]
    rows = np.clip(table, 0.0, 1.0).transpose(2, 1, 0, 3).reshape(-1, 3)
    safe_title = title.replace('"', "'")
    head = f'TITLE "{safe_title}"\nLUT_3D_SIZE {size}\nDOMAIN_MIN 0.0 0.0 0.0\nDOMAIN_MAX 1.0 1.0 1.0\n'
    body = "\n".join(f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in rows.tolist())
    return (head + body + "\n").encode("ascii")
