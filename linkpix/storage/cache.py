"""Stage 5: the image cache, one folder per user, written atomically, evicted by size and age.

The key is a hash of everything that changes the picture (the rendered graph, the output format and the
input images), so a new style, workflow edit or setting is simply a new key and nothing has to be
invalidated. Each image has a JSON sidecar with what produced it; the image is renamed into place before
its sidecar, and a reader only trusts an image whose sidecar exists and records its size, so neither a crash
mid-write nor a power loss before the entry's sync (storage/durable.py) serves a partial file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linkpix.errors import BadRequest, NotFound
from linkpix.storage.diskfull import room_in
from linkpix.storage.durable import Syncer
from linkpix.storage.jsonstore import write_temp
from linkpix.storage.media import FILE_RE, FILE_TYPES, MEDIA_TYPES, PICTURE_TYPES

log = logging.getLogger(__name__)

CONTENT_TYPES = FILE_TYPES  # pictures, then the other files a run saves (storage/media.py)
_USER_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# In a folder replicas share, a temporary file younger than this may be another replica's write.
SHARED_TEMP_GRACE = 3600.0
# A full cache recounts the disk (files another process removed: the dashboard's clear, a replica's eviction)
# at most this often, and /health's figures at most this often: a recount stats every file (0.2 s at 20,000).
RESCAN_EVERY = 30.0
STATS_RESCAN_EVERY = 10.0


def cache_key(graph: Mapping[str, Any], output_format: str, uploads: Iterable[bytes] = ()) -> str:
    """A stable hash of what determines the output image."""
    h = hashlib.sha256()
    h.update(json.dumps(graph, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    h.update(b"\0" + output_format.encode())
    for data in uploads:
        h.update(b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:32]


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return exc_type is not None and issubclass(exc_type, OSError)


@dataclass(frozen=True)
class CachedImage:
    """A stored image: where it is and what the response needs to describe it."""

    user: str
    key: str
    path: Path
    fmt: str
    size: int
    mtime: float
    meta: dict[str, Any]

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.fmt]

    @property
    def etag(self) -> str:
        return f'"{self.key}"'

    @property
    def url(self) -> str:
        return f"/images/{self.user}/{self.filename}"

    @property
    def local(self) -> bool:
        """A file on this machine's file system (S3 images are not: they are read or redirected to)."""
        return True

    def read(self) -> bytes:
        """The image's bytes, wherever it is stored."""
        return self.path.read_bytes()


