"""The values that travel along the pipeline, and the name rules every room checks against.

A request (`GenerationRequest`, with its `InputImage`s) becomes a `RenderedJob`; storage, jobs, render,
edit and the web surfaces all hold these values, so they live here, below the pipeline, where every room
can import them without importing the stages that make them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from linkpix.errors import BadRequest
from linkpix.imaging.photo import EXTENSIONS, check_image

USER_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
WORKFLOW_NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
STYLE_NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")
CHAR_NAME_RE = STYLE_NAME_RE  # character profiles follow the styles' naming rule
PARAM_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

SEED_MAX = 2**64 - 1  # ComfyUI's KSampler/RandomNoise range
# The default of `max_upload_mb`; the routes pass the configured limit (`settings.max_upload_mb`).
MAX_INPUT_IMAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class InputImage:
    """An image to upload to ComfyUI before the run; `name` is content-addressed, so identical
    uploads share one file and the name can go into the cache key."""

    name: str
    data: bytes

    def __repr__(self) -> str:  # never dump megabytes into a log line
        return f"InputImage(name={self.name!r}, {len(self.data)} bytes)"


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a client asked for, validated for shape, not yet merged with defaults."""

    prompt: str
    user: str = "default"
    workflow: str | None = None  # None -> user's preference -> settings.workflow_path
    styles: tuple[str, ...] | None = None  # None -> user's default style
    params: Mapping[str, Any] = field(default_factory=dict)  # parameter name -> raw value
    seed: int | None = None  # None -> derived from the request
    random_seed: bool = False
    output_format: str | None = None  # png | jpeg | webp | None (-> settings.image_format)
    input_images: tuple[InputImage, ...] = ()
    mask: InputImage | None = None  # inpainting: white (or transparent) = the area to change
    char: str | None = None  # a character profile's name (pipeline/characters.py)
    char_owner: str | None = None  # whose profiles `char` names, when not `user` (a link's user is not a key's)

    def __post_init__(self) -> None:
        # Read-only view: a request is a value; nobody downstream may change what the client asked.
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


def validate_user(name: str) -> str:
    """Return `name` if it is a valid user name (it becomes a folder under cache/), else BadRequest."""
    if not isinstance(name, str) or not USER_NAME_RE.match(name):
        raise BadRequest(f"invalid user name {name!r}: use 1-64 letters, digits, '-' or '_'",
                         {"parameter": "user"})
    return name


def validate_workflow_name(name: str) -> str:
    """Syntax of a workflow file name: no folders, no traversal, only [A-Za-z0-9_.-].

    Existence is checked by the resolver. A name without `.json` gets it appended (`sd15` = `sd15.json`).
    """
    if not isinstance(name, str) or not WORKFLOW_NAME_RE.match(name) or ".." in name:
        raise BadRequest(f"invalid workflow name {name!r}: a file name from the workflows folder, "
                         "using only letters, digits, '.', '-' and '_'", {"parameter": "workflow"})
    return name if name.endswith(".json") else name + ".json"


def make_input_image(data: bytes, index: int = 0, max_bytes: int = MAX_INPUT_IMAGE_BYTES,
                     parameter: str = "images") -> InputImage:
    """Content-addressed InputImage from raw bytes: 400 unless they decode completely as PNG, JPEG, WebP
    or GIF, 413 over `max_bytes` or past Pillow's decompression-bomb limit."""
    what = "the mask" if parameter == "mask" else f"image {index + 1}"
    ext = EXTENSIONS[check_image(data, max_bytes, what, parameter)]
    return InputImage(f"linkpix_{hashlib.sha256(data).hexdigest()[:16]}.{ext}", data)


def png_input_image(data: bytes) -> InputImage:
    """A PNG that LinkPix made itself (a downscaled source, a resized mask), content-addressed like uploads."""
    return InputImage(f"linkpix_{hashlib.sha256(data).hexdigest()[:16]}.png", data)


@dataclass(frozen=True)
class RenderedJob:
    """Everything the generator needs to run one request, and everything the API reports back."""

    graph: dict[str, Any]  # the API-format graph to POST to ComfyUI
    workflow: str  # workflow file name
    prompt: str  # final positive prompt (after styles)
    negative: str
    seed: int
    seed_is_random: bool
    params: dict[str, Any]  # every resolved parameter value (for metadata / X- headers)
    output_format: str
    uploads: tuple[InputImage, ...]  # images to upload (under their names) before submitting
    ignored: tuple[str, ...]  # request params the chosen workflow does not accept
    notes: tuple[str, ...] = ()  # what LinkPix changed on the way, for the client (a resized mask...)
    edit: dict[str, Any] | None = None  # an edit job: {source: upload id, method, format} (see edit/editor.py)
    provider: str | None = None  # <provider>:<model>: run on a hosted API instead of ComfyUI (providers/)
    fallback: str | None = None  # where it goes if no ComfyUI backend can run it (provider_fallback)


