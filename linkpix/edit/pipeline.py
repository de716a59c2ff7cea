"""An edit at full resolution, in two halves around the model's run.

`prepare`: decode the source, turn it upright and scale it to the working size (`resize.py`); that small
PNG is what ComfyUI gets. `finish`: bring the model's output onto the small source's grid, extract the
colour table that maps one to the other (`lut.py`), measure how well it explains the output (`fit.py`) and,
by `method`:

- `lut`: apply the table to the full-resolution original (EXIF, ICC profile and format kept);
- `direct`: the model's output as it is (spatial edits);
- `auto`: `lut` when the fit says the edit was a colour change, else `direct`.

`format=cube` returns the table itself as a `.cube` file. Nothing here knows about HTTP or ComfyUI.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import BadRequest
from . import fit as fitting
from . import lut, photo, resize

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


def prepare(data: bytes, profile: resize.Profile) -> Prepared:
    source = photo.open_photo(data)
    upright = photo.upright(source)
    small = resize.downscale(upright, resize.working_size(*upright.size, profile))
    buf = io.BytesIO()
    small.save(buf, "PNG", compress_level=1)
    return Prepared(source, small, buf.getvalue(), profile)


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
    graded = lut.apply(src.image, table)
    out_fmt = photo.output_format(src.format, fmt)
    data = photo.save(graded, out_fmt, src.exif, src.icc)
    return EditResult(data, out_fmt, "lut", fit, *graded.size)


def _direct(prep: Prepared, output: Image.Image, fmt: str | None, fit: fitting.Fit | None) -> EditResult:
    out_fmt = photo.output_format(prep.source.format, fmt)
    data = photo.save(output, out_fmt, None, prep.source.icc)  # upright already: no EXIF orientation
    return EditResult(data, out_fmt, "direct", fit, *output.size)
