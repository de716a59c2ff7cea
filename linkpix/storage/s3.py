"""The image cache on S3-compatible storage (`storage: s3`), for replicas without a shared file system.

The same names and metadata as on disk: `<prefix><user>/<key>.<format>` for the image and
`<prefix><user>/<key>.json` for its sidecar, written image first, so a reader that finds the sidecar
finds the image (as on disk, the sidecar is what makes an entry real). A lookup is one GET of the small
sidecar, which carries the size and time the response needs. A hit is streamed through LinkPix, or, with
`s3_redirect`, answered by a redirect to a presigned URL so the bytes never pass through LinkPix.

The bucket keeps what it is given: `cache_max_mb` and `cache_max_age_days` are not enforced here (give the
bucket a lifecycle rule that expires objects instead, limited to the cache's names so that it spares the
input images under `!uploads/`); the figures in /health are counted by listing the bucket at most once a
minute.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from linkpix.errors import BadRequest, NotFound, StorageUnavailable
from linkpix.storage.cache import CONTENT_TYPES, CachedImage, DeferredPut, HitCounts
from linkpix.storage.media import FILE_RE
from linkpix.storage.s3uploads import FOLDER, S3UploadStore

log = logging.getLogger(__name__)

_FILE_RE = FILE_RE  # pictures and the other files a run saves (storage/media.py)
_USER_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STATS_SECONDS = 60.0
CHUNK = 65536


@dataclass(frozen=True)
class S3Image(CachedImage):
    """A cached image in the bucket: `path` is its object name; `read()` and `chunks()` fetch it."""

    store: S3ImageCache | None = field(default=None, compare=False, repr=False)

    @property
    def local(self) -> bool:
        return False

    @property
    def object_name(self) -> str:
        return str(self.path)

    def read(self) -> bytes:
        assert self.store is not None
        return self.store.fetch(self.object_name)

    def chunks(self) -> Iterator[bytes]:
        assert self.store is not None
        return self.store.stream(self.object_name)

    def presigned_url(self) -> str:
        assert self.store is not None
        return self.store.presign(self.object_name, self.content_type)


class S3ImageCache(HitCounts):
    """`ImageCache`'s interface (`get`, `put`, `lookup_file`, `record`, `stats`, `clear`) on a bucket."""

    def __init__(self, bucket: str, endpoint: str = "", region: str = "us-east-1", access_key: str = "",
                 secret_key: str = "", prefix: str = "", url_seconds: int = 3600) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint or "Amazon S3"
        self.url_seconds = url_seconds
        self.max_bytes = 0
        self.max_age_s = 0.0
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._stats: tuple[float, dict[str, Any]] | None = None
        config = Config(signature_version="s3v4", s3={"addressing_style": "path"}, connect_timeout=2,
                        read_timeout=15, retries={"max_attempts": 2, "mode": "standard"})
        self._s3 = boto3.session.Session().client(
            "s3", endpoint_url=endpoint or None, region_name=region or None, config=config,
            aws_access_key_id=access_key or None, aws_secret_access_key=secret_key or None)

    def upload_store(self) -> S3UploadStore:
        """The input images of this deployment, in the same bucket and through the same client."""
        return S3UploadStore(self._s3, self.bucket, self.prefix, self._unavailable)

    def _name(self, user: str, filename: str) -> str:
        return f"{self.prefix}{user}/{filename}"

    def _unavailable(self, exc: Exception) -> StorageUnavailable:
        return StorageUnavailable(f"the image storage (bucket {self.bucket!r} at {self.endpoint}) does not answer: "
                                  f"{str(exc)[:200]}", {"bucket": self.bucket})

    # -- reading ---------------------------------------------------------------------------------
    def get(self, user: str, key: str) -> CachedImage | None:
        if not _USER_RE.match(user):
            return None
        meta = self._sidecar(user, key)
        if meta is None or meta.get("format") not in CONTENT_TYPES:
            return None
        return self._image(user, key, meta)

    def lookup_file(self, user: str, filename: str) -> CachedImage:
        if not _USER_RE.match(user) or not _FILE_RE.match(filename):
            raise NotFound(f"no image {user}/{filename}")
        key, _, fmt = filename.partition(".")
        meta = self._sidecar(user, key)
        if meta is None or meta.get("format") != fmt:
            raise NotFound(f"no image {user}/{filename}")
        return self._image(user, key, meta)

    def _sidecar(self, user: str, key: str) -> dict[str, Any] | None:
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=self._name(user, f"{key}.json"))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise self._unavailable(exc) from None
        except BotoCoreError as exc:
            raise self._unavailable(exc) from None
        try:
            return json.loads(body)
        except ValueError:
            log.warning("ignoring an unreadable sidecar %s/%s.json in bucket %s", user, key, self.bucket)
            return None

    def _image(self, user: str, key: str, meta: dict[str, Any]) -> S3Image:
        fmt = str(meta["format"])
        name = PurePosixPath(self._name(user, f"{key}.{fmt}"))
        return S3Image(user, key, name, fmt, int(meta.get("bytes", 0)), float(meta.get("created", 0.0)),  # type: ignore[arg-type]
                       meta, store=self)

    def fetch(self, name: str) -> bytes:
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=name)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(exc) from None

    def stream(self, name: str) -> Iterator[bytes]:
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=name)["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(exc) from None

        def chunks() -> Iterator[bytes]:
            with body:
                yield from body.iter_chunks(CHUNK)

        return chunks()

    def presign(self, name: str, content_type: str) -> str:
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": name, "ResponseContentType": content_type},
            ExpiresIn=self.url_seconds)

    # -- writing ---------------------------------------------------------------------------------
    def put(self, user: str, key: str, fmt: str, data: bytes, meta: Mapping[str, Any]) -> CachedImage:
        """The image, then its sidecar (which makes the entry visible), each one PUT (atomic in S3)."""
        if not _USER_RE.match(user):
            raise BadRequest(f"invalid user name {user!r}")
        if fmt not in CONTENT_TYPES:
            raise BadRequest(f"unknown image format {fmt!r}; allowed: {', '.join(CONTENT_TYPES)}")
        body = dict(meta, created=time.time(), bytes=len(data), format=fmt, key=key, user=user)
        try:
            self._s3.put_object(Bucket=self.bucket, Key=self._name(user, f"{key}.{fmt}"), Body=data,
                                ContentType=CONTENT_TYPES[fmt])
            self._s3.put_object(Bucket=self.bucket, Key=self._name(user, f"{key}.json"),
                                Body=json.dumps(body, indent=1, ensure_ascii=False).encode(),
                                ContentType="application/json")
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(exc) from None
        with self._lock:
            self._stats = None
        return self._image(user, key, body)

    def stage(self, user: str, key: str, fmt: str, data: bytes, meta: Mapping[str, Any]) -> DeferredPut:
        """Nothing to stage in a bucket (each PUT is atomic): the PUTs happen at `commit()`."""
        return DeferredPut(self.put, user, key, fmt, data, meta)

    def set_limits(self, max_bytes: int, max_age_s: float) -> None:
        """Not enforced on a bucket (see the module docstring); kept for /health."""
        self.max_bytes, self.max_age_s = max_bytes, max_age_s

    def close(self, timeout: float = 10.0) -> None:
        """Nothing to wait for: a bucket's object is stored when its put returns."""

    def evict(self) -> list[Any]:
        return []

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            yield from page.get("Contents", [])

    def clear(self, user: str | None = None) -> int:
        """Remove every image of one user (or of all users); returns how many images were removed."""
        prefix = self.prefix + (f"{user}/" if user is not None else "")
        removed = 0
        try:
            uploads = self.prefix + FOLDER  # input images are not cached images: clearing keeps them
            names = [o["Key"] for o in self._objects(prefix) if not o["Key"].startswith(uploads)]
            for start in range(0, len(names), 1000):
                batch = names[start:start + 1000]
                self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": n} for n in batch]})
            removed = sum(1 for n in names if not n.endswith(".json"))
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(exc) from None
        with self._lock:
            self._stats = None
        return removed

    def stats(self) -> dict[str, Any]:
        with self._lock:
            cached = self._stats
        now = time.monotonic()
        if cached is None or now - cached[0] > STATS_SECONDS:
            per_user: dict[str, dict[str, int]] = {}
            try:
                for obj in self._objects(self.prefix):
                    name = obj["Key"][len(self.prefix):]
                    user, _, filename = name.partition("/")
                    if _FILE_RE.match(filename):
                        entry = per_user.setdefault(user, {"images": 0, "bytes": 0})
                        entry["images"] += 1
                        entry["bytes"] += int(obj.get("Size", 0))
            except (ClientError, BotoCoreError) as exc:
                log.warning("could not count the images in bucket %s: %s", self.bucket, exc)
            cached = (now, per_user)
            with self._lock:
                self._stats = cached
        per_user = cached[1]
        return {"hits": self.hits, "misses": self.misses, "images": sum(u["images"] for u in per_user.values()),
                "bytes": sum(u["bytes"] for u in per_user.values()), "max_bytes": self.max_bytes,
                "users": per_user, "storage": f"s3://{self.bucket}/{self.prefix}"}
