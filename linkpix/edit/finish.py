"""An edit at full resolution, in two halves around the model's run.

`prepare`: decode the source, turn it upright and scale it to the working size (`resize.py`); that small
PNG is what ComfyUI gets. `finish`: bring the model's output onto the small source's grid and in register
with it (`align.py`: some models shift the frame by a pixel or two), extract the
colour table that maps one to the other (`lut.py`), measure how well it explains the output (`fit.py`) and,
by `method`:

- `lut`: apply the table to the full-resolution original (EXIF, ICC profile and format kept);
- `region`: find where the model changed the picture on purpose (`region.py`) and take only that region
  from the model, upscaled, into the untouched full-resolution original (`compose.py`);
- `direct`: the model's output as it is, at the model's size (the notes say so);
- `auto`: `lut` when the fit says the edit was a colour change; else `region`, unless the model changed most
  of the picture (a restyle: `direct`) or no region stands out (`lut`). A note says which and why.

With a mask (inpainting, or a local grade), only the masked area changes, and still at full resolution:
the model's output (upscaled) or the graded photo is blended into the upright original through the mask,
softened by about one working-size pixel so the seam does not show; every other pixel is the original's.

`format=cube` returns the table itself as a `.cube` file, `format=mask` the region (or the mask given) as a
grey PNG at the photo's size as shown. Nothing here knows about HTTP or ComfyUI.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from linkpix.edit import align, compose, lut, region, resize
from linkpix.edit import fit as fitting
from linkpix.errors import BadRequest
from linkpix.imaging import photo

METHODS = ("auto", "lut", "region", "direct")
CUBE = "cube"
MASK = "mask"
MAX_REGION_SHARE = 0.6  # auto: a model that changed more of the picture than this restyled it; keep its output


def parse_method(value: object) -> str:
    text = str(value or "auto").strip().lower()
    if text not in METHODS:
        raise BadRequest(f"unknown edit method {value!r}: use auto, lut, region or direct",
                         {"parameter": "method", "allowed": list(METHODS)})
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
    mask_note: str | None = None  # the mask given had to be resized (or turned) to the photo as shown


@dataclass
class EditResult:
    data: bytes
    fmt: str  # png | jpeg | webp | cube (format=mask gives a png)
    method: str  # lut | region | direct: what was done
    fit: fitting.Fit | None
    width: int  # as shown (EXIF orientation applied)
    height: int
    notes: tuple[str, ...] = ()
    region_share: float | None = None  # region: the share of the picture taken from the model
    mask_png: bytes | None = None  # region (with want_mask): the mask at the photo's size as shown

    @property
    def content_type(self) -> str:
        return "text/plain; charset=utf-8" if self.fmt == CUBE else f"image/{self.fmt}"


def prepare(data: bytes, profile: resize.Profile, mask_data: bytes | None = None) -> Prepared:
    source = photo.open_photo(data)
    upright = photo.upright(source)
    small = resize.downscale(upright, resize.working_size(*upright.size, profile))
    prep = Prepared(source, small, _png(small), profile)
    if mask_data is not None:
        prep.mask, prep.mask_note = photo.shown_mask(mask_data, source.size, photo.orientation(source.exif))
        prep.small_mask_png = _png(prep.mask.resize(small.size, Image.Resampling.BILINEAR))
    return prep


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def finish(prep: Prepared, output_png: bytes, method: str, fmt: str | None, want_mask: bool = False) -> EditResult:
    """The result of an edit whose model output is `output_png` (see the module docstring)."""
    with Image.open(io.BytesIO(output_png)) as img:
        output = img.convert("RGB")
    if method == "direct" and fmt not in (CUBE, MASK):
        return _direct(prep, output, fmt, None, ())
    if output.size != prep.small.size:
        output = output.resize(prep.small.size, Image.Resampling.LANCZOS)
    output, shift = align.align(prep.small, output)
    moved = () if shift is None else (f"the model's output was shifted by {shift[0]:.1f}, {shift[1]:.1f} "
                                      "working-size pixels against the photo and was moved back",)
    result = _finished(prep, output, method, fmt, want_mask)
    result.notes = (*moved, *result.notes)
    return result


def _finished(prep: Prepared, output: Image.Image, method: str, fmt: str | None, want_mask: bool) -> EditResult:
    """`finish` once the output is on the small source's grid and in register with it."""
    table, fit = table_and_fit(prep.small, output)
    if fmt == CUBE:
        chosen = method if method != "auto" else fitting.choose(fit)
        data = lut.to_cube(table, "LinkPix edit")
        return EditResult(data, CUBE, chosen, fit, *prep.small.size)
    if prep.mask is not None:  # the user's mask wins over any region found (but not over `direct`)
        return _with_user_mask(prep, output, table, fit, method, fmt)
    if fmt == MASK:  # the region the model changed, whatever method would have made the picture
        return _region(prep, output, region.find(prep.small, output, table), fit, fmt, (), want_mask)
    if method == "lut":
        return _full(prep, table, fit, fmt)
    if method == "auto" and fit.colour_edit:
        return _full(prep, table, fit, fmt, (f"auto chose lut: a colour table explains the model's output "
                                             f"(mean CIEDE2000 {fit.mean:.2f}, {fit.miss:.1%} of pixels missed)",))
    found = region.find(prep.small, output, table)
    if method == "auto":
        why = (f"a colour table does not explain the model's output (mean CIEDE2000 {fit.mean:.2f}, "
               f"{fit.miss:.1%} of pixels missed)")
        if found.empty:
            return _full(prep, table, fit, fmt, (f"auto chose lut: {why}, but no region stands out of its "
                                                 "re-render",))
        if found.share > MAX_REGION_SHARE:
            return _direct(prep, output, fmt, fit, (f"auto chose direct: the model changed {found.share:.0%} of "
                                                    "the picture (a restyle, not a local edit)",))
        note = (f"auto chose region: {why}; it changed {found.share:.1%} of the picture, taken from the model, "
                "every other pixel is the photo's")
        return _region(prep, output, found, fit, fmt, (note,), want_mask)
    return _region(prep, output, found, fit, fmt, (), want_mask)


