"""Input images by content-addressed id, on disk under `data/uploads/`: what `POST /uploads` stores and
what jobs, links and edits name by id.

A job must survive a restart, so its input images are kept here by name rather than inside the job row.
With `storage: s3` they are kept in the bucket instead (`s3uploads.py`, the same interface), so replicas
without a shared folder see each other's uploads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from linkpix.errors import BadRequest, NotFound
from linkpix.model import MAX_INPUT_IMAGE_BYTES, InputImage, make_input_image
from linkpix.storage.diskfull import room_in
from linkpix.storage.jsonstore import atomic_write_bytes
from linkpix.storage.owners import file_secret, owned_copy


class Uploads(Protocol):
    """What jobs, links, edits and retention need of an upload store (this folder, or `s3uploads.py`)."""

    def put(self, data: bytes, max_bytes: int = ..., owner: str | None = ...) -> InputImage: ...
    def secret(self) -> bytes: ...
    def keep(self, image: InputImage) -> None: ...
    def get(self, upload_id: str, parameter: str = ...) -> InputImage: ...
    def exists(self, upload_id: str) -> bool: ...
    def entries(self) -> Iterator[tuple[str, float]]: ...
    def delete(self, upload_id: str) -> bool: ...


class UploadStore:
    """Input images by content-addressed id (`linkpix_<hash>.<ext>`), kept for jobs and `POST /uploads`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._secret: bytes | None = None

    def secret(self) -> bytes:
        """The key of upload ids (storage/owners.py), made once in this folder."""
        if self._secret is None:
            self._secret = file_secret(self.root)
        return self._secret

    def put(self, data: bytes, max_bytes: int = MAX_INPUT_IMAGE_BYTES, owner: str | None = None) -> InputImage:
        """Check (full decode, size limits) and store, under `owner`'s id when given (else the content
        id jobs use for inline images); nothing is written for a refused image."""
        image = make_input_image(data, 0, max_bytes, "image")
        if owner is not None:
            image = owned_copy(self.secret(), owner, image)
        path = self.root / image.name
        if not path.exists():
            with room_in(self.root, "uploads", path):
                atomic_write_bytes(path, data)
        else:
            _used(path)
        return image

    def keep(self, image: InputImage) -> None:
        path = self.root / image.name
        if not path.exists():
            with room_in(self.root, "uploads", path):
                atomic_write_bytes(path, image.data)
        else:
            _used(path)

    def get(self, upload_id: str, parameter: str = "images") -> InputImage:
        check_id(upload_id, parameter)
        try:
            data = (self.root / upload_id).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise missing(upload_id, parameter) from None
        _used(self.root / upload_id)
        return InputImage(upload_id, data)

    def exists(self, upload_id: str) -> bool:
        return (self.root / upload_id).is_file()

    def entries(self) -> Iterator[tuple[str, float]]:
        """Every upload id with the time of its last use (for retention)."""
        for path in self.root.glob("linkpix_*"):
            try:
                yield path.name, path.stat().st_mtime
            except FileNotFoundError:
                continue

    def delete(self, upload_id: str) -> bool:
        try:
            (self.root / upload_id).unlink()
            return True
        except FileNotFoundError:
            return False


def check_id(upload_id: object, parameter: str) -> None:
    if not isinstance(upload_id, str) or "/" in upload_id or "\\" in upload_id \
            or not upload_id.startswith("linkpix_"):
        raise BadRequest(f"invalid upload id {upload_id!r}", {"parameter": parameter})


def missing(upload_id: str, parameter: str) -> NotFound:
    """404, the same answer for an id that does not exist and for another user's: an id tells nothing."""
    return NotFound(f"no upload {upload_id!r}: upload it first with POST /uploads", {"parameter": parameter})


USED_RESOLUTION = 3600.0  # s: a file's time is refreshed at most this often (one write per hour of use)


def _used(path: Path) -> None:
    """Mark an upload as used now: retention (jobs_keep_days) counts from its last use, not its first."""
    try:
        if time.time() - path.stat().st_mtime > USED_RESOLUTION:
            os.utime(path)
    except OSError:
        pass  # gone meanwhile, or a read-only folder: retention then counts from the older time
