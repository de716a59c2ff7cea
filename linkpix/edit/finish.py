"""An edit at full resolution, in two halves around the model's run.

`prepare`: decode the source, turn it upright and scale it to the working size (`resize.py`); that small
PNG is what ComfyUI gets. `finish`: bring the model's output onto the small source's grid, extract the
colour table that maps one to the other (`lut.py`), measure how well it explains the output (`fit.py`) and,
by `method`:

- `lut`: apply the table to the full-resolution original (EXIF, ICC profile and format kept);
- `direct`: the model's output as it is (spatial edits);
- `auto`: `lut` when the fit says the edit was a colour change, else `direct`.

With a mask (inpainting, or a local grade), only the masked area changes, and still at full resolution:
the model's output (upscaled) or the graded photo is blended into the upright original through the mask,
softened by about one working-size pixel so the seam does not show; every other pixel is the original's.

`format=cube` returns the table itself as a `.cube` file. Nothing here knows about HTTP or ComfyUI.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from linkpix.edit import fit as fitting
from linkpix.edit import lut, resize
from linkpix.errors import BadRequest
from linkpix.imaging import photo

METHODS = ("auto", "lut", "direct")
CUBE = "cube"


def parse_method(value: object) -> str:
    text = str(value or "auto").strip().lower()
    if text not in METHODS:
        raise BadRequest(f"unknown edit method {value!r}: use auto, lut or direct", {"parameter": "method"})
    return text


@dataclass
class Prepared:
    """The source as decoded, and the upright copy at the working size that the model gets."""

    source: photo.Photo
    small: Image.Image
    small_png: bytes
    profile: resize.Profile
    mask: Image.Image | None = None  # "L", upright, at the source's upright size; white = change
    small_mask_png: bytes | None = None  # the mask at the working size, for the model
    mask_resized: bool = False  # the mask given was not the photo's size


@dataclass
class EditResult:
    data: bytes
    fmt: str  # png | jpeg | webp | cube
    method: str  # lut | direct: what was done
    fit: fitting.Fit | None
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return "text/plain; charset=utf-8" if self.fmt == CUBE else f"image/{self.fmt}"


def prepare(data: bytes, profile: resize.Profile, mask_data: bytes | None = None) -> Prepared:
    source = photo.open_photo(data)
    upright = photo.upright(source)
    small = resize.downscale(upright, resize.working_size(*upright.size, profile))
    prep = Prepared(source, small, _png(small), profile)
    if mask_data is not None:
        prep.mask, prep.mask_resized = photo.sized_mask(mask_data, upright.size)
        prep.small_mask_png = _png(prep.mask.resize(small.size, Image.Resampling.BILINEAR))
    return prep


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def finish(prep: Prepared, output_png: bytes, method: str, fmt: str | None) -> EditResult:
    """The result of an edit whose model output is `output_png` (see the module docstring)."""
    with Image.open(io.BytesIO(output_png)) as img:
        output = img.convert("RGB")
    if method == "direct" and fmt != CUBE:
        return _direct(prep, output, fmt, None)
    table, fit = table_and_fit(prep.small, output)
    if fmt == CUBE:
        chosen = method if method != "auto" else fitting.choose(fit)
        data = lut.to_cube(table, "LinkPix edit")
        return EditResult(data, CUBE, chosen, fit, *prep.small.size)
    if method == "lut" or (method == "auto" and fit.colour_edit):
        return _full(prep, table, fit, fmt)
    return _direct(prep, output, fmt, fit)


def table_and_fit(small: Image.Image, output: Image.Image) -> tuple[np.ndarray, fitting.Fit]:
    """The table from (small source, output) — the output first brought onto the source's grid — and its fit."""
    if output.size != small.size:
        output = output.resize(small.size, Image.Resampling.LANCZOS)
    table = lut.extract(np.asarray(small.convert("RGB")), np.asarray(output))
    return table, fitting.measure(table, small, output)


def _full(prep: Prepared, table: np.ndarray, fit: fitting.Fit, fmt: str | None) -> EditResult:
    src = prep.source
    if prep.mask is not None:
        base = photo.upright(src)
        return _masked(prep, base, lut.apply(base, table), "lut", fit, fmt)
    graded = lut.apply(src.image, table)
    out_fmt = photo.output_format(src.format, fmt)
    data = photo.save(graded, out_fmt, src.exif, src.icc)
    return EditResult(data, out_fmt, "lut", fit, *graded.size)


def _direct(prep: Prepared, output: Image.Image, fmt: str | None, fit: fitting.Fit | None) -> EditResult:
    if prep.mask is not None:
        base = photo.upright(prep.source)
        return _masked(prep, base, output.resize(base.size, Image.Resampling.LANCZOS), "direct", fit, fmt)
    out_fmt = photo.output_format(prep.source.format, fmt)
    data = photo.save(output, out_fmt, None, prep.source.icc)  # upright already: no EXIF orientation
    return EditResult(data, out_fmt, "direct", fit, *output.size)


def _masked(prep: Prepared, base: Image.Image, changed: Image.Image, method: str, fit: fitting.Fit | None,
            fmt: str | None) -> EditResult:
    """`changed` inside the mask, the upright original outside it, at the original's size."""
    assert prep.mask is not None
    soft = prep.mask.filter(ImageFilter.GaussianBlur(max(1.0, base.width / prep.small.width)))
    blended = Image.composite(changed, base, soft)
    src = prep.source
    out_fmt = photo.output_format(src.format, fmt)
    data = photo.save(blended, out_fmt, photo.upright_exif(src.exif), src.icc)
    return EditResult(data, out_fmt, method, fit, *blended.size)
