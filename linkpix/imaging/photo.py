"""Photos in and out: what an input image must be, and keeping a photo's EXIF, ICC profile and format.

An input is accepted only when Pillow decodes it completely (`verify()`, then a fresh `open()` + `load()`):
a PNG signature followed by text, or a JPEG cut off halfway, is refused here rather than failing later
inside ComfyUI. Pillow's decompression-bomb guard (`Image.MAX_IMAGE_PIXELS`, read, never changed) and
`max_upload_mb` answer 413.

A full-resolution edit applies a colour table pixel by pixel, so it works on the pixels as stored and
keeps the EXIF block unchanged: the orientation tag still turns the result the right way up, and no
24-megapixel rotation is spent. The model instead gets an upright copy (`upright`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from linkpix.errors import BadRequest, ImageTooLarge
from linkpix.imaging.budget import BUDGET, DECODE_BYTES_PER_PIXEL

# EXIF orientation -> the transpose that turns the stored pixels upright (as ImageOps.exif_transpose does).
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}
# Pillow's format name -> ours, and the file extension of each.
FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif"}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp", "gif": "gif"}
SAVE_AS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"RIFF")
JPEG_QUALITY = 95
MIB = 1024 * 1024


def check_image(data: bytes, max_bytes: int, what: str = "the image", parameter: str = "image") -> str:
    """The format (png, jpeg, webp, gif) of bytes that decode completely; else 400, or 413 when too large."""
    if len(data) > max_bytes:
        raise ImageTooLarge(f"{what} is {len(data) / MIB:.1f} MiB; the limit is {max_bytes / MIB:g} MiB "
                            "(max_upload_mb)", {"parameter": parameter, "limit_bytes": max_bytes})
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = FORMATS.get(img.format or "")
            if fmt is None:
                raise BadRequest(f"{what} is a {img.format} file; send PNG, JPEG, WebP or GIF",
                                 {"parameter": parameter})
            _check_pixels(img, what, parameter)
            width, height = img.size
            img.verify()
        with BUDGET.hold(width * height * DECODE_BYTES_PER_PIXEL, "decoding " + what), \
                Image.open(io.BytesIO(data)) as img:
            img.load()
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"{what} has too many pixels to decode safely (more than "
                            f"{Image.MAX_IMAGE_PIXELS} pixels)", {"parameter": parameter}) from None
    except UnidentifiedImageError:
        if data.startswith(SIGNATURES):
            raise BadRequest(f"{what} starts like an image but is damaged or incomplete and cannot be decoded",
                             {"parameter": parameter}) from None
        raise BadRequest(f"{what} is not a PNG, JPEG, WebP or GIF file", {"parameter": parameter}) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        raise BadRequest(f"{what} is damaged or incomplete and cannot be decoded ({exc})",
                         {"parameter": parameter}) from None
    return fmt


def _check_pixels(img: Image.Image, what: str, parameter: str) -> None:
    width, height = img.size
    if width * height > Image.MAX_IMAGE_PIXELS:
        raise ImageTooLarge(f"{what} is {width}x{height} = {width * height} pixels; at most "
                            f"{Image.MAX_IMAGE_PIXELS} can be decoded safely", {"parameter": parameter})


@dataclass
class Photo:
    """A decoded photo as stored (orientation not applied), and what must survive an edit."""

    image: Image.Image  # RGB or RGBA
    format: str  # png | jpeg | webp | gif
    exif: bytes | None
    icc: bytes | None

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def open_photo(data: bytes) -> Photo:
    """Decode checked image bytes (see `check_image`) into RGB/RGBA, keeping EXIF and the ICC profile."""
    img = Image.open(io.BytesIO(data))  # not closed: an RGB photo is kept as decoded, not copied (24 MP = 96 MB)
    fmt = FORMATS.get(img.format or "", "png")
    exif = img.info.get("exif") or None
    icc = img.info.get("icc_profile") or None
    img.load()
    if img.mode == "CMYK":
        icc = None  # a CMYK profile does not describe the RGB pixels we make
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        decoded = img.convert("RGBA")
    else:
        decoded = img.convert("RGB") if img.mode != "RGB" else img
    return Photo(decoded, fmt, exif, icc)


def orientation(exif: bytes | None) -> int:
    """The EXIF orientation (1..8; 1 when there is none or it is out of range)."""
    if not exif:
        return 1
    tags = Image.Exif()
    tags.load(exif)
    value = tags.get(0x0112, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(photo: Photo) -> Image.Image:
    """The photo turned as its EXIF orientation says, as RGB (what a model must see)."""
    img = photo.image
    if orientation(photo.exif) != 1:
        turned = img.copy()
        turned.info["exif"] = photo.exif
        img = ImageOps.exif_transpose(turned)
    return img.convert("RGB") if img.mode != "RGB" else img


def upright_exif(exif: bytes | None) -> bytes | None:
    """The EXIF block for pixels that were already turned upright: everything kept but the orientation,
    which would otherwise turn them a second time."""
    if not exif:
        return None
    tags = Image.Exif()
    tags.load(exif)
    if tags.get(0x0112, 1) == 1:
        return exif
    tags[0x0112] = 1
    return tags.tobytes()


def output_format(source: str, requested: str | None) -> str:
    """The requested format, else the source's (a GIF comes back as PNG)."""
    if requested:
        return requested
    return source if source in SAVE_AS else "png"


