"""What ComfyUI says over its websocket, as values: `Event` and the frame decoders.

Kept apart from the socket so that the wire format (protocol reference §8.4, §8.5) is decoded in one
place and can be tested against the captures without a server. Decoders never raise: a frame that does
not parse is logged and dropped, because one bad frame must not stop the reader for every prompt.
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# Text message types routed to the waiter of their prompt_id (reference §8.4).
PROMPT_EVENTS = frozenset({
    "execution_start", "execution_cached", "executing", "progress", "progress_state", "executed",
    "execution_success", "execution_error", "execution_interrupted",
})
# Events after which the prompt is over; `executing {node: null}` follows once history is written.
TERMINAL_EVENTS = frozenset({"execution_success", "execution_error", "execution_interrupted"})

# Binary frame event types (reference §8.5).
BINARY_PREVIEW = 1
BINARY_TEXT = 3
BINARY_PREVIEW_WITH_METADATA = 4
LEGACY_IMAGE_FORMATS = {1: "image/jpeg", 2: "image/png"}

_U32 = struct.Struct(">I")


@dataclass(frozen=True)
class Event:
    """One thing ComfyUI reported about a prompt.

    `type` is the ComfyUI message type ("progress", "executing", ...), "preview" for a binary preview
    image, or "progress_text" for a binary text frame (the names the ComfyUI frontend uses).
    """

    type: str
    prompt_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    image: bytes | None = None
    image_mime: str | None = None

    @property
    def is_completion(self) -> bool:
        """True for `executing {node: null}`: the prompt is over and its history entry is written."""
        return self.type == "executing" and self.data.get("node") is None and self.prompt_id is not None


@dataclass(frozen=True)
class OutputImage:
    """One file a finished prompt produced (a picture, or a video, audio...), with where ComfyUI keeps it."""

    data: bytes
    filename: str
    subfolder: str
    type: str
    node_id: str
    prompt_id: str
    content_type: str
    kind: str = "images"  # the key of the node's output ComfyUI listed it under: images, audio, gifs, 3d...


def parse_text_frame(text: str | bytes) -> Event | None:
    """A JSON text frame as an Event, or None when it is not a `{"type": str, "data": {...}}` object."""
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        log.warning("ComfyUI sent a text frame that is not JSON: %.80r", text)
        return None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        log.warning("ComfyUI sent a message without a type: %.80r", text)
        return None
    data = message.get("data")
    if not isinstance(data, dict):
        data = {}
    prompt_id = data.get("prompt_id")
    return Event(message["type"], str(prompt_id) if prompt_id is not None else None, data)


def _sniff_mime(image: bytes) -> str | None:
    if image.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if image.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if image[:4] == b"RIFF" and image[8:12] == b"WEBP":
        return "image/webp"
    return None


def decode_binary_frame(frame: bytes, current_prompt: str | None = None) -> Event | None:
    """A binary frame as a "preview" or "progress_text" Event, or None if it is malformed or unknown.

    Legacy previews (type 1) and text frames (type 3) do not say which prompt they belong to; they are
    attributed to `current_prompt`, the prompt this client last saw executing.
    """
    if len(frame) < 4:
        log.warning("ComfyUI sent a binary frame of %d bytes, too short for a header", len(frame))
        return None
    (kind,) = _U32.unpack_from(frame, 0)
    if kind == BINARY_PREVIEW:
        if len(frame) < 8:
            log.warning("ComfyUI sent a preview frame without an image format")
            return None
        (fmt,) = _U32.unpack_from(frame, 4)
        image = frame[8:]
        mime = LEGACY_IMAGE_FORMATS.get(fmt) or _sniff_mime(image)
        return Event("preview", current_prompt, {"format": fmt, "legacy": True}, image, mime)
    if kind == BINARY_PREVIEW_WITH_METADATA:
        meta = _length_prefixed(frame)
        if meta is None:
            return None
        raw, image = meta
        try:
            metadata = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            log.warning("ComfyUI sent a preview frame whose metadata is not JSON")
            return None
        if not isinstance(metadata, dict):
            log.warning("ComfyUI sent a preview frame whose metadata is not an object")
            return None
        prompt_id = metadata.get("prompt_id")
        mime = metadata.get("image_type") or _sniff_mime(image)
        return Event("preview", str(prompt_id) if prompt_id is not None else current_prompt, metadata,
                     image, mime)
    if kind == BINARY_TEXT:
        parts = _length_prefixed(frame)
        if parts is None:
            return None
        node_id, text = parts
        data = {"node": node_id.decode("utf-8", "replace"), "text": text.decode("utf-8", "replace")}
        return Event("progress_text", current_prompt, data)
    log.debug("ignoring binary frame of unknown type %d", kind)
    return None


def _length_prefixed(frame: bytes) -> tuple[bytes, bytes] | None:
    """Split `type, uint32 N, N bytes, rest` into (N bytes, rest); None if N runs past the frame."""
    if len(frame) < 8:
        log.warning("ComfyUI sent a binary frame without its length field")
        return None
    (length,) = _U32.unpack_from(frame, 4)
    if 8 + length > len(frame):
        log.warning("ComfyUI sent a binary frame whose length field (%d) exceeds the frame", length)
        return None
    return frame[8:8 + length], frame[8 + length:]


ImageRef = tuple[str, dict[str, Any]]  # (node id, {"filename", "subfolder", "type", "kind"}) as ComfyUI lists a file


def output_refs(outputs: Any) -> list[ImageRef]:
    """The files a prompt's outputs (a history entry's `outputs`) name: the saved ones ("output"), else the
    previews ("temp"); what the client downloads as the prompt's outputs. Those under a node's `images` come
    first (node order, then file order), so a run with pictures answers with the same first picture as when
    only pictures were read; then the files under its other keys (`audio` from SaveAudio, `gifs` from
    VideoHelperSuite, `3d` from SaveGLB, `latents`...), each ref's `kind` naming the key. SaveVideo's MP4 is
    under `images` (with `animated: [true]`, ComfyUI 0.3.64): what it is is read from the bytes later."""
    refs: dict[str, list[ImageRef]] = {"output": [], "temp": []}
    others: dict[str, list[ImageRef]] = {"output": [], "temp": []}
    for node_id, ui in (outputs.items() if isinstance(outputs, dict) else ()):
        for kind, files in ui.items() if isinstance(ui, dict) else ():
            if not isinstance(files, list):
                continue  # `animated: [true]` and `text: [...]` are lists too, but of no files: skipped below
            for file in files:
                if isinstance(file, dict) and file.get("type") in refs and file.get("filename"):
                    found = refs if kind == "images" else others
                    found[file["type"]].append((str(node_id), dict(file, kind=str(kind))))
    return (refs["output"] + others["output"]) or (refs["temp"] + others["temp"])


def executed_refs(event: Event) -> list[ImageRef]:
    """The saved files ("output") an `executed` event reports for its node: the files exist once it is sent."""
    if event.type != "executed" or event.data.get("node") is None:
        return []
    refs = output_refs({str(event.data["node"]): event.data.get("output")})
    return [ref for ref in refs if ref[1].get("type") == "output"]


def same_image(a: ImageRef, b: ImageRef) -> bool:
    """Whether two references name the same file of the same node."""
    return a[0] == b[0] and all((a[1].get(k) or "") == (b[1].get(k) or "") for k in ("filename", "subfolder", "type"))

