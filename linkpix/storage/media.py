"""The kinds of file the cache keeps: pictures LinkPix encodes, and the other files a run saves, kept as they are.

ComfyUI's output nodes save more than pictures: SaveVideo an MP4 or WebM, SaveAudio a FLAC, SaveAudioMP3 an MP3,
SaveAudioOpus an Ogg Opus, VideoHelperSuite's VHS_VideoCombine a GIF or MP4, SaveAnimatedWEBP an animated WebP,
SaveGLB a 3D model, SaveLatent a latent. A run's files are stored beside the pictures under their own
extension, byte for byte, and served with the content type named here. A file of a kind not listed is kept
as `.bin` and served as `application/octet-stream`: LinkPix's origin never serves a run's file as something
a browser would run (HTML, SVG).
"""

from __future__ import annotations

import hashlib
import re

import puremagic

from linkpix.model import InputImage
from linkpix.storage.uploads import Uploads

PICTURE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}  # what `output_format` names
MEDIA_TYPES = {
    "gif": "image/gif",
    "mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime", "mkv": "video/x-matroska",
    "flac": "audio/flac", "mp3": "audio/mpeg", "opus": "audio/ogg", "ogg": "audio/ogg", "wav": "audio/wav",
    "m4a": "audio/mp4",
    "glb": "model/gltf-binary",
    "latent": "application/octet-stream", "bin": "application/octet-stream",
}
FILE_TYPES = {**PICTURE_TYPES, **MEDIA_TYPES}  # every extension a cached file may have, with its content type
FILE_RE = re.compile(r"^[0-9a-f]{16,64}\.(" + "|".join(FILE_TYPES) + r")$")
_ALIASES = {"jpg": "jpeg", "m4v": "mp4", "oga": "ogg"}
_SNIFFED = {**_ALIASES, "opus": "ogg", "3gp": "mp4"}  # puremagic's names for an Ogg Opus, a 3GPP-branded MP4
_MEDIA_INPUTS = frozenset({"flac", "ogg", "mp3", "wav", "mp4", "mov", "m4a", "webm", "mkv"})  # LoadAudio's, LoadVideo's


def file_format(filename: str) -> str:
    """The cache's extension for a file ComfyUI saved under `filename` (its own, lower-cased; `bin` for a kind
    the cache does not serve under its own type)."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    ext = _ALIASES.get(ext, ext)
    return ext if ext in FILE_TYPES else "bin"


def is_picture(fmt: str) -> bool:
    """Whether a cached file's format is one LinkPix encodes pictures in (PNG, JPEG, WebP)."""
    return fmt in PICTURE_TYPES


def sniff_media(data: bytes) -> str | None:
    """The extension of audio or video bytes, read from their signature by puremagic (not from a name or a
    declared type, which a client chooses): FLAC, Ogg (Vorbis, Opus), MP3, WAV, MP4 / MOV / M4A, WebM /
    Matroska; None for anything else (a picture, HTML, an unknown file)."""
    try:
        ext = puremagic.from_string(data).lstrip(".").lower()
    except (puremagic.PureError, ValueError):
        return None
    ext = _SNIFFED.get(ext, ext)
    return ext if ext in _MEDIA_INPUTS else None


def media_input(data: bytes) -> InputImage | None:
    """Audio or video bytes as an input file for ComfyUI (a LoadAudio's or LoadVideo's), content-addressed like
    an uploaded image (`linkpix_<hash>.<ext>`: ComfyUI's lists filter the input folder by extension); None
    when the bytes are neither."""
    ext = sniff_media(data)
    return None if ext is None else InputImage(f"linkpix_{hashlib.sha256(data).hexdigest()[:16]}.{ext}", data)


def keep_input(uploads: Uploads, data: bytes, max_bytes: int) -> InputImage:
    """An input for ComfyUI kept in `uploads`: audio or video as it came (never decoded), anything else as the
    picture `uploads.put` checks it is (its BadRequest when it is not)."""
    media = media_input(data)
    if media is None:
        return uploads.put(data, max_bytes)
    uploads.keep(media)
    return media
