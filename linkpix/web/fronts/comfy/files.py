"""Input images uploaded through the ComfyUI front (`POST /upload/image`), and graphs that use them.

ComfyUI keeps uploads in one input folder per server; LinkPix may run a graph on any backend, so an
upload is kept by LinkPix (under the user's own id, in the upload store) under the name the client gave it,
with ComfyUI's naming rules (same name and bytes: the same file; same name, other bytes: `name (1).png`).
When a graph names such a file, it is rewritten to the content-addressed name and the bytes travel with
the job, so the generator uploads them to whichever backend runs it, and the cache key covers them.
"""

from __future__ import annotations

import copy
import re
import threading
from typing import Any

from linkpix.errors import BadRequest, LinkPixError
from linkpix.model import MAX_INPUT_IMAGE_BYTES, InputImage
from linkpix.pipeline.request import parse_images
from linkpix.storage.owners import content_named, is_owner
from linkpix.storage.uploads import Uploads
from linkpix.web.fronts.comfy.graphcheck import is_file_input, is_loader, loader_file_inputs, refuse

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
        image = self.store.put(data, max_bytes, owner=user)  # 400 unless it decodes fully, 413 when too large
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

    def own_upload(self, user: str, upload_id: str) -> InputImage | None:
        """An upload id of the caller's (POST /uploads), named directly in a graph."""
        if not upload_id.startswith("linkpix_") or "/" in upload_id or "\\" in upload_id:
            return None
        try:
            image = self.store.get(upload_id)
        except LinkPixError:
            return None
        return image if is_owner(self.store.secret(), user, image) else None

    def bind(self, user: str, graph: dict[str, Any],
             max_bytes: int = MAX_INPUT_IMAGE_BYTES) -> tuple[dict[str, Any], tuple[InputImage, ...]]:
        """The graph with the caller's file names replaced by their content names, and those images.

        A `data:image/...;base64,...` value (SillyTavern's `%char_avatar%` / `%user_avatar%`, which stock
        ComfyUI cannot load) is stored as the caller's upload first, as if sent to /upload/image.

        A loader's file input (LoadImage.image...) that is not one of the caller's uploads is refused in
        ComfyUI's validation shape (graphcheck.py), as is any loader input that climbs out of its folder.
        """
        found: dict[str, InputImage] = {}
        rewritten = copy.deepcopy(graph)
        for node_id, class_type, name, value in loader_file_inputs(graph):
            if not is_file_input(name):
                continue
            if value.startswith("data:"):
                value = self._data_uri(user, node_id, name, value, max_bytes)
            image = self.get(user, value) or self.own_upload(user, value)
            if image is None:
                raise refuse(node_id, class_type, name, value,
                             "not one of your uploaded files: upload it first (POST /upload/image)")
            image = content_named(image)  # the run names it by its bytes (cache key, working copy)
            rewritten[node_id]["inputs"][name] = image.name
            found[image.name] = image
        for node_id, node in graph.items():  # other nodes' image/mask inputs that name an upload
            inputs = node.get("inputs") if isinstance(node, dict) else None
            if not isinstance(inputs, dict) or is_loader(node.get("class_type")):
                continue
            for key in ("image", "mask"):
                value = inputs.get(key)
                if isinstance(value, str) and value.startswith("data:"):
                    value = self._data_uri(user, node_id, key, value, max_bytes)
                image = self.get(user, value) if isinstance(value, str) and value else None
                if image is not None:
                    image = content_named(image)
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