def table_and_fit(small: Image.Image, output: Image.Image) -> tuple[np.ndarray, fitting.Fit]:
    """The table from (small source, output) — the output first brought onto the source's grid — and its fit."""
    if output.size != small.size:
        output = output.resize(small.size, Image.Resampling.LANCZOS)
    table = lut.extract(np.asarray(small.convert("RGB")), np.asarray(output))
    return table, fitting.measure(table, small, output)


def _shown(prep: Prepared) -> tuple[int, int]:
    return compose.upright_size(prep.source.size, photo.orientation(prep.source.exif))


def _full(prep: Prepared, table: np.ndarray, fit: fitting.Fit, fmt: str | None,
          notes: tuple[str, ...] = ()) -> EditResult:
    src = prep.source
    if prep.mask is not None:
        base = photo.upright(src)
        return _masked(prep, base, lut.apply(base, table), "lut", fit, fmt)
    graded = lut.apply(src.image, table)
    out_fmt = photo.output_format(src.format, fmt)
    data = photo.save(graded, out_fmt, src.exif, src.icc)
    return EditResult(data, out_fmt, "lut", fit, *_shown(prep), notes)


def _direct(prep: Prepared, output: Image.Image, fmt: str | None, fit: fitting.Fit | None,
            notes: tuple[str, ...]) -> EditResult:
    out_fmt = photo.output_format(prep.source.format, fmt)
    # The camera's EXIF (Make, date, ...) is kept; the orientation is reset: the model's output is upright.
    data = photo.save(output, out_fmt, photo.upright_exif(prep.source.exif), prep.source.icc)
    width, height = _shown(prep)
    said = f"direct: the model's output as it is, {output.width}x{output.height} (the photo is {width}x{height})"
    return EditResult(data, out_fmt, "direct", fit, *output.size, (*notes, said))


def _region(prep: Prepared, output: Image.Image, found: region.Region, fit: fitting.Fit, fmt: str | None,
            notes: tuple[str, ...], want_mask: bool) -> EditResult:
    """The model's region pasted into the photo as stored (EXIF, ICC and format kept); `prep.source` is
    changed in place, which spares a copy of the photo."""
    src = prep.source
    shown = _shown(prep)
    parts = found.parts()
    mask_png = _png(compose.full_mask(parts, prep.small.size, shown)) if (want_mask or fmt == MASK) else None
    share = round(found.share, 4)
    if fmt == MASK:
        assert mask_png is not None
        return EditResult(mask_png, "png", "region", fit, *shown, notes, share)
    for box, part in parts:
        compose.paste(src.image, photo.orientation(src.exif), output, part, box)
    out_fmt = photo.output_format(src.format, fmt)
    data = photo.save(src.image, out_fmt, src.exif, src.icc)
    return EditResult(data, out_fmt, "region", fit, *shown, notes, share, mask_png)


def _with_user_mask(prep: Prepared, output: Image.Image, table: np.ndarray, fit: fitting.Fit, method: str,
                    fmt: str | None) -> EditResult:
    """An edit with the user's mask: the graded photo (lut) or the model's pixels (otherwise) inside it."""
    assert prep.mask is not None
    if fmt == MASK:
        return EditResult(_png(prep.mask), "png", method, fit, *prep.mask.size, ("the mask is the one given",))
    share = round(float(np.asarray(prep.mask).mean()) / 255.0, 4)
    if method == "lut" or (method == "auto" and fit.colour_edit):
        result = _full(prep, table, fit, fmt)
        if method == "auto":
            result.notes = (f"auto chose lut within your mask: a colour table explains the model's output "
                            f"(mean CIEDE2000 {fit.mean:.2f})",)
        return result
    base = photo.upright(prep.source)
    changed = output.resize(base.size, Image.Resampling.LANCZOS)
    result = _masked(prep, base, changed, "region", fit, fmt)
    result.region_share = share
    if method == "auto":
        result.notes = (f"auto chose region: your mask ({share:.1%} of the picture) took the model's pixels, "
                        "every other pixel is the photo's",)
    return result


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
