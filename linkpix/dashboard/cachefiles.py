"""The image cache as the dashboard sees it: sizes per user, recent generations, and clearing.

The dashboard is another process than the API, so it opens the cache with `tidy=False` (the start-up
tidy-up would delete `.tmp` files that may be the API's writes in progress) and only ever touches finished
entries; the API treats an entry whose file vanished as a miss, recounts its totals from disk, and its hit
path forgets a memoised file that can no longer be opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from linkpix.model import validate_user
from linkpix.storage.cache import ImageCache


def _cache(where: Path | Any) -> Any:
    """A folder of the disk cache, or an open cache (the bucket's, from `DashboardContext.image_cache`)."""
    return ImageCache(where, tidy=False) if isinstance(where, Path) else where


def per_user(where: Path | Any) -> dict[str, dict[str, int]]:
    """user -> {"images": n, "bytes": total}."""
    return dict(sorted(_cache(where).stats()["users"].items()))


def summary(where: Path | Any, user: str | None = None) -> tuple[int, int]:
    """(images, bytes) that clearing `user` (None: everyone) would remove."""
    stats = _cache(where).stats()
    if user is None:
        return stats["images"], stats["bytes"]
    row = stats["users"].get(validate_user(user), {"images": 0, "bytes": 0})
    return row["images"], row["bytes"]


def clear(where: Path | Any, user: str | None = None) -> int:
    """Remove finished entries of one user (or all); returns how many images were removed."""
    return _cache(where).clear(validate_user(user) if user is not None else None)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
