"""Input images in the bucket (`storage: s3`): `UploadStore`'s interface for replicas without a shared folder.

An upload accepted by one replica must be readable by every other (a link or a job naming it may land
anywhere), and on a deployment without a shared file system only the bucket is shared. Uploads live under
`<prefix>!uploads/<id>`: "!" is in no user name, so they never mix with a user's cached images (and not
`.uploads/`, which SeaweedFS keeps for its own multipart uploads and leaves out of listings).
Ids are hashes of the owner and the content (storage/owners.py), so an object once written never
changes and a second PUT of the same id is skipped.

Retention counts from an upload's last use, as on disk: a use refreshes the object's time (a copy onto
itself) at most once an hour.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from linkpix.model import MAX_INPUT_IMAGE_BYTES, InputImage, make_input_image
from linkpix.storage.owners import owned_copy, shared_secret
from linkpix.storage.uploads import USED_RESOLUTION, check_id, missing

FOLDER = "!uploads/"
SECRET_OBJECT = "!upload-owner-secret"  # next to the folder, so retention's listing of uploads never meets it
_MISSING = ("NoSuchKey", "404", "NotFound")


class S3UploadStore:
    """Input images by content-addressed id in a bucket."""

    def __init__(self, client: Any, bucket: str, prefix: str, unavailable: Callable[[Exception], Exception]) -> None:
        self._s3 = client
        self.bucket = bucket
        self.folder = prefix + FOLDER
        self._unavailable = unavailable
        self._secret: bytes | None = None

    def secret(self) -> bytes:
        """The key of upload ids (storage/owners.py), one object in the bucket shared by every replica."""
        if self._secret is None:
            key = self.folder[:-len(FOLDER)] + SECRET_OBJECT

            def read() -> bytes | None:
                try:
                    return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                except ClientError as exc:
                    if _is_missing(exc):
                        return None
                    raise self._unavailable(exc) from None
                except BotoCoreError as exc:
                    raise self._unavailable(exc) from None

            self._secret = shared_secret(
                read, lambda data: self._call(self._s3.put_object, Bucket=self.bucket, Key=key, Body=data))
        return self._secret

    def put(self, data: bytes, max_bytes: int = MAX_INPUT_IMAGE_BYTES, owner: str | None = None) -> InputImage:
        """Check (full decode, size limits) and store, under `owner`'s id when given; nothing is written
        for a refused image."""
        image = make_input_image(data, 0, max_bytes, "image")
        if owner is not None:
            image = owned_copy(self.secret(), owner, image)
        self.keep(image)
        return image

    def keep(self, image: InputImage) -> None:
        if self._modified(image.name) is None:
            self._call(self._s3.put_object, Bucket=self.bucket, Key=self.folder + image.name, Body=image.data)
        else:
            self._used(image.name)

    def get(self, upload_id: str, parameter: str = "images") -> InputImage:
        check_id(upload_id, parameter)
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=self.folder + upload_id)
            data = response["Body"].read()
        except ClientError as exc:
            if _is_missing(exc):
                raise missing(upload_id, parameter) from None
            raise self._unavailable(exc) from None
        except BotoCoreError as exc:
            raise self._unavailable(exc) from None
        self._refresh(upload_id, response["LastModified"].timestamp())
        return InputImage(upload_id, data)

    def exists(self, upload_id: str) -> bool:
        return self._modified(upload_id) is not None

    def entries(self) -> Iterator[tuple[str, float]]:
        """Every upload id with the time of its last use (for retention)."""
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.folder)
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"][len(self.folder):], obj["LastModified"].timestamp()
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(exc) from None

    def delete(self, upload_id: str) -> bool:
        self._call(self._s3.delete_object, Bucket=self.bucket, Key=self.folder + upload_id)
        return True

    def _modified(self, upload_id: str) -> float | None:
        try:
            return self._s3.head_object(Bucket=self.bucket, Key=self.folder + upload_id)["LastModified"].timestamp()
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise self._unavailable(exc) from None
        except BotoCoreError as exc:
            raise self._unavailable(exc) from None

    def _used(self, upload_id: str) -> None:
        modified = self._modified(upload_id)
        if modified is not None:
            self._refresh(upload_id, modified)

    def _refresh(self, upload_id: str, modified: float) -> None:
        """A copy onto itself gives the object a new time; a failure only makes retention count from before."""
        if time.time() - modified <= USED_RESOLUTION:
            return
        key = self.folder + upload_id
        try:
            self._s3.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key},
                                 MetadataDirective="REPLACE", Metadata={"used": str(int(time.time()))})
        except (ClientError, BotoCoreError):
            pass

    def _call(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(exc) from None


def _is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in _MISSING