class HitCounts:
    """Hits and misses, recorded by whoever answered a request (the cache cannot tell a lookup that ends
    in a run from one that is served); shown in /health. Both caches, on disk and on a bucket, count alike."""

    _lock: threading.Lock
    hits: int
    misses: int

    def record(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1


class DeferredPut:
    """A staged entry for a store whose writes are atomic on their own (a bucket): the write is the commit."""

    def __init__(self, put: Any, user: str, key: str, fmt: str, data: bytes, meta: Mapping[str, Any]) -> None:
        self._args = (user, key, fmt, data, meta)
        self._put = put

    def commit(self) -> CachedImage:
        return self._put(*self._args)

    def discard(self) -> None:
        """Nothing was written."""


def _unlink(path: Path) -> None:
    with _suppress_oserror():
        path.unlink()


@dataclass
class Staged:
    """An image and its sidecar written under temporary names, not yet visible to readers."""

    cache: ImageCache
    user: str
    key: str
    fmt: str
    path: Path
    image_tmp: Path
    sidecar_tmp: Path
    meta: dict[str, Any]
    done: bool = False

    def commit(self) -> CachedImage:
        """Rename both into place, the image before the sidecar (a reader trusts an image only once its
        sidecar exists), have both synced to disk right after (storage/durable.py), and return the stored
        image."""
        assert not self.done, "a staged image is committed or discarded once"
        self.done = True
        try:
            os.replace(self.image_tmp, self.path)
            os.replace(self.sidecar_tmp, self.path.with_suffix(".json"))
        except BaseException:
            self._remove()
            raise
        self.cache.syncer.add(self.path, self.path.with_suffix(".json"))
        return self.cache._published(self)

    def discard(self) -> None:
        """Remove the temporary files (the run was not confirmed, or another copy was stored)."""
        if not self.done:
            self.done = True
            self._remove()

    def _remove(self) -> None:
        for path in (self.image_tmp, self.sidecar_tmp):
            _unlink(path)



class ImageCache(HitCounts):
    """`get`/`put` by (user, key); keeps running totals and its entries oldest first, so neither a put nor an
    eviction looks at every file (both did once the cache was full: 226 ms a put at 20,000 entries)."""

    def __init__(self, root: Path, max_bytes: int = 0, max_age_s: float = 0.0, tidy: bool = True,
                 temp_grace: float = 0.0) -> None:
        """`tidy=False` for a second process (the dashboard): it must not remove the API's `.tmp` files,
        which may be writes in progress. `temp_grace`: in a folder several replicas share, only temporary
        files older than this are leftovers (a younger one may be another replica's write)."""
        self._temp_grace = temp_grace
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._sizes: dict[Path, tuple[int, float]] = {}  # oldest first (a new or replaced entry goes last)
        self._total = 0
        self._scanned = 0.0  # monotonic time of the last count from disk
        self.syncer = Syncer(on_failure=self.withdraw)
        self._scan(remove_temp=tidy)

    def close(self, timeout: float = 10.0) -> None:
        """Shutting down: wait until every published entry is on disk."""
        if not self.syncer.flush(timeout):
            log.warning("some cache entries were not yet synced to disk after %g s", timeout)

    # -- reading ---------------------------------------------------------------------------------
    def get(self, user: str, key: str) -> CachedImage | None:
        """The stored image for this key, or None (a miss is counted by the caller via `record`)."""
        for fmt in PICTURE_TYPES:
            found = self._load(user, f"{key}.{fmt}")
            if found is not None:
                return found
        return self._other_file(user, key)

    def _other_file(self, user: str, key: str) -> CachedImage | None:
        """A stored video, sound... of this key, found by its sidecar's `format`: one look for every other
        kind, so a miss costs four looks, not one per kind of file (storage/media.py)."""
        try:
            meta = json.loads((self.root / user / f"{key}.json").read_text(encoding="utf-8"))
            fmt = meta.get("format")
        except (OSError, ValueError, AttributeError):
            return None  # no entry (the usual miss), or an unreadable one, which `_load` would skip too
        return self._load(user, f"{key}.{fmt}", meta) if fmt in MEDIA_TYPES else None

    def lookup_file(self, user: str, filename: str) -> CachedImage:
        """A stored image by its public name, for GET /images/<user>/<file>; 404 when absent."""
        if not _USER_RE.match(user) or not FILE_RE.match(filename):
            raise NotFound(f"no image {user}/{filename}")
        found = self._load(user, filename)
        if found is None:
            raise NotFound(f"no image {user}/{filename}")
        return found

    def _load(self, user: str, filename: str, meta: dict[str, Any] | None = None) -> CachedImage | None:
        """The entry `filename` of `user`, or None; `meta`: its sidecar, when the caller read it already."""
        path = self.root / user / filename
        sidecar = path.with_suffix(".json")
        try:
            st = path.stat()
            if meta is None:
                meta = json.loads(sidecar.read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable cache entry %s: %s", sidecar, exc)
            return None
        if meta.get("bytes", st.st_size) != st.st_size:  # cut short by a power loss before its sync: made again
            log.warning("ignoring cache entry %s: %d bytes where its sidecar says %s", path, st.st_size, meta["bytes"])
            return None
        key, _, fmt = filename.partition(".")
        return CachedImage(user, key, path, fmt, st.st_size, st.st_mtime, meta)

    # -- writing ---------------------------------------------------------------------------------
    def put(self, user: str, key: str, fmt: str, data: bytes, meta: Mapping[str, Any]) -> CachedImage:
        """Store an image and its sidecar atomically, then evict what exceeds the limits."""
        return self.stage(user, key, fmt, data, meta).commit()

    def stage(self, user: str, key: str, fmt: str, data: bytes, meta: Mapping[str, Any]) -> Staged:
        """Write an image and its sidecar to temporary files without publishing them: `commit()` renames
        them into place (image first, then the sidecar that makes the entry visible), `discard()` removes
        them. A run's image can so be written while the run is still being confirmed (`pipeline/early.py`).
        They reach the disk after the commit (storage/durable.py); the sidecar records the image's size, so
        an entry a power loss cut short is a miss, never a broken picture."""
        if not _USER_RE.match(user):
            raise BadRequest(f"invalid user name {user!r}")
        if fmt not in CONTENT_TYPES:
            raise BadRequest(f"unknown image format {fmt!r}; allowed: {', '.join(CONTENT_TYPES)}")
        path = self.root / user / f"{key}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = dict(meta, created=time.time(), bytes=len(data), format=fmt, key=key, user=user)
        sidecar_path = path.with_suffix(".json")
        # A full disk is a 507 naming the folder, and neither half is left behind (storage/diskfull.py).
        with room_in(self.root, "cache", path, sidecar_path):
            image_tmp = write_temp(path, data, sync=False)
            try:
                sidecar_tmp = write_temp(sidecar_path, json.dumps(body, indent=1, ensure_ascii=False).encode(),
                                         sync=False)
            except BaseException:
                _unlink(image_tmp)
                raise
        return Staged(self, user, key, fmt, path, image_tmp, sidecar_tmp, body)

    def _published(self, staged: Staged) -> CachedImage:
        """Account for a committed entry and evict what now exceeds the limits."""
        st = staged.path.stat()
        with self._lock:
            self._account(staged.path, st.st_size, st.st_mtime)
        self.evict()
        return CachedImage(staged.user, staged.key, staged.path, staged.fmt, st.st_size, st.st_mtime, staged.meta)

    def set_limits(self, max_bytes: int, max_age_s: float) -> None:
        """New limits from a reloaded configuration; applied at once."""
        self.max_bytes, self.max_age_s = max_bytes, max_age_s
        self.evict()

    def evict(self) -> list[Path]:
        """Drop expired entries, then the oldest ones until the total fits `max_bytes`."""
        removed: list[Path] = []
        now = time.time()
        with self._lock:
            over = self.max_bytes > 0 and self._total > self.max_bytes
            if over and time.monotonic() - self._scanned >= RESCAN_EVERY:
                self._rescan()  # files may have been removed behind our back
            while self._sizes:
                path, (_size, mtime) = next(iter(self._sizes.items()))
                too_old = self.max_age_s > 0 and now - mtime > self.max_age_s
                too_big = self.max_bytes > 0 and self._total > self.max_bytes
                if not (too_old or too_big):
                    break  # oldest first: everything after this one is newer and the total fits
                self._remove(path)
                removed.append(path)
        for path in removed:
            log.info("evicted %s", path)
        return removed

    def clear(self, user: str | None = None) -> int:
        """Remove every image of one user (or of all users); returns how many were removed."""
        with self._lock:
            victims = [p for p in self._sizes if user is None or p.parent.name == user]
            for path in victims:
                self._remove(path)
        return len(victims)

    def withdraw(self, path: Path) -> None:
        """An entry whose image or sidecar could not be synced to disk: removed, to be made again."""
        with self._lock:
            for entry in [p for p in self._sizes if p.parent == path.parent and p.stem == path.stem]:
                log.warning("withdrawing cache entry %s: it could not be synced to disk", entry)
                self._remove(entry)

    def _remove(self, path: Path) -> None:
        for p in (path, path.with_suffix(".json")):
            with _suppress_oserror():
                p.unlink()
        size, _ = self._sizes.pop(path, (0, 0.0))
        self._total -= size

    def _account(self, path: Path, size: int, mtime: float) -> None:
        old, _ = self._sizes.pop(path, (0, 0.0))  # a replaced entry is the newest now: it goes last
        self._sizes[path] = (size, mtime)
        self._total += size - old

    def _rescan(self) -> None:
        self._sizes.clear()
        self._total = 0
        self._scan(remove_temp=False)

    def _scan(self, remove_temp: bool = True) -> None:
        """Count what is on disk, oldest first; at start-up also remove what a crash mid-write left behind."""
        found: list[tuple[float, int, Path]] = []
        self._scanned = time.monotonic()
        for path in self.root.glob("*/*"):
            if FILE_RE.match(path.name) and path.with_suffix(".json").exists():
                with _suppress_oserror():  # evicted by another process meanwhile
                    st = path.stat()
                    found.append((st.st_mtime, st.st_size, path))
            elif remove_temp and path.name.endswith(".tmp"):
                with _suppress_oserror():
                    if time.time() - path.stat().st_mtime >= self._temp_grace:
                        path.unlink()  # left behind by a crash mid-write
        for mtime, size, path in sorted(found):
            self._account(path, size, mtime)

    # -- figures -----------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Figures for /health and /metrics, counted from disk at most every STATS_RESCAN_EVERY seconds
        (another process, the dashboard, may clear files); this process's own writes count at once."""
        with self._lock:
            if time.monotonic() - self._scanned >= STATS_RESCAN_EVERY:
                self._rescan()
            per_user: dict[str, dict[str, int]] = {}
            for path, (size, _) in self._sizes.items():
                entry = per_user.setdefault(path.parent.name, {"images": 0, "bytes": 0})
                entry["images"] += 1
                entry["bytes"] += size
            return {"hits": self.hits, "misses": self.misses, "images": len(self._sizes),
                    "bytes": self._total, "max_bytes": self.max_bytes, "users": per_user}
