"""Who an upload belongs to: its id is a keyed hash of the uploader and the bytes.

A content hash as the id (`sha256(bytes)[:16]`) is the same for every user: anyone holding a photo can
compute its id and ask whether it was ever uploaded, and anyone who learns an id can use the photo. So
an id is `linkpix_<HMAC(secret, user, sha256(bytes))[:16]>.<ext>`: the same upload by the same user still
gives the same id (a link stays stable, the cache still works), another user gets another id, and
nobody can compute one without the installation's secret. Ownership needs no table: given the bytes
an id names, recomputing the HMAC for the caller's user says whether the id is theirs, so the upload
stores keep their flat layout (and replicas sharing a folder or a bucket share the answer).

The secret is made once, at random, next to the uploads (a file, or an object in the bucket), so every
process and replica that shares the uploads shares it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from linkpix.model import InputImage

SECRET_BYTES = 32
SECRET_FILE = ".owner-secret"  # in the uploads folder; `linkpix_*` globs and listings never see it


def scoped_name(secret: bytes, owner: str, image: InputImage) -> str:
    """The id `owner` gets for these bytes (the extension stays the image's)."""
    digest = hashlib.sha256(image.data).digest()
    mac = hmac.new(secret, owner.encode() + b"\x00" + digest, hashlib.sha256).hexdigest()[:16]
    ext = image.name.rsplit(".", 1)[-1]
    return f"linkpix_{mac}.{ext}"


def content_named(image: InputImage) -> InputImage:
    """The image under its content name, as a run uses it: the graph, the cache key and the seed then
    depend on the bytes only (an upload id and the same picture sent inline give the same picture). The
    name is never an id anyone can use: no user owns it (see `is_owner`)."""
    ext = image.name.rsplit(".", 1)[-1]
    return InputImage(f"linkpix_{hashlib.sha256(image.data).hexdigest()[:16]}.{ext}", image.data)


def owned_copy(secret: bytes, owner: str, image: InputImage) -> InputImage:
    """The image under `owner`'s id."""
    return InputImage(scoped_name(secret, owner, image), image.data)


def is_owner(secret: bytes, owner: str, image: InputImage) -> bool:
    """Whether `image` (as read from a store under its id) is `owner`'s upload."""
    return hmac.compare_digest(scoped_name(secret, owner, image), image.name)


def file_secret(folder: Path) -> bytes:
    """The secret kept in `folder`, made on first use; two processes starting together agree (O_EXCL)."""
    path = Path(folder) / SECRET_FILE
    try:
        data = path.read_bytes()
        if len(data) >= SECRET_BYTES:
            return data
    except FileNotFoundError:
        pass
    fresh = secrets.token_bytes(SECRET_BYTES)
    tmp = path.with_name(f"{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(fresh)
    try:
        os.link(tmp, path)  # atomic and exclusive: whoever links first wins, the others read theirs
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


def shared_secret(read: Callable[[], bytes | None], create: Callable[[bytes], None]) -> bytes:
    """The secret from a shared store (the bucket): read it, else write a fresh one and read back what
    is there (two replicas starting at once then use the one that was written last)."""
    found = read()
    if found and len(found) >= SECRET_BYTES:
        return found
    create(secrets.token_bytes(SECRET_BYTES))
    found = read()
    if not found:
        raise RuntimeError("the uploads' owner secret could not be stored")
    return found
