"""Pictures the simulator draws and saves: plainly labelled fakes, never presented as AI output.

A sampler path yields the requested size filled with a colour derived from the seed, the positive prompt
written over it and a "SIMULATOR - not AI" label, so tests can check that size, seed and prompt arrived.
Saving follows ComfyUI's naming (`<prefix>_<counter:05d>_.png`, counter = 1 + highest existing).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import textwrap
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from linkpix.imaging.textdraw import draw_text, text_font
from linkpix.storage.jsonstore import atomic_write_bytes

LABEL = "SIMULATOR - not AI"


def seed_colour(seed: int) -> tuple[int, int, int]:
    """The background colour of a picture sampled with `seed` (stable across runs and machines)."""
    digest = hashlib.sha256(str(int(seed)).encode("ascii")).digest()
    return digest[0], digest[1], digest[2]


def render_picture(width: int, height: int, seed: int, text: str, index: int = 0) -> Image.Image:
    """The fake 'generated' image: seed colour, prompt text (any script), and the simulator label."""
    bg = seed_colour(seed)
    img = Image.new("RGB", (max(1, int(width)), max(1, int(height))), bg)
    lum = 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2]
    ink = (0, 0, 0) if lum > 140 else (255, 255, 255)
    draw = ImageDraw.Draw(img)
    w, h = img.size
    size = max(8, min(w, h) // 16)
    font = text_font(size)
    chars = max(8, int(w / (size * 0.6)))
    lines = [part for raw in str(text).split("\n") for part in (textwrap.wrap(raw, chars) or [""])]
    body = "\n".join(lines[: max(1, (h // (font.line_height + 2)) - 2)])
    draw_text(draw, (size // 2, size // 2), body, font, ink, spacing=2)
    label = LABEL if index == 0 else f"{LABEL} #{index}"
    bar = size + 6
    draw.rectangle([0, h - bar, w, h], fill=(0, 0, 0))
    draw_text(draw, (4, h - bar + 2), label, font, (255, 255, 0))
    # Keep the corner pixels the pure seed colour, so tests can read it back exactly.
    img.putpixel((w - 1, 0), bg)
    img.putpixel((0, 0), bg)
    return img


def preview_jpeg(img: Image.Image, max_size: int = 512) -> bytes:
    """A latent-preview-like JPEG (ComfyUI fits previews into --preview-size, default 512)."""
    w, h = img.size
    scale = max_size / max(w, h)
    preview = img.convert("RGB").resize((max(1, round(w * scale)), max(1, round(h * scale))))
    buf = io.BytesIO()
    preview.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def with_noise(img: Image.Image, amount: float) -> Image.Image:
    """`img` under grain of strength `amount` (0..1), as a sampler's early steps look (and weigh: a 512 px
    JPEG at quality 95 of it is ~50-75 KB, as ComfyUI's previews of a real model are)."""
    grain = Image.effect_noise(img.size, 4.0 + 12.0 * min(1.0, max(0.0, amount))).convert("RGB")
    return Image.blend(img.convert("RGB"), grain, 0.2)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def get_save_image_path(filename_prefix: str, output_dir: Path, width: int = 0,
                        height: int = 0) -> tuple[Path, str, int, str]:
    """ComfyUI's folder_paths.get_save_image_path: (folder, name, next counter, subfolder)."""
    out_dir = os.path.abspath(output_dir)

    if "%" in filename_prefix:
        now = time.localtime()
        for token, value in (("%width%", str(width)), ("%height%", str(height)), ("%year%", str(now.tm_year)),
                             ("%month%", str(now.tm_mon).zfill(2)), ("%day%", str(now.tm_mday).zfill(2)),
                             ("%hour%", str(now.tm_hour).zfill(2)), ("%minute%", str(now.tm_min).zfill(2)),
                             ("%second%", str(now.tm_sec).zfill(2))):
            filename_prefix = filename_prefix.replace(token, value)

    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full = os.path.join(out_dir, subfolder)
    if os.path.commonpath((out_dir, os.path.abspath(full))) != out_dir:
        raise Exception("**** ERROR: Saving image outside the output folder is not allowed."
                        f"\n full_output_folder: {os.path.abspath(full)}\n         output_dir: {out_dir}"
                        f"\n         commonpath: {os.path.commonpath((out_dir, os.path.abspath(full)))}")

    prefix_len = len(os.path.basename(filename_prefix))

    def map_filename(name: str) -> tuple[int, str]:
        prefix = name[: prefix_len + 1]
        try:
            digits = int(name[prefix_len + 1:].split("_")[0])
        except ValueError:
            digits = 0
        return digits, prefix

    try:
        matches = [m for m in map(map_filename, os.listdir(full))
                   if os.path.normcase(m[1][:-1]) == os.path.normcase(filename) and m[1][-1:] == "_"]
        counter = max(matches)[0] + 1 if matches else 1
    except FileNotFoundError:
        os.makedirs(full, exist_ok=True)
        counter = 1
    return Path(full), filename, counter, subfolder


def save_images(images: list[Image.Image], filename_prefix: str, folder: Path, kind: str,
                prompt: Any, extra_pnginfo: Any, compress_level: int) -> list[dict[str, str]]:
    """SaveImage/PreviewImage: write each image as PNG with `prompt` + extra_pnginfo text chunks."""
    first = images[0]
    full, filename, counter, subfolder = get_save_image_path(filename_prefix, folder, first.width, first.height)
    results = []
    for batch_number, img in enumerate(images):
        meta = PngInfo()
        if prompt is not None:
            meta.add_text("prompt", json.dumps(prompt))
        if isinstance(extra_pnginfo, dict):
            for key, value in extra_pnginfo.items():
                meta.add_text(str(key), json.dumps(value))
        name = f"{filename.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
        buf = io.BytesIO()
        img.save(buf, format="PNG", pnginfo=meta, compress_level=compress_level)
        atomic_write_bytes(full / name, buf.getvalue())
        results.append({"filename": name, "subfolder": subfolder, "type": kind})
        counter += 1
    return results


def save_video(frames: list[Image.Image], filename_prefix: str, folder: Path) -> dict[str, str]:
    """SaveVideo: one `.mp4` file (here an MP4 `ftyp` box and the frames as JPEG, not a playable video: what
    matters to a client is that the output is a video file, not a picture), listed as ComfyUI 0.3.64 lists
    it: under the node's `images`, with `animated: [true]` beside them (captured from the real server)."""
    first = frames[0]
    full, filename, counter, subfolder = get_save_image_path(filename_prefix, folder, first.width, first.height)
    name = f"{filename}_{counter:05}_.mp4"
    body = io.BytesIO()
    for frame in frames:
        frame.convert("RGB").save(body, format="JPEG", quality=60)
    head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    mdat = body.getvalue()
    atomic_write_bytes(full / name, head + (len(mdat) + 8).to_bytes(4, "big") + b"mdat" + mdat)
    return {"filename": name, "subfolder": subfolder, "type": "output"}
