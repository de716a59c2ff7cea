"""Which image cache and upload service a configuration names: folders, or a bucket with `storage: s3`.

The API and the dashboard (another process) must see the same images, so both open the cache here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from linkpix.storage.cache import SHARED_TEMP_GRACE, ImageCache
from linkpix.storage.uploads import Uploads, UploadStore

if TYPE_CHECKING:
    from linkpix.config import LoadedConfig


def open_image_cache(cfg: LoadedConfig, *, tidy: bool = True) -> Any:
    """`tidy=False` for the dashboard, which must not remove the API's writes in progress."""
    s = cfg.settings
    if s.storage == "s3":
        from linkpix.storage.s3 import S3ImageCache  # boto3 is imported only by deployments that use it

        return S3ImageCache(s.s3_bucket, s.s3_endpoint, s.s3_region, s.s3_access_key, s.s3_secret_key,
                            s.s3_prefix, s.s3_url_seconds)
    return ImageCache(cfg.output_dir, int(s.cache_max_mb * 1024 * 1024), s.cache_max_age_days * 86400, tidy=tidy,
                      temp_grace=SHARED_TEMP_GRACE if s.redis_url else 0.0)


def open_uploads(cfg: LoadedConfig, cache: Any) -> Uploads:
    """The upload service: beside the images in the bucket with `storage: s3` (through the cache's client),
    else the folder `data_dir/uploads`. Built once and handed to the editor, the job manager and the routes."""
    if cfg.settings.storage == "s3":
        return cache.upload_store()
    return UploadStore(cfg.data_dir / "uploads")
