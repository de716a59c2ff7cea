"""Input images uploaded through the ComfyUI front (`POST /upload/image`), and graphs that use them.

ComfyUI keeps uploads in one input folder per server; LinkPix may run a graph on any backend, so an
upload is kept by LinkPix (content-addressed, in the upload store) under the name the client gave it,
with ComfyUI's naming rules (same name and bytes: the same file; same name, other bytes: `name (1).png`).
When a graph names such a file, it is rewritten to the content-addressed name and the bytes travel with
the job, so the generator uploads them to whichever backend runs it, and the cache key covers them.
"""

from __future__ import annotations

import copy
import re
import threading
from typing import Any

from linkpix.errors import BadRequest
from linkpix.model import MAX_INPUT_IMAGE_BYTES, InputImage
from linkpix.pipeline.request import parse_images
from linkpix.storage.uploads import Uploads

_NAME_RE = re.compile(r"^[^/\\\x00]{1,200}$")


class InputFiles:
    """user -> {client's file name -> upload id}; the bytes live in the upload store."""

    def __init__(self, store: Uploads) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._names: dict[str, dict[str, str]] = {}

    def put(self, user: str, name: str, data: bytes, max_bytes: int, subfolder: str = "",
            overwrite: bool = False) -> str:
        """Store an upload; returns the name to use (maybe `name (1).ext`), without the subfolder."""
        if not _NAME_RE.match(name or "") or name in (".", ".."):
            raise BadRequest(f"invalid file name {name!r}")
        if ".." in subfolder.replace("\\", "/").split("/") or subfolder.startswith(("/", "\\")):
            raise BadRequest(f"subfolder {subfolder!r} must stay inside the input folder")
        image = self.store.put(data, max_bytes)  # 400 unless it decodes fully, 413 when too large
        stem, dot, ext = name.rpartition(".")
        stem, ext = (stem, dot + ext) if dot else (name, "")
        with self._lock:
            names = self._names.setdefault(user, {})
            candidate, n = name, 0
            while not overwrite and _key(subfolder, candidate) in names \
                    and names[_key(subfolder, candidate)] != image.name:
                n += 1
                candidate = f"{stem} ({n}){ext}"
            names[_key(subfolder, candidate)] = image.name
        return candidate

    def get(self, user: str, name: str) -> InputImage | None:
        with self._lock:
            upload_id = self._names.get(user, {}).get(name.split(" [", 1)[0])
        return self.store.get(upload_id) if upload_id else None

    def bind(self, user: str, graph: dict[str, Any],
             max_bytes: int = MAX_INPUT_IMAGE_BYTES) -> tuple[dict[str, Any], tuple[InputImage, ...]]:
        """The graph with uploaded file names replaced by their content names, and those images.

        A `data:image/...;base64,...` value (SillyTavern's `%char_avatar%` / `%user_avatar%`, which stock
        ComfyUI cannot load) is stored as the caller's upload first, as if sent to /upload/image."""
        found: dict[str, InputImage] = {}
        rewritten = graph
        for node_id, node in graph.items():
            inputs = node.get("inputs") if isinstance(node, dict) else None
            if not isinstance(inputs, dict):
                continue
            for key in ("image", "mask"):
                value = inputs.get(key)
                if isinstance(value, str) and value.startswith("data:"):
                    value = self._data_uri(user, node_id, key, value, max_bytes)
                image = self.get(user, value) if isinstance(value, str) and value else None
                if image is None:
                    continue
                if rewritten is graph:
                    rewritten = copy.deepcopy(graph)
                rewritten[node_id]["inputs"][key] = image.name
                found[image.name] = image
        return rewritten, tuple(found.values())

    def _data_uri(self, user: str, node_id: str, key: str, value: str, max_bytes: int) -> str:
        """Store a `data:image/...;base64,` value as `user`'s upload; -> the file name to bind."""
        if not value.startswith("data:image/") or ";base64," not in value[:100]:
            raise BadRequest(f"node {node_id} input {key}: a data URI must be data:image/...;base64,...",
                             {"parameter": f"{node_id}.{key}"})
        try:
            image = parse_images([value], max_bytes, f"{node_id}.{key}")[0]
        except BadRequest as exc:
            raise BadRequest(f"node {node_id} input {key}: {exc.message}", exc.details) from None
        return self.put(user, image.name, image.data, max_bytes)


def _key(subfolder: str, name: str) -> str:
    folder = subfolder.strip("/")
    return f"{folder}/{name}" if folder else name