def save(img: Image.Image, fmt: str, exif: bytes | None = None, icc: bytes | None = None) -> bytes:
    """Encode with the photo's EXIF and ICC profile; JPEG at high quality without chroma subsampling."""
    if fmt == "jpeg" and img.mode != "RGB":
        img = img.convert("RGB")
    options: dict[str, object] = {}
    if exif:
        options["exif"] = exif
    if icc:
        options["icc_profile"] = icc
    if fmt == "jpeg":
        options.update(quality=JPEG_QUALITY, subsampling=0)
    elif fmt == "webp":
        options.update(quality=JPEG_QUALITY)
    elif fmt == "png":
        options.update(compress_level=1)  # a 24 MP PNG at level 6 takes seconds; size matters less here
    out = io.BytesIO()
    img.save(out, SAVE_AS[fmt], **options)
    return out.getvalue()


def mask_levels(mask: Image.Image) -> Image.Image:
    """An "L" mask, white = change: from a transparent area (ComfyUI's mask editor) when the mask has
    one, else from its brightness."""
    if "A" in mask.getbands():
        alpha = mask.getchannel("A")
        if alpha.getextrema() != (255, 255):
            return ImageOps.invert(alpha)
    return mask.convert("L")


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG", compress_level=1)
    return out.getvalue()


def sized_mask(mask_data: bytes, size: tuple[int, int]) -> tuple[Image.Image, bool]:
    """The mask as upright grey levels (white = change) at `size` -> (mask, whether it had to be resized)."""
    with Image.open(io.BytesIO(mask_data)) as m:
        level = mask_levels(ImageOps.exif_transpose(m))
    if level.size == size:
        return level, False
    return level.resize(size, Image.Resampling.BILINEAR), True


def image_size(data: bytes) -> tuple[int, int]:
    """The upright size of image bytes (header only)."""
    with Image.open(io.BytesIO(data)) as img:
        width, height = img.size
        if img.format == "PNG":  # Pillow's getexif() decodes a whole PNG to look for a late eXIf chunk
            exif = Image.Exif()
            if img.info.get("exif"):
                exif.load(img.info["exif"])
            orientation = exif.get(0x0112, 1)
        else:
            orientation = img.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _stored(data: bytes) -> tuple[tuple[int, int], int]:
    """(size as stored, EXIF orientation) of image bytes (header only)."""
    with Image.open(io.BytesIO(data)) as img:
        value = img.getexif().get(0x0112, 1)
        return img.size, value if isinstance(value, int) and 1 <= value <= 8 else 1


def shown_mask(mask_data: bytes, stored: tuple[int, int], orientation: int) -> tuple[Image.Image, str | None]:
    """The mask as upright grey levels at the picture's size as shown -> (mask, note or None).

    A mask of the picture's *stored* size, when the picture is turned a quarter by its EXIF orientation,
    was drawn on the file's grid (a portrait stored landscape): it is turned like the picture rather than
    stretched. Any other size is resized. The note says which happened."""
    shown = (stored[1], stored[0]) if orientation in (5, 6, 7, 8) else stored
    if stored != shown and image_size(mask_data) == stored:
        level, _ = sized_mask(mask_data, stored)
        return level.transpose(UPRIGHT[orientation]), (f"the mask had the file's stored size and was turned with "
                                                       f"the picture's EXIF orientation to {shown[0]}x{shown[1]}")
    level, resized = sized_mask(mask_data, shown)
    return level, f"the mask was resized to the image's {shown[0]}x{shown[1]}" if resized else None


def mask_file(mask_data: bytes, image_data: bytes) -> tuple[bytes, str | None]:
    """A mask for LoadImageMask at the image's size as shown: grey levels in R, G and B, and alpha =
    255 - level, so the `red` channel and the `alpha` channel (ComfyUI inverts it) both mean white =
    change. -> (PNG, a note when the mask had to be resized or turned)."""
    level, note = shown_mask(mask_data, *_stored(image_data))
    rgba = Image.merge("RGBA", (level, level, level, ImageOps.invert(level)))
    return _png(rgba), note


def with_alpha_mask(image_data: bytes, mask_data: bytes) -> tuple[bytes, str | None]:
    """The image (upright) with the mask in its alpha channel — transparent = change, what LoadImage's MASK
    output reads. -> (PNG, a note when the mask had to be resized or turned)."""
    with Image.open(io.BytesIO(image_data)) as img:
        rgb = ImageOps.exif_transpose(img).convert("RGB")
    level, note = shown_mask(mask_data, *_stored(image_data))
    rgba = rgb.convert("RGBA")
    rgba.putalpha(ImageOps.invert(level))
    return _png(rgba), note
